//! A spinner on stderr while a call is slow. It appears only after a short
//! delay (fast calls never flicker), only when stderr is a terminal (pipes,
//! logs and tests stay clean), and is erased before any output is printed.
//! Lines of progress (a run's steps) print above it.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

const DELAY: Duration = Duration::from_millis(250);
const TICK: Duration = Duration::from_millis(100);
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Carriage return, then ANSI "erase the whole line".
const CLEAR: &str = "\r\x1b[2K";

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Prints one progress line on stderr, over the spinner's line (which the
/// next tick draws again below it).
pub fn line(text: &str) {
    let mut err = std::io::stderr().lock();
    // Cosmetic: a failed write to stderr must not fail the command.
    let _ = writeln!(err, "{CLEAR}{text}");
    let _ = err.flush();
}

/// Awaits `work`, with a spinner labelled `label` if it takes a while.
pub async fn track<F: Future>(label: &str, work: F) -> F::Output {
    let stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return work.await;
    }
    spin(label, work, &mut stderr.lock()).await
}

async fn spin<F: Future, W: Write>(label: &str, work: F, out: &mut W) -> F::Output {
    let started = Instant::now();
    let mut ticker = tokio::time::interval_at(started + DELAY, TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tokio::pin!(work);
    let mut frames = FRAMES.iter().cycle();
    let mut drawn = false;
    loop {
        tokio::select! {
            // Finishing wins over a tick due at the same moment.
            biased;
            output = &mut work => {
                if drawn {
                    // Cosmetic: a failed write to stderr must not fail the command.
                    let _ = write!(out, "{CLEAR}");
                    let _ = out.flush();
                }
                return output;
            }
            _ = ticker.tick() => {
                let frame = frames.next().unwrap_or(&FRAMES[0]);
                let elapsed = started.elapsed().as_secs_f64();
                let _ = write!(out, "{CLEAR}{frame} {label} {elapsed:.1}s");
                let _ = out.flush();
                drawn = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fast_work_draws_nothing() {
        let mut out = Vec::new();
        let value = spin("running…", async { 7 }, &mut out).await;
        assert_eq!(value, 7);
        assert!(out.is_empty());
    }

    /// On a paused clock the 450 ms of work are virtual, so the frames are
    /// exact: one at 250 ms, one at 350 ms, and at 450 ms the finished work
    /// wins over the tick due then, so the line is cleared, not redrawn.
    #[tokio::test(start_paused = true)]
    async fn slow_work_draws_then_clears() {
        let mut out = Vec::new();
        spin(
            "running…",
            tokio::time::sleep(Duration::from_millis(450)),
            &mut out,
        )
        .await;
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            format!("{CLEAR}⠋ running… 0.2s{CLEAR}⠙ running… 0.3s{CLEAR}")
        );
    }
}

//! Process-local circuit breaker for the remote policy engine.
//!
//! Closed: calls pass; each failed decision (after retries) adds one, a
//! success resets to zero; at `threshold` consecutive failures it opens.
//! Open: every call is refused until `open_for` has passed.
//! Half-open: exactly one probe call is let through and the rest are refused;
//! the probe's success closes the breaker, its failure re-opens it for
//! another window. One probe, not every caller, so a still-broken OPA does
//! not take the whole burst.
//!
//! Time is tokio's: the same instant as the system's monotonic clock unless
//! a test pauses it, so the open window can be crossed with `advance`.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Leave to make one call. Report its outcome with `success`/`failure`; a
/// permit dropped without an outcome (the caller's future was cancelled)
/// frees the probe slot so the breaker can never stay stuck half-open.
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// A permit, or None while the breaker refuses calls.
    pub fn admit(&self) -> Option<Permit<'_>> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return None,
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => return None,
        };
        Some(Permit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a plain value that every writer leaves consistent,
        // so a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn on_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    fn on_failure(&self, probe: bool, now: Instant) {
        let mut state = self.lock();
        let open = State::Open {
            until: now + self.open_for,
        };
        match *state {
            _ if probe => *state = open,
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                *state = if failures >= self.threshold {
                    open
                } else {
                    State::Closed { failures }
                };
            }
            // Already open, or a probe is deciding: a late failure of a call
            // admitted before the breaker opened changes nothing.
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
    }

    fn on_abandoned_probe(&self) {
        let mut state = self.lock();
        if *state == (State::HalfOpen { probing: true }) {
            *state = State::HalfOpen { probing: false };
        }
    }
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.on_success();
    }

    pub fn failure(self) {
        self.failure_at(Instant::now());
    }

    fn failure_at(mut self, now: Instant) {
        self.settled = true;
        self.breaker.on_failure(self.probe, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.on_abandoned_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(100);

    fn fail(breaker: &CircuitBreaker, now: Instant) {
        breaker.admit_at(now).expect("admitted").failure_at(now);
    }

    #[test]
    fn opens_at_threshold_and_refuses_until_window_ends() {
        let breaker = CircuitBreaker::new(3, WINDOW);
        let t0 = Instant::now();
        fail(&breaker, t0);
        fail(&breaker, t0);
        assert!(breaker.admit_at(t0).is_some());
        fail(&breaker, t0);
        assert!(breaker.admit_at(t0).is_none());
        assert!(breaker.admit_at(t0 + WINDOW / 2).is_none());
    }

    #[test]
    fn success_resets_the_count() {
        let breaker = CircuitBreaker::new(2, WINDOW);
        let t0 = Instant::now();
        fail(&breaker, t0);
        breaker.admit_at(t0).expect("admitted").success();
        fail(&breaker, t0);
        assert!(breaker.admit_at(t0).is_some());
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let breaker = CircuitBreaker::new(1, WINDOW);
        let t0 = Instant::now();
        fail(&breaker, t0);
        let later = t0 + WINDOW;
        let probe = breaker.admit_at(later).expect("probe");
        assert!(probe.probe);
        assert!(breaker.admit_at(later).is_none());
        probe.success();
        let normal = breaker.admit_at(later).expect("closed again");
        assert!(!normal.probe);
    }

    #[test]
    fn failed_probe_reopens_for_a_new_window() {
        let breaker = CircuitBreaker::new(1, WINDOW);
        let t0 = Instant::now();
        fail(&breaker, t0);
        let later = t0 + WINDOW;
        fail(&breaker, later);
        assert!(breaker.admit_at(later + WINDOW / 2).is_none());
        assert!(breaker.admit_at(later + WINDOW).is_some());
    }

    #[test]
    fn abandoned_probe_frees_the_slot() {
        let breaker = CircuitBreaker::new(1, WINDOW);
        let t0 = Instant::now();
        fail(&breaker, t0);
        drop(breaker.admit_at(t0 + WINDOW).expect("probe"));
        assert!(breaker.admit_at(t0 + WINDOW).expect("next probe").probe);
    }

    #[test]
    fn late_failure_of_an_old_call_does_not_extend_open() {
        let breaker = CircuitBreaker::new(1, WINDOW);
        let t0 = Instant::now();
        let old = breaker.admit_at(t0).expect("admitted");
        fail(&breaker, t0);
        old.failure();
        assert!(breaker.admit_at(t0 + WINDOW).is_some());
    }
}

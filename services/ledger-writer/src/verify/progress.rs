//! Progress on stderr: a line rewritten in place on a terminal, else a line
//! every [`LINE_EVERY`] rows (a log should not fill with carriage returns);
//! none when the check runs inside the server.

use std::io::{IsTerminal, Write};

const LINE_EVERY: u64 = 100_000;
const TERMINAL_EVERY: u64 = 1_000;

pub struct Progress {
    terminal: bool,
    silent: bool,
}

impl Progress {
    /// Progress of a run from the command line.
    pub fn on_stderr() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            silent: false,
        }
    }

    /// No progress: a run inside the server.
    pub fn silent() -> Self {
        Self {
            terminal: false,
            silent: true,
        }
    }

    /// `count` rows of `table` checked so far.
    pub fn row(&mut self, table: &str, count: u64) {
        if self.silent {
            return;
        }
        if self.terminal && count.is_multiple_of(TERMINAL_EVERY) {
            eprint!("\r{table}: {count} rows checked");
            let _ = std::io::stderr().flush();
        } else if !self.terminal && count.is_multiple_of(LINE_EVERY) {
            eprintln!("{table}: {count} rows checked");
        }
    }

    /// All `count` rows of `table` checked.
    pub fn done(&mut self, table: &str, count: u64) {
        if self.silent {
            return;
        }
        if self.terminal {
            eprintln!("\r{table}: {count} rows checked");
        } else {
            eprintln!("{table}: {count} rows checked, done");
        }
    }
}

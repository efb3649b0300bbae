//! Standard output for the CLI's reports (`validate`, `test`, `check`).
//!
//! A reader that stops early (`rolecall test … | head`) closes the pipe,
//! and `println!` panics on the broken pipe. [`Console`] stops writing
//! instead and lets the command finish with its own exit status, as if the
//! rest had been read. Any other write error (a full disk) is said once on
//! standard error, and the command fails: a report that could not be
//! written is not a pass.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Writes report lines until standard output stops taking them.
#[derive(Debug)]
pub struct Console {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The reader went away: the rest is dropped, the status kept.
    Closed,
    /// Standard output failed otherwise: the command fails.
    Failed,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Self {
        Console { state: State::Open }
    }

    /// Writes one line (use with `format_args!`).
    pub fn line(&mut self, text: fmt::Arguments<'_>) {
        if self.state != State::Open {
            return;
        }
        if let Err(e) = writeln!(io::stdout().lock(), "{text}") {
            self.fail(&e);
        }
    }

    /// The command's exit status: `code`, unless standard output failed,
    /// then `failed`.
    pub fn finish(mut self, code: ExitCode, failed: ExitCode) -> ExitCode {
        if self.state == State::Open {
            if let Err(e) = io::stdout().lock().flush() {
                self.fail(&e);
            }
        }
        match self.state {
            State::Failed => failed,
            State::Open | State::Closed => code,
        }
    }

    fn fail(&mut self, e: &io::Error) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            self.state = State::Closed;
        } else {
            self.state = State::Failed;
            eprintln!("rolecall: cannot write to standard output: {e}");
        }
    }
}

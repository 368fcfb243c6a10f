//! `pecr`: the command-line client of the PECR controller.
//!
//! Parsing is clap's (usage errors exit 2), the call runs under a spinner
//! that only a terminal sees, and every failure ends in one place that
//! picks the message and the exit code.

mod args;
mod budget;
mod canary;
mod client;
mod commands;
mod completions;
mod contract;
mod gate;
mod json;
mod perf;
mod progress;
mod release;
mod render;
mod suite7;
mod time;
mod usefulness;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use pecr_errors::{ErrorCode, PecrError};

use crate::args::{Cli, Command};
use crate::client::Failure;
use crate::json::JsonWriter;

/// The controller answered with an error, or the call timed out; also a
/// check that found a problem: `replays verify` a replay that differs,
/// `replays gate` a regression, `eval usefulness` a score below
/// `--min-score`, `contract-test` a failed check, `canary guard` a
/// fallback, `perf compare` a regression, `release verify` a problem.
pub(crate) const EXIT_CALL_FAILED: u8 = 1;
/// A value clap could not check up front (clap itself also exits 2).
pub(crate) const EXIT_USAGE: u8 = 2;
/// The controller (for `contract-test`, the gateway) could not be reached.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match &cli.command {
        Command::Controller(command) => command,
        Command::Completions(args) => {
            stdout(&completions::script(args.shell));
            return ExitCode::SUCCESS;
        }
        Command::ContractTest(args) => return contract_test(&cli.global, args).await,
        Command::Canary(args::CanaryCommand::Guard(args)) => {
            return match canary::run(args) {
                Ok(decision) => verdict(
                    cli.global.json,
                    &decision,
                    canary::render,
                    decision.passed(),
                ),
                Err(failure) => report(failure, None),
            };
        }
        Command::Release(command) => return release::run(command),
        Command::Perf(command) => return print(perf::run(command), None),
    };
    let json = if cli.global.json {
        match JsonWriter::new() {
            Ok(writer) => Some(writer),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(EXIT_CALL_FAILED);
            }
        }
    } else {
        None
    };
    let label = commands::progress_label(command);
    let call = commands::execute(&cli.global, command, json.as_ref());
    print(progress::track(label, call).await, json.as_ref())
}

/// `pecr contract-test`: the report, and 1 when any check failed.
async fn contract_test(global: &args::Global, args: &args::ContractArgs) -> ExitCode {
    let json = global.json;
    match progress::track("checking…", contract::run(global, args)).await {
        Ok(checked) => verdict(json, &checked, contract::render, checked.all_passed()),
        Err(failure) => report(failure, None),
    }
}

/// Prints a local check's report (JSON with `--json`); exit 0 when it
/// passed, 1 when not.
fn verdict<T: serde::Serialize>(
    json: bool,
    value: &T,
    readable: impl FnOnce(&T) -> String,
    passed: bool,
) -> ExitCode {
    let text = if json {
        json::line(value)
    } else {
        Ok(readable(value))
    };
    print(text.map(|text| commands::Output { text, passed }), None)
}

/// Prints what a command produced, exit 0 when it passed and 1 when not;
/// or reports why it produced nothing.
fn print(result: Result<commands::Output, Failure>, json: Option<&JsonWriter>) -> ExitCode {
    match result {
        Ok(output) => {
            stdout(output.text.as_bytes());
            if output.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CALL_FAILED)
            }
        }
        Err(failure) => report(failure, json),
    }
}

/// Prints a failure and picks the exit code. With `--json`, call errors are
/// the REST error body on stdout, so scripts parse one shape either way.
fn report(failure: Failure, json: Option<&JsonWriter>) -> ExitCode {
    match failure {
        Failure::Call(error) => {
            if !print_error_json(&error, json) {
                eprint!("{}", render::error(&error));
            }
            ExitCode::from(EXIT_CALL_FAILED)
        }
        Failure::Unreachable {
            service,
            url,
            cause,
        } => {
            let error = PecrError::new(
                ErrorCode::SourceUnavailable,
                format!("cannot reach the {} at {url}: {cause}", service.name),
            );
            print_error_json(&error, json);
            // Humans need the hint even in JSON mode; stdout stays pure JSON.
            eprint!("{}", render::unreachable(service, &url, &cause));
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Failure::Usage(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Failure::Output(message) => {
            // As the REST edge does for a response outside the contract.
            print_error_json(&PecrError::internal("internal error"), json);
            eprintln!("error: cannot print the response: {message}");
            ExitCode::from(EXIT_CALL_FAILED)
        }
    }
}

/// True when the error went to stdout as JSON.
fn print_error_json(error: &PecrError, json: Option<&JsonWriter>) -> bool {
    let Some(writer) = json else {
        return false;
    };
    match writer.render("pecr.v1.ErrorResponse", &error.to_error_response()) {
        Ok(line) => {
            stdout(format!("{line}\n").as_bytes());
            true
        }
        Err(_) => false,
    }
}

/// Writes to stdout without `print!`, which panics when a reader such as
/// `head` has already closed the pipe.
pub(crate) fn stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

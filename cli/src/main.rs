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
/// check that found a problem (`replays verify`: a replay that differs;
/// `eval usefulness`: a score below `--min-score`).
const EXIT_CALL_FAILED: u8 = 1;
/// A value clap could not check up front (clap itself also exits 2).
const EXIT_USAGE: u8 = 2;
/// The controller could not be reached.
const EXIT_UNREACHABLE: u8 = 3;

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
            return canary_guard(cli.global.json, args);
        }
        Command::Release(command) => return release::run(command),
        Command::Perf(command) => return perf_command(command),
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
    match progress::track(label, call).await {
        Ok(output) => {
            stdout(output.text.as_bytes());
            if output.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CALL_FAILED)
            }
        }
        Err(failure) => report(failure, json.as_ref()),
    }
}

/// `pecr canary guard`: the decision, written where asked; 1 unless pass.
fn canary_guard(json: bool, args: &args::GuardArgs) -> ExitCode {
    let judged = suite7::read_summary(&args.summary).and_then(|summary| {
        let gates: suite7::Gates = json::read_file(&args.gates, "a set of SLO gates")?;
        let current = canary::Settings {
            engine: args.engine,
            adaptive_parallelism: args.adaptive_enabled,
            batch_mode: args.batch_enabled,
        };
        let decision = canary::decide(&summary, &gates, current);
        let write = |path: &Option<std::path::PathBuf>, text: String| match path {
            Some(path) => std::fs::write(path, text)
                .map_err(|err| Failure::Output(format!("cannot write {}: {err}", path.display()))),
            None => Ok(()),
        };
        let as_json = serde_json::to_string_pretty(&decision)
            .map_err(|err| Failure::Output(err.to_string()))?;
        write(&args.output_json, as_json + "\n")?;
        write(&args.output_md, canary::markdown(&decision))?;
        write(&args.output_env, canary::env_file(&decision))?;
        Ok(decision)
    });
    match judged {
        Ok(decision) => verdict(json, &decision, canary::render, decision.passed()),
        Err(failure) => report(failure, None),
    }
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
        serde_json::to_string(value).map_or_else(|err| format!("{err}\n"), |line| line + "\n")
    } else {
        readable(value)
    };
    stdout(text.as_bytes());
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CALL_FAILED)
    }
}

/// `pecr perf`: the report, and 1 when a comparison found a regression.
fn perf_command(command: &perf::PerfCommand) -> ExitCode {
    match perf::run(command) {
        Ok(report) => {
            stdout(report.text.as_bytes());
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CALL_FAILED)
            }
        }
        Err(failure) => report(failure, None),
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
        Failure::Unreachable { url, cause } => {
            let error = PecrError::new(
                ErrorCode::SourceUnavailable,
                format!("cannot reach the controller at {url}: {cause}"),
            );
            print_error_json(&error, json);
            // Humans need the hint even in JSON mode; stdout stays pure JSON.
            eprint!("{}", render::unreachable(&url, &cause));
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
fn stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

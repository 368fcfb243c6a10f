//! `pecr perf`: reads Suite 7 summaries (`perf/suite7.sh`) on this machine,
//! without calling any service. `compare` gates a summary against a
//! committed baseline; `matrix` lays several summaries side by side
//! (Markdown, JSON and an SVG chart).

mod chart;
mod compare;
mod matrix;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::args::number_in;
use crate::client::Failure;
use crate::commands::Output;
use crate::json;
use crate::suite7::{Summary, read_summary};

pub use compare::Tolerances;

#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// Compare a Suite 7 summary with a baseline; exit 1 on any regression.
    #[command(after_help = compare::RULE_HELP)]
    Compare(CompareArgs),

    /// Scenarios × candidate summaries (e.g. one per engine), each figure
    /// with its change from the baseline, as Markdown, JSON and an SVG bar
    /// chart. The Markdown also goes to stdout.
    #[command(after_help = "\
Example (one summary per controller engine):
  pecr perf matrix --baseline perf/baselines/suite7_full.summary.json \\
    --candidate baseline=target/perf/suite7/summary.json \\
    --candidate rlm=target/perf/suite7-rlm/summary.json \\
    --output-json target/perf/suite7/matrix.json --output-md target/perf/suite7/matrix.md \\
    --output-svg target/perf/suite7/matrix.svg")]
    Matrix(MatrixArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The summary to compare against (e.g. perf/baselines/suite7_short.summary.json).
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,

    /// The summary just measured (e.g. target/perf/suite7/summary.json).
    #[arg(long, value_name = "FILE")]
    pub current: PathBuf,

    /// Relative tolerance of throughput and p95/p99 latency: worse by more
    /// than a factor 1 + T is a regression.
    #[arg(long, default_value_t = 0.25, value_name = "T", value_parser = relative)]
    pub tolerance: f64,

    /// Milliseconds added to every latency limit (the scheduling delay of a
    /// busy machine, which a factor cannot absorb for a fast call).
    #[arg(long, default_value_t = 0.0, value_name = "S", value_parser = slack)]
    pub latency_slack_ms: f64,

    /// Relative tolerance of the CPU per request: more than a factor 1 + C
    /// is a regression (default: --tolerance).
    #[arg(long, value_name = "C", value_parser = relative)]
    pub cpu_tolerance: Option<f64>,

    /// Absolute tolerance of the error rate (0.01 = one point).
    #[arg(long, default_value_t = 0.01, value_name = "E", value_parser = share)]
    pub error_tolerance: f64,

    /// Absolute tolerance of each terminal mode's share of the answers, in
    /// run and operator scenarios.
    #[arg(long, default_value_t = 0.05, value_name = "M", value_parser = share)]
    pub mix_tolerance: f64,

    /// Also write the verdicts as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub output_json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The summary every delta is taken against.
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,

    /// A summary to show, named (repeat; the columns in this order).
    #[arg(long = "candidate", value_name = "NAME=FILE", required = true, value_parser = candidate)]
    pub candidates: Vec<(String, PathBuf)>,

    #[arg(long, value_name = "FILE")]
    pub output_json: Option<PathBuf>,

    #[arg(long, value_name = "FILE")]
    pub output_md: Option<PathBuf>,

    #[arg(long, value_name = "FILE")]
    pub output_svg: Option<PathBuf>,
}

/// Runs one `pecr perf` subcommand.
pub fn run(command: &PerfCommand) -> Result<Output, Failure> {
    match command {
        PerfCommand::Compare(args) => {
            let baseline = load(&args.baseline)?;
            let current = load(&args.current)?;
            let tolerances = Tolerances {
                relative: args.tolerance,
                latency_slack_ms: args.latency_slack_ms,
                cpu: args.cpu_tolerance.unwrap_or(args.tolerance),
                error_rate: args.error_tolerance,
                mix: args.mix_tolerance,
            };
            let comparison = compare::compare(
                (&args.baseline, &baseline),
                (&args.current, &current),
                tolerances,
            )
            .map_err(Failure::Usage)?;
            if let Some(path) = &args.output_json {
                write(path, &json::pretty(&comparison)?)?;
            }
            Ok(Output {
                text: compare::render(&comparison),
                passed: comparison.regressions == 0,
            })
        }
        PerfCommand::Matrix(args) => {
            let baseline = load(&args.baseline)?;
            let mut candidates = Vec::new();
            for (name, path) in &args.candidates {
                candidates.push((name.clone(), path.clone(), load(path)?));
            }
            let matrix =
                matrix::build((&args.baseline, &baseline), &candidates).map_err(Failure::Usage)?;
            let markdown = matrix::markdown(&matrix);
            if let Some(path) = &args.output_json {
                write(path, &json::pretty(&matrix)?)?;
            }
            if let Some(path) = &args.output_md {
                write(path, &markdown)?;
            }
            if let Some(path) = &args.output_svg {
                write(path, &chart::svg(&matrix))?;
            }
            Ok(Output::from(markdown))
        }
    }
}

/// A summary of this schema whose figures can be compared: finite,
/// non-negative numbers and one entry per scenario name.
fn load(path: &Path) -> Result<Summary, Failure> {
    let summary = read_summary(path)?;
    check_figures(&summary)
        .map_err(|problem| Failure::Usage(format!("{}: {problem}", path.display())))?;
    Ok(summary)
}

fn check_figures(summary: &Summary) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for scenario in &summary.scenarios {
        if !names.insert(scenario.name.as_str()) {
            return Err(format!("scenario {:?} appears twice", scenario.name));
        }
        let latency = &scenario.latency_ms;
        let figures = [
            ("duration_s", scenario.duration_s),
            ("throughput_per_s", scenario.throughput_per_s),
            ("latency_ms.p50", latency.p50),
            ("latency_ms.p95", latency.p95),
            ("latency_ms.p99", latency.p99),
            ("error_rate", scenario.error_rate),
            (
                "cpu_ms_per_request",
                scenario.cpu_ms_per_request.unwrap_or(0.0),
            ),
        ];
        for (what, value) in figures {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!(
                    "scenario {:?} has {what} = {value}, not a finite number >= 0",
                    scenario.name
                ));
            }
        }
        if scenario.error_rate > 1.0 {
            return Err(format!(
                "scenario {:?} has error_rate {} > 1",
                scenario.name, scenario.error_rate
            ));
        }
    }
    Ok(())
}

/// An output file; one that cannot be written is a usage error (exit 2).
fn write(path: &Path, text: &str) -> Result<(), Failure> {
    json::write_file(path, text).map_err(Failure::Usage)
}

fn relative(raw: &str) -> Result<f64, String> {
    number_in(raw, 0.0..=100.0, "a number in 0..=100 (0.25 = 25 %)")
}

fn slack(raw: &str) -> Result<f64, String> {
    number_in(raw, 0.0..=60_000.0, "milliseconds in 0..=60000")
}

fn share(raw: &str) -> Result<f64, String> {
    number_in(raw, 0.0..=1.0, "a number in 0..=1")
}

/// `NAME=FILE`; the name labels a column, so it is short plain text.
fn candidate(raw: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=FILE, got {raw:?}"))?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.len() > 32 || !name.chars().all(plain) {
        return Err(format!(
            "candidate name {name:?}: 1-32 characters of A-Z a-z 0-9 - _ ."
        ));
    }
    if file.is_empty() {
        return Err(format!("candidate {name:?} names no file"));
    }
    Ok((name.to_owned(), PathBuf::from(file)))
}

/// Signed relative change of `current` against `baseline`, in percent;
/// none when the baseline is zero.
fn change_pct(baseline: f64, current: f64) -> Option<f64> {
    (baseline > 0.0).then(|| 100.0 * (current - baseline) / baseline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite7::tests::scenario;

    #[test]
    fn candidates_are_named_files() {
        assert_eq!(
            candidate("rlm=target/perf/s.json").expect("parses"),
            ("rlm".to_owned(), PathBuf::from("target/perf/s.json"))
        );
        for bad in ["rlm", "=x.json", "r m=x.json", "rlm=", "<b>=x.json"] {
            assert!(candidate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tolerances_are_bounded_numbers() {
        assert_eq!(relative("2").expect("parses"), 2.0);
        assert_eq!(share("0.01").expect("parses"), 0.01);
        for bad in ["-0.1", "NaN", "inf", "x", "101"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
        assert!(share("1.5").is_err());
        assert_eq!(slack("250").expect("parses"), 250.0);
        assert!(slack("-1").is_err());
    }

    #[test]
    fn figures_that_cannot_be_compared_are_refused() {
        let mut summary = Summary {
            schema: crate::suite7::SUMMARY_SCHEMA.into(),
            mode: "short".into(),
            commit: "c".into(),
            measured_at: "2026-12-07T00:00:00Z".into(),
            machine: Default::default(),
            scenarios: vec![scenario("a", 10.0, 0.0, 10, 0)],
        };
        assert_eq!(check_figures(&summary), Ok(()));
        summary.scenarios[0].latency_ms.p99 = -1.0;
        assert!(check_figures(&summary).is_err());
        summary.scenarios[0].latency_ms.p99 = 1.0;
        summary.scenarios[0].error_rate = 1.5;
        assert!(check_figures(&summary).is_err());
        summary.scenarios[0].error_rate = 0.0;
        summary.scenarios.push(scenario("a", 10.0, 0.0, 10, 0));
        assert!(
            check_figures(&summary)
                .expect_err("a duplicate")
                .contains("twice")
        );
    }

    #[test]
    fn changes_are_relative_to_a_nonzero_baseline() {
        assert_eq!(change_pct(200.0, 150.0), Some(-25.0));
        assert_eq!(change_pct(0.0, 5.0), None);
    }
}

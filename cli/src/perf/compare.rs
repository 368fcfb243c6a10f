//! `pecr perf compare`: one summary against a baseline, scenario by
//! scenario, with the rule below. Latency and throughput get a relative
//! tolerance (the same factor both ways), CPU per request one of its own
//! (it hardly moves when other work shares the machine, where latency and
//! throughput do), the error rate and the terminal modes an absolute one,
//! because a rate that is 0 at baseline has no relative change.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::suite7::{Scenario, Summary};

use super::change_pct;

pub const RULE_HELP: &str = "\
The rule, for each scenario of the baseline (T = --tolerance, S =
--latency-slack-ms, C = --cpu-tolerance, E = --error-tolerance, M =
--mix-tolerance):
  throughput_per_s   regression when current < baseline / (1 + T)
  latency p95, p99   regression when current > baseline * (1 + T) + S
  cpu_ms_per_request regression when current > baseline * (1 + C) (when
                     both summaries measured it)
  error_rate         regression when current > baseline + E
  terminal modes     regression when a mode's share of the answers moves by
                     more than M either way (run and operator scenarios; a
                     fault's mix depends on the outage's timing, and its
                     unexpected answers are already its error_rate)
  missing            a scenario of the baseline absent from current
A scenario only in current is listed as new, not judged. Summaries of
different modes (short, full) are not compared (exit 2).
Exits 0 when nothing regressed, 1 otherwise.";

/// The tolerances of the rule (see `RULE_HELP`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerances {
    pub relative: f64,
    /// Milliseconds added to every latency limit: a busy machine delays a
    /// call by its scheduling, whatever the call's own time.
    pub latency_slack_ms: f64,
    pub cpu: f64,
    pub error_rate: f64,
    pub mix: f64,
}

/// Which summary a figure came from.
#[derive(Debug, Serialize)]
pub struct Source {
    pub path: String,
    pub mode: String,
    pub commit: String,
    pub measured_at: String,
}

impl Source {
    pub fn of(path: &Path, summary: &Summary) -> Self {
        Self {
            path: path.display().to_string(),
            mode: summary.mode.clone(),
            commit: summary.commit.clone(),
            measured_at: summary.measured_at.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub schema: &'static str,
    pub baseline: Source,
    pub current: Source,
    pub tolerances: Tolerances,
    pub regressions: usize,
    pub scenarios: Vec<Verdict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Regression,
    /// In the baseline, not in current: a regression.
    Missing,
    /// In current only: shown, not judged.
    New,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub name: String,
    pub status: Status,
    pub checks: Vec<Check>,
}

/// One figure against its limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `throughput_per_s`, `p95_ms`, `p99_ms`, `cpu_ms_per_request`,
    /// `error_rate` or `share:<MODE>`.
    pub metric: String,
    pub baseline: f64,
    pub current: f64,
    /// The worst value that still passes (for a share: the largest move).
    pub limit: f64,
    pub regressed: bool,
}

/// Rounding noise of figures written with a few decimals.
const EPSILON: f64 = 1e-9;

/// Compares `current` with `baseline`; an error when their modes differ.
pub fn compare(
    (baseline_path, baseline): (&Path, &Summary),
    (current_path, current): (&Path, &Summary),
    tolerances: Tolerances,
) -> Result<Comparison, String> {
    if baseline.mode != current.mode {
        return Err(format!(
            "{} is a {:?} summary and {} a {:?} one; compare summaries of the same mode",
            baseline_path.display(),
            baseline.mode,
            current_path.display(),
            current.mode
        ));
    }
    let mut scenarios = Vec::new();
    for before in &baseline.scenarios {
        let verdict = match current.scenarios.iter().find(|s| s.name == before.name) {
            Some(now) => {
                let checks = checks(before, now, tolerances);
                let regressed = checks.iter().any(|check| check.regressed);
                Verdict {
                    name: before.name.clone(),
                    status: if regressed {
                        Status::Regression
                    } else {
                        Status::Ok
                    },
                    checks,
                }
            }
            None => Verdict {
                name: before.name.clone(),
                status: Status::Missing,
                checks: Vec::new(),
            },
        };
        scenarios.push(verdict);
    }
    for now in &current.scenarios {
        if !baseline.scenarios.iter().any(|s| s.name == now.name) {
            scenarios.push(Verdict {
                name: now.name.clone(),
                status: Status::New,
                checks: Vec::new(),
            });
        }
    }
    let regressions = scenarios
        .iter()
        .filter(|verdict| matches!(verdict.status, Status::Regression | Status::Missing))
        .count();
    Ok(Comparison {
        schema: "pecr.suite7.compare.v1",
        baseline: Source::of(baseline_path, baseline),
        current: Source::of(current_path, current),
        tolerances,
        regressions,
        scenarios,
    })
}

fn checks(before: &Scenario, now: &Scenario, tolerances: Tolerances) -> Vec<Check> {
    let factor = 1.0 + tolerances.relative;
    let mut checks = Vec::new();
    let throughput_floor = before.throughput_per_s / factor;
    checks.push(Check {
        metric: "throughput_per_s".into(),
        baseline: before.throughput_per_s,
        current: now.throughput_per_s,
        limit: throughput_floor,
        regressed: now.throughput_per_s < throughput_floor - EPSILON,
    });
    for (metric, was, is) in [
        ("p95_ms", before.latency_ms.p95, now.latency_ms.p95),
        ("p99_ms", before.latency_ms.p99, now.latency_ms.p99),
    ] {
        let ceiling = was * factor + tolerances.latency_slack_ms;
        checks.push(Check {
            metric: metric.into(),
            baseline: was,
            current: is,
            limit: ceiling,
            regressed: is > ceiling + EPSILON,
        });
    }
    if let Some((was, is)) = before.cpu_ms_per_request.zip(now.cpu_ms_per_request) {
        let ceiling = was * (1.0 + tolerances.cpu);
        checks.push(Check {
            metric: "cpu_ms_per_request".into(),
            baseline: was,
            current: is,
            limit: ceiling,
            regressed: is > ceiling + EPSILON,
        });
    }
    let error_ceiling = before.error_rate + tolerances.error_rate;
    checks.push(Check {
        metric: "error_rate".into(),
        baseline: before.error_rate,
        current: now.error_rate,
        limit: error_ceiling,
        regressed: now.error_rate > error_ceiling + EPSILON,
    });
    if before.kind != "fault" {
        let modes: BTreeSet<&String> = before
            .terminal_modes
            .keys()
            .chain(now.terminal_modes.keys())
            .collect();
        for mode in modes {
            let was = before.mode_rate(mode);
            let is = now.mode_rate(mode);
            checks.push(Check {
                metric: format!("share:{mode}"),
                baseline: was,
                current: is,
                limit: tolerances.mix,
                regressed: (is - was).abs() > tolerances.mix + EPSILON,
            });
        }
    }
    checks
}

/// The table a person reads, then every check that failed.
pub fn render(comparison: &Comparison) -> String {
    let mut out = String::new();
    let tolerances = comparison.tolerances;
    let _ = writeln!(
        out,
        "baseline {} ({} mode, commit {}, {})\ncurrent  {} (commit {}, {})\ntolerance: throughput and p95/p99 within a factor {:.2} (latency +{} ms), CPU per request {:.2}, error rate +{}, terminal-mode shares ±{}",
        comparison.baseline.path,
        comparison.baseline.mode,
        comparison.baseline.commit,
        comparison.baseline.measured_at,
        comparison.current.path,
        comparison.current.commit,
        comparison.current.measured_at,
        1.0 + tolerances.relative,
        tolerances.latency_slack_ms,
        1.0 + tolerances.cpu,
        tolerances.error_rate,
        tolerances.mix,
    );
    let _ = writeln!(
        out,
        "\n{:<24} {:>24} {:>24} {:>24} {:>20}  {:>13}  verdict",
        "scenario", "throughput/s", "p95 ms", "p99 ms", "CPU ms/request", "error rate"
    );
    for verdict in &comparison.scenarios {
        let cell = |metric: &str| {
            verdict
                .checks
                .iter()
                .find(|check| check.metric == metric)
                .map_or_else(|| "-".to_owned(), figure_change)
        };
        let error = verdict
            .checks
            .iter()
            .find(|check| check.metric == "error_rate")
            .map_or_else(
                || "-".to_owned(),
                |check| format!("{:.3} → {:.3}", check.baseline, check.current),
            );
        let _ = writeln!(
            out,
            "{:<24} {:>24} {:>24} {:>24} {:>20}  {:>13}  {}",
            verdict.name,
            cell("throughput_per_s"),
            cell("p95_ms"),
            cell("p99_ms"),
            cell("cpu_ms_per_request"),
            error,
            match verdict.status {
                Status::Ok => "ok",
                Status::Regression => "REGRESSION",
                Status::Missing => "MISSING (regression)",
                Status::New => "new (not judged)",
            }
        );
    }
    let failed: Vec<String> = comparison
        .scenarios
        .iter()
        .flat_map(|verdict| {
            verdict
                .checks
                .iter()
                .filter(|check| check.regressed)
                .map(move |check| format!("  {}: {}", verdict.name, explain(check)))
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nregressed:\n{}", failed.join("\n"));
    }
    let _ = writeln!(
        out,
        "\n{} regression(s) in {} scenario(s)",
        comparison.regressions,
        comparison.scenarios.len()
    );
    out
}

fn figure_change(check: &Check) -> String {
    let change = change_pct(check.baseline, check.current)
        .map_or_else(String::new, |pct| format!(" ({pct:+.0}%)"));
    format!("{:.1} → {:.1}{change}", check.baseline, check.current)
}

fn explain(check: &Check) -> String {
    if let Some(mode) = check.metric.strip_prefix("share:") {
        return format!(
            "share of {mode} {:.3} → {:.3} (moves by more than {})",
            check.baseline, check.current, check.limit
        );
    }
    let side = if check.metric == "throughput_per_s" {
        "below"
    } else {
        "above"
    };
    format!(
        "{} {:.3} → {:.3}, {side} the limit {:.3}",
        check.metric, check.baseline, check.current, check.limit
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite7::SUMMARY_SCHEMA;
    use crate::suite7::tests::scenario;

    fn summary(mode: &str, scenarios: Vec<Scenario>) -> Summary {
        Summary {
            schema: SUMMARY_SCHEMA.into(),
            mode: mode.into(),
            commit: "abc1234".into(),
            measured_at: "2026-12-07T10:00:00Z".into(),
            machine: Default::default(),
            scenarios,
        }
    }

    const TOLERANCES: Tolerances = Tolerances {
        relative: 0.25,
        latency_slack_ms: 0.0,
        cpu: 1.0,
        error_rate: 0.01,
        mix: 0.05,
    };

    fn run(baseline: &Summary, current: &Summary) -> Comparison {
        compare(
            (Path::new("b.json"), baseline),
            (Path::new("c.json"), current),
            TOLERANCES,
        )
        .expect("same mode")
    }

    fn failed(comparison: &Comparison) -> Vec<(String, String)> {
        comparison
            .scenarios
            .iter()
            .flat_map(|v| {
                v.checks
                    .iter()
                    .filter(|c| c.regressed)
                    .map(|c| (v.name.clone(), c.metric.clone()))
            })
            .collect()
    }

    #[test]
    fn a_summary_equal_to_its_baseline_passes() {
        let base = summary("short", vec![scenario("run_baseline", 20.0, 0.0, 100, 0)]);
        let comparison = run(&base, &base);
        assert_eq!(comparison.regressions, 0);
        assert_eq!(comparison.scenarios[0].status, Status::Ok);
        assert!(render(&comparison).contains("0 regression(s) in 1 scenario(s)"));
    }

    #[test]
    fn latency_and_throughput_regress_beyond_the_factor() {
        let base = summary("full", vec![scenario("run_baseline", 20.0, 0.0, 1000, 0)]);
        // p95 +24 % (p99 follows it) and throughput -19 %: within 1.25.
        let mut within = base.clone();
        within.scenarios[0].latency_ms.p95 = 24.8;
        within.scenarios[0].latency_ms.p99 = 37.2;
        within.scenarios[0].throughput_per_s = 81.0;
        assert_eq!(run(&base, &within).regressions, 0);
        // p95 +26 % and throughput -21 %: both beyond.
        let mut beyond = base.clone();
        beyond.scenarios[0].latency_ms.p95 = 25.2;
        beyond.scenarios[0].throughput_per_s = 79.0;
        let comparison = run(&base, &beyond);
        assert_eq!(comparison.regressions, 1);
        assert_eq!(
            failed(&comparison),
            [
                ("run_baseline".to_owned(), "throughput_per_s".to_owned()),
                ("run_baseline".to_owned(), "p95_ms".to_owned()),
            ]
        );
        let text = render(&comparison);
        assert!(text.contains("REGRESSION"), "{text}");
        assert!(text.contains("p95_ms 20.000 → 25.200, above the limit 25.000"));
        // A slack widens every latency limit by as much.
        let slack = Tolerances {
            latency_slack_ms: 0.5,
            ..TOLERANCES
        };
        let mut slower = base.clone();
        slower.scenarios[0].latency_ms.p95 = 25.4;
        let judged = |tolerances| {
            compare(
                (Path::new("b.json"), &base),
                (Path::new("c.json"), &slower),
                tolerances,
            )
            .expect("same mode")
            .regressions
        };
        assert_eq!((judged(TOLERANCES), judged(slack)), (1, 0));
        // Faster is never a regression.
        let mut faster = base.clone();
        faster.scenarios[0].latency_ms.p99 = 1.0;
        faster.scenarios[0].throughput_per_s = 1e6;
        assert_eq!(run(&base, &faster).regressions, 0);
    }

    #[test]
    fn cpu_per_request_has_its_own_factor_when_both_measured_it() {
        let mut measured = scenario("gateway_search", 5.0, 0.0, 10, 0);
        measured.cpu_ms_per_request = Some(2.0);
        let base = summary("short", vec![measured]);
        let mut current = base.clone();
        current.scenarios[0].cpu_ms_per_request = Some(4.0);
        assert_eq!(run(&base, &current).regressions, 0);
        current.scenarios[0].cpu_ms_per_request = Some(4.1);
        assert_eq!(
            failed(&run(&base, &current)),
            [("gateway_search".to_owned(), "cpu_ms_per_request".to_owned())]
        );
        current.scenarios[0].cpu_ms_per_request = None;
        let comparison = run(&base, &current);
        assert!(
            comparison.scenarios[0]
                .checks
                .iter()
                .all(|check| check.metric != "cpu_ms_per_request")
        );
    }

    #[test]
    fn the_error_rate_has_an_absolute_tolerance() {
        let mut fault = scenario("fault_opa_unresponsive", 5.0, 0.0, 0, 100);
        fault.kind = "fault".into();
        let base = summary("short", vec![fault]);
        let mut current = base.clone();
        current.scenarios[0].error_rate = 0.01;
        assert_eq!(run(&base, &current).regressions, 0);
        current.scenarios[0].error_rate = 0.02;
        assert_eq!(
            failed(&run(&base, &current)),
            [("fault_opa_unresponsive".to_owned(), "error_rate".to_owned())]
        );
    }

    #[test]
    fn terminal_mode_shares_are_judged_for_runs_not_for_faults() {
        let base = summary("short", vec![scenario("run_rlm", 5.0, 0.0, 100, 0)]);
        // 6 % of the answers become SOURCE_UNAVAILABLE: both shares move 0.06.
        let current = summary("short", vec![scenario("run_rlm", 5.0, 0.0, 94, 6)]);
        assert_eq!(
            failed(&run(&base, &current)),
            [
                ("run_rlm".to_owned(), "share:SOURCE_UNAVAILABLE".to_owned()),
                ("run_rlm".to_owned(), "share:SUPPORTED".to_owned()),
            ]
        );
        let within = summary("short", vec![scenario("run_rlm", 5.0, 0.0, 96, 4)]);
        assert_eq!(run(&base, &within).regressions, 0);
        // The same move in a fault scenario is its outage's timing.
        let mut fault_base = base.clone();
        fault_base.scenarios[0].kind = "fault".into();
        let mut fault_now = current.clone();
        fault_now.scenarios[0].kind = "fault".into();
        assert_eq!(run(&fault_base, &fault_now).regressions, 0);
    }

    #[test]
    fn a_missing_scenario_regresses_and_a_new_one_is_not_judged() {
        let base = summary(
            "short",
            vec![
                scenario("run_baseline", 5.0, 0.0, 10, 0),
                scenario("gateway_search", 5.0, 0.0, 10, 0),
            ],
        );
        let current = summary(
            "short",
            vec![
                scenario("run_baseline", 5.0, 0.0, 10, 0),
                scenario("run_rlm", 5.0, 0.0, 10, 0),
            ],
        );
        let comparison = run(&base, &current);
        let statuses: Vec<(&str, Status)> = comparison
            .scenarios
            .iter()
            .map(|v| (v.name.as_str(), v.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("run_baseline", Status::Ok),
                ("gateway_search", Status::Missing),
                ("run_rlm", Status::New),
            ]
        );
        assert_eq!(comparison.regressions, 1);
    }

    #[test]
    fn summaries_of_different_modes_are_not_compared() {
        let short = summary("short", vec![]);
        let full = summary("full", vec![]);
        let error = compare(
            (Path::new("b.json"), &short),
            (Path::new("c.json"), &full),
            TOLERANCES,
        )
        .expect_err("modes differ");
        assert!(error.contains("same mode"), "{error}");
    }
}

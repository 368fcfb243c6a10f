//! `pecr perf matrix`: scenarios × candidate summaries (typically one per
//! controller engine), every figure with its change from the baseline's
//! same scenario. The JSON keeps the figures; the Markdown shows one table
//! per figure, so each table reads across the candidates.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::suite7::{Scenario, Summary};

use super::change_pct;
use super::compare::Source;

#[derive(Debug, Serialize)]
pub struct Matrix {
    pub schema: &'static str,
    pub baseline: Described,
    pub candidates: Vec<Described>,
    pub rows: Vec<Row>,
}

/// A summary with its name (the baseline's is `baseline summary`, apart
/// from a candidate named `baseline`, the usual name of the baseline engine's
/// run) and its machine.
#[derive(Debug, Serialize)]
pub struct Described {
    pub name: String,
    #[serde(flatten)]
    pub source: Source,
    pub machine: BTreeMap<String, String>,
}

/// One scenario across the candidates.
#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub kind: String,
    pub baseline: Option<Figures>,
    /// One per candidate, in the candidates' order.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Serialize)]
pub struct Cell {
    pub candidate: String,
    /// None when the candidate has no such scenario.
    pub figures: Option<Figures>,
    /// None without figures, or without the baseline's.
    pub change: Option<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub engine: Option<String>,
    pub requests: u64,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    pub cpu_ms_per_request: Option<f64>,
    pub terminal_modes: BTreeMap<String, u64>,
}

impl From<&Scenario> for Figures {
    fn from(scenario: &Scenario) -> Self {
        Self {
            engine: scenario.engine.clone(),
            requests: scenario.requests,
            throughput_per_s: scenario.throughput_per_s,
            p50_ms: scenario.latency_ms.p50,
            p95_ms: scenario.latency_ms.p95,
            p99_ms: scenario.latency_ms.p99,
            error_rate: scenario.error_rate,
            cpu_ms_per_request: scenario.cpu_ms_per_request,
            terminal_modes: scenario.terminal_modes.clone(),
        }
    }
}

/// Changes from the baseline: relative in percent (none when the baseline's
/// figure is 0), the error rate in absolute points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub throughput_pct: Option<f64>,
    pub p95_pct: Option<f64>,
    pub p99_pct: Option<f64>,
    pub error_rate_points: f64,
    pub cpu_pct: Option<f64>,
}

impl Change {
    fn between(baseline: &Figures, current: &Figures) -> Self {
        Self {
            throughput_pct: change_pct(baseline.throughput_per_s, current.throughput_per_s),
            p95_pct: change_pct(baseline.p95_ms, current.p95_ms),
            p99_pct: change_pct(baseline.p99_ms, current.p99_ms),
            error_rate_points: current.error_rate - baseline.error_rate,
            cpu_pct: baseline
                .cpu_ms_per_request
                .zip(current.cpu_ms_per_request)
                .and_then(|(was, is)| change_pct(was, is)),
        }
    }
}

fn described(name: &str, path: &Path, summary: &Summary) -> Described {
    Described {
        name: name.to_owned(),
        source: Source::of(path, summary),
        machine: summary.machine.clone(),
    }
}

/// The matrix of `candidates` against `baseline`; an error for a repeated
/// candidate name or a summary of another mode than the baseline's.
pub fn build(
    (baseline_path, baseline): (&Path, &Summary),
    candidates: &[(String, PathBuf, Summary)],
) -> Result<Matrix, String> {
    for (index, (name, path, summary)) in candidates.iter().enumerate() {
        if candidates[..index]
            .iter()
            .any(|(other, _, _)| other == name)
        {
            return Err(format!("candidate name {name:?} is given twice"));
        }
        if summary.mode != baseline.mode {
            return Err(format!(
                "candidate {name} ({}) is a {:?} summary, the baseline a {:?} one",
                path.display(),
                summary.mode,
                baseline.mode
            ));
        }
    }
    // The baseline's scenarios in its order, then any others as first seen.
    let mut order: Vec<(&str, &str)> = Vec::new();
    let all = baseline
        .scenarios
        .iter()
        .chain(candidates.iter().flat_map(|(_, _, s)| s.scenarios.iter()));
    for scenario in all {
        if !order.iter().any(|(name, _)| *name == scenario.name) {
            order.push((&scenario.name, &scenario.kind));
        }
    }
    let find = |summary: &Summary, name: &str| {
        summary
            .scenarios
            .iter()
            .find(|s| s.name == name)
            .map(Figures::from)
    };
    let rows = order
        .into_iter()
        .map(|(name, kind)| {
            let base = find(baseline, name);
            let cells = candidates
                .iter()
                .map(|(candidate, _, summary)| {
                    let figures = find(summary, name);
                    let change = base
                        .as_ref()
                        .zip(figures.as_ref())
                        .map(|(was, is)| Change::between(was, is));
                    Cell {
                        candidate: candidate.clone(),
                        figures,
                        change,
                    }
                })
                .collect();
            Row {
                scenario: name.to_owned(),
                kind: kind.to_owned(),
                baseline: base,
                cells,
            }
        })
        .collect();
    Ok(Matrix {
        schema: "pecr.suite7.matrix.v1",
        baseline: described("baseline summary", baseline_path, baseline),
        candidates: candidates
            .iter()
            .map(|(name, path, summary)| described(name, path, summary))
            .collect(),
        rows,
    })
}

/// One table of one figure: the value, and its change for candidates.
struct Table {
    title: &'static str,
    value: fn(&Figures) -> Option<String>,
    change: fn(&Change) -> Option<String>,
}

fn pct(change: Option<f64>) -> Option<String> {
    change.map(|pct| format!("{pct:+.1} %"))
}

const TABLES: [Table; 6] = [
    Table {
        title: "Throughput (answers per second)",
        value: |f| Some(format!("{:.1}", f.throughput_per_s)),
        change: |c| pct(c.throughput_pct),
    },
    Table {
        title: "p95 latency (ms)",
        value: |f| Some(format!("{:.2}", f.p95_ms)),
        change: |c| pct(c.p95_pct),
    },
    Table {
        title: "p99 latency (ms)",
        value: |f| Some(format!("{:.2}", f.p99_ms)),
        change: |c| pct(c.p99_pct),
    },
    Table {
        title: "Error rate (answers neither expected nor successful)",
        value: |f| Some(format!("{:.4}", f.error_rate)),
        change: |c| Some(format!("{:+.4}", c.error_rate_points)),
    },
    Table {
        title: "CPU of the three services per request (ms)",
        value: |f| f.cpu_ms_per_request.map(|cpu| format!("{cpu:.3}")),
        change: |c| pct(c.cpu_pct),
    },
    Table {
        title: "Terminal modes (answers by mode or error code)",
        value: |f| Some(modes(&f.terminal_modes)),
        change: |_| None,
    },
];

fn modes(modes: &BTreeMap<String, u64>) -> String {
    if modes.is_empty() {
        return "–".to_owned();
    }
    modes
        .iter()
        .map(|(mode, count)| format!("{mode} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(out: &mut String, summary: &Described) {
    let load = summary
        .machine
        .get("loadavg")
        .map_or_else(String::new, |load| format!(", load average {load}"));
    let _ = writeln!(
        out,
        "- **{}**: `{}` ({} mode, commit {}, {}{load})",
        summary.name,
        summary.source.path,
        summary.source.mode,
        summary.source.commit,
        summary.source.measured_at
    );
}

/// The matrix as Markdown: the summaries, then one table per figure.
pub fn markdown(matrix: &Matrix) -> String {
    let mut out = String::from("# Suite 7 benchmark matrix\n\n");
    describe(&mut out, &matrix.baseline);
    for candidate in &matrix.candidates {
        describe(&mut out, candidate);
    }
    out.push_str(
        "\nEach candidate's figure is followed by its change from the baseline's \
         same scenario (relative; the error rate in absolute points); – when the \
         summary has no such scenario.\n",
    );
    let mut header = String::from("| scenario | kind | baseline summary |");
    let mut rule = String::from("| --- | --- | ---: |");
    for candidate in &matrix.candidates {
        let _ = write!(header, " {} |", candidate.name);
        rule.push_str(" ---: |");
    }
    for table in &TABLES {
        let _ = writeln!(out, "\n## {}\n\n{header}\n{rule}", table.title);
        for row in &matrix.rows {
            let base = row
                .baseline
                .as_ref()
                .and_then(table.value)
                .unwrap_or_else(|| "–".to_owned());
            let _ = write!(out, "| {} | {} | {base} |", row.scenario, row.kind);
            for cell in &row.cells {
                let text = match (&cell.figures, &cell.change) {
                    (None, _) => "–".to_owned(),
                    (Some(figures), change) => {
                        let value = (table.value)(figures).unwrap_or_else(|| "–".to_owned());
                        match change.as_ref().and_then(table.change) {
                            Some(delta) => format!("{value} ({delta})"),
                            None => value,
                        }
                    }
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::suite7::SUMMARY_SCHEMA;
    use crate::suite7::tests::scenario;

    fn summary(scenarios: Vec<Scenario>) -> Summary {
        Summary {
            schema: SUMMARY_SCHEMA.into(),
            mode: "full".into(),
            commit: "abc1234".into(),
            measured_at: "2026-12-07T10:00:00Z".into(),
            machine: BTreeMap::from([("loadavg".to_owned(), "1.50".to_owned())]),
            scenarios,
        }
    }

    /// A baseline with two scenarios; `rlm` has one of them and one more.
    pub fn example() -> Matrix {
        let baseline = summary(vec![
            scenario("run_baseline", 20.0, 0.0, 1000, 0),
            scenario("fault_opa_unresponsive", 4.0, 0.0, 0, 200),
        ]);
        let mut slower = scenario("run_baseline", 30.0, 0.02, 500, 0);
        slower.cpu_ms_per_request = Some(3.0);
        let rlm = summary(vec![slower, scenario("run_rlm", 50.0, 0.0, 100, 0)]);
        build(
            (Path::new("perf/baselines/b.json"), &baseline),
            &[
                ("baseline".into(), "b.json".into(), baseline.clone()),
                ("rlm".into(), "r.json".into(), rlm),
            ],
        )
        .expect("builds")
    }

    #[test]
    fn cells_carry_the_change_from_the_baseline() {
        let matrix = example();
        let names: Vec<&str> = matrix.rows.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(names, ["run_baseline", "fault_opa_unresponsive", "run_rlm"]);
        let rlm = &matrix.rows[0].cells[1];
        let change = rlm.change.as_ref().expect("both have run_baseline");
        assert_eq!(change.throughput_pct, Some(-50.0));
        assert_eq!(change.p95_pct, Some(50.0));
        assert!((change.error_rate_points - 0.02).abs() < 1e-12);
        // The baseline measured no CPU, so there is no change to show.
        assert_eq!(change.cpu_pct, None);
        // rlm has no fault scenario; the baseline has no run_rlm.
        assert!(matrix.rows[1].cells[1].figures.is_none());
        assert!(matrix.rows[2].baseline.is_none());
        assert!(matrix.rows[2].cells[1].change.is_none());
    }

    #[test]
    fn the_markdown_has_a_table_per_figure() {
        let text = markdown(&example());
        assert!(text.contains("- **rlm**: `r.json` (full mode, commit abc1234, 2026-12-07T10:00:00Z, load average 1.50)"));
        assert!(text.contains("- **baseline summary**: `perf/baselines/b.json`"));
        assert_eq!(
            text.matches("| scenario | kind | baseline summary | baseline | rlm |")
                .count(),
            6
        );
        assert!(
            text.contains("| run_baseline | run | 100.0 | 100.0 (+0.0 %) | 50.0 (-50.0 %) |"),
            "{text}"
        );
        assert!(
            text.contains("| run_baseline | run | 0.0000 | 0.0000 (+0.0000) | 0.0200 (+0.0200) |")
        );
        assert!(text.contains("| fault_opa_unresponsive | run | 20.0 | 20.0 (+0.0 %) | – |"));
        assert!(text.contains("| run_rlm | run | – | – | 10.0 |"));
        assert!(text.contains("SOURCE_UNAVAILABLE 0, SUPPORTED 1000"));
    }

    #[test]
    fn repeated_names_and_other_modes_are_refused() {
        let base = summary(vec![]);
        let twice = [
            ("a".to_owned(), PathBuf::from("x"), base.clone()),
            ("a".to_owned(), PathBuf::from("y"), base.clone()),
        ];
        assert!(build((Path::new("b"), &base), &twice).is_err());
        let mut short = base.clone();
        short.mode = "short".into();
        let other = [("s".to_owned(), PathBuf::from("s"), short)];
        assert!(build((Path::new("b"), &base), &other).is_err());
    }
}

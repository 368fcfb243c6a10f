//! The Suite 7 summary (`perf/suite7.sh` writes it, `target/perf/suite7/
//! summary.json`) and the SLO gates read against it. One schema shared by
//! the baseline comparison, the benchmark matrix and the canary guard.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::client::Failure;

/// `schema` of every summary this version writes and reads.
pub const SUMMARY_SCHEMA: &str = "pecr.suite7.v1";

/// One Suite 7 run: what ran where, and one entry per scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub schema: String,
    /// `short` (scripts/test.sh) or `full`.
    pub mode: String,
    /// The source commit measured.
    pub commit: String,
    /// UTC, RFC 3339.
    pub measured_at: String,
    /// What the figures were measured on (cores, load while measuring, …).
    #[serde(default)]
    pub machine: BTreeMap<String, String>,
    pub scenarios: Vec<Scenario>,
}

/// The figures of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// e.g. `run_baseline`, `run_rlm`, `gateway_fetch_rows`,
    /// `fault_opa_unresponsive`.
    pub name: String,
    /// `run`, `operator` or `fault`.
    pub kind: String,
    /// `baseline` or `rlm` for runs; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    pub requests: u64,
    pub duration_s: f64,
    pub throughput_per_s: f64,
    pub latency_ms: Latency,
    /// Answers that were not the scenario's expected answer, over requests.
    pub error_rate: f64,
    /// Terminal modes of the answers, by name.
    #[serde(default)]
    pub terminal_modes: BTreeMap<String, u64>,
    /// CPU time of the services per request, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_request: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Scenario {
    /// The share of answers whose terminal mode is `mode`.
    pub fn mode_rate(&self, mode: &str) -> f64 {
        let total: u64 = self.terminal_modes.values().sum();
        if total == 0 {
            return 0.0;
        }
        self.terminal_modes.get(mode).copied().unwrap_or(0) as f64 / total as f64
    }
}

/// SLO gates by scenario name; a scenario without gates is not judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    pub scenarios: BTreeMap<String, Gate>,
}

/// The bounds one scenario must stay within; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_throughput_per_s: Option<f64>,
    /// Least share of SUPPORTED answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_supported_rate: Option<f64>,
}

impl Gate {
    /// Every bound `scenario` breaks, as `what: value vs bound`.
    pub fn violations(&self, scenario: &Scenario) -> Vec<String> {
        let mut broken = Vec::new();
        let mut above = |what: &str, value: f64, bound: Option<f64>| {
            if let Some(bound) = bound.filter(|bound| value > *bound) {
                broken.push(format!("{what} {value:.3} > {bound}"));
            }
        };
        above("p95_ms", scenario.latency_ms.p95, self.max_p95_ms);
        above("p99_ms", scenario.latency_ms.p99, self.max_p99_ms);
        above("error_rate", scenario.error_rate, self.max_error_rate);
        let mut below = |what: &str, value: f64, bound: Option<f64>| {
            if let Some(bound) = bound.filter(|bound| value < *bound) {
                broken.push(format!("{what} {value:.3} < {bound}"));
            }
        };
        below(
            "throughput_per_s",
            scenario.throughput_per_s,
            self.min_throughput_per_s,
        );
        below(
            "supported_rate",
            scenario.mode_rate("SUPPORTED"),
            self.min_supported_rate,
        );
        broken
    }
}

/// A summary, refused unless it is of this schema.
pub fn read_summary(path: &Path) -> Result<Summary, Failure> {
    let summary: Summary = crate::json::read_file(path, "a Suite 7 summary")?;
    if summary.schema != SUMMARY_SCHEMA {
        return Err(Failure::Usage(format!(
            "{} has schema {:?}; this pecr reads {SUMMARY_SCHEMA:?}",
            path.display(),
            summary.schema
        )));
    }
    Ok(summary)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn scenario(name: &str, p95: f64, error_rate: f64, supported: u64, other: u64) -> Scenario {
        Scenario {
            name: name.into(),
            kind: "run".into(),
            engine: Some("rlm".into()),
            requests: supported + other,
            duration_s: 10.0,
            throughput_per_s: (supported + other) as f64 / 10.0,
            latency_ms: Latency {
                p50: p95 / 2.0,
                p95,
                p99: p95 * 1.5,
            },
            error_rate,
            terminal_modes: BTreeMap::from([
                ("SUPPORTED".to_owned(), supported),
                ("SOURCE_UNAVAILABLE".to_owned(), other),
            ]),
            cpu_ms_per_request: None,
        }
    }

    #[test]
    fn gates_name_every_broken_bound() {
        let gate = Gate {
            max_p95_ms: Some(100.0),
            max_error_rate: Some(0.01),
            min_throughput_per_s: Some(50.0),
            min_supported_rate: Some(0.9),
            ..Gate::default()
        };
        assert!(
            gate.violations(&scenario("ok", 80.0, 0.0, 900, 0))
                .is_empty()
        );
        let broken = gate.violations(&scenario("slow", 150.0, 0.2, 80, 20));
        assert_eq!(
            broken,
            [
                "p95_ms 150.000 > 100",
                "error_rate 0.200 > 0.01",
                "throughput_per_s 10.000 < 50",
                "supported_rate 0.800 < 0.9",
            ]
        );
    }
}

//! `pecr replays gate`: the replay regression gate. A committed expectation
//! set says, per principal and question, which terminal mode, cited sources
//! and claim statuses a run must come out with; the gate reads the caller's
//! newest stored run of each question and reports every difference. With
//! `--ask` it first asks each question once, so CI gates fresh runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use pecr_proto::v1::{GetReplayRequest, ListReplaysRequest, ReplayBundle, RunRequest};
use serde::{Deserialize, Serialize};

use crate::client::{Controller, Failure};
use crate::usefulness::Source;

/// The expectation file (`fixtures/regression/expectations.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectationSet {
    pub expectations: Vec<Expectation>,
}

/// What one principal's run of one question must come out with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub principal: String,
    pub question: String,
    /// `SUPPORTED`, `INSUFFICIENT_EVIDENCE`, …
    pub terminal_mode: String,
    /// The cited units' sources, in any order.
    #[serde(default)]
    pub cited_sources: BTreeSet<Source>,
    /// Every claim's status, in claim order.
    pub claim_statuses: Vec<String>,
}

/// The gate's verdict on one expectation.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub question: String,
    /// The run it was checked against; None when none is stored.
    pub run_id: Option<String>,
    /// One line per difference; empty when the run meets the expectation.
    pub differences: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GateReport {
    pub principal: String,
    pub checked: usize,
    pub regressions: usize,
    pub results: Vec<Checked>,
}

impl GateReport {
    pub fn passed(&self) -> bool {
        self.regressions == 0
    }
}

pub fn load(path: &Path) -> Result<ExpectationSet, Failure> {
    crate::json::read_file(path, "an expectation set")
}

/// Gates the caller's newest runs (the newest `limit`) against the
/// expectations for `principal`, asking each question first when `ask`.
pub async fn run(
    controller: &Controller,
    set: &ExpectationSet,
    principal: &str,
    limit: u32,
    ask: bool,
) -> Result<GateReport, Failure> {
    let mine: Vec<&Expectation> = set
        .expectations
        .iter()
        .filter(|expectation| expectation.principal == principal)
        .collect();
    if mine.is_empty() {
        return Err(Failure::Usage(format!(
            "the expectation set has no question for principal {principal:?}"
        )));
    }
    // Each call gets the whole --timeout-ms, as the flag says.
    if ask {
        for expectation in &mine {
            let request = RunRequest {
                query: expectation.question.clone(),
                budget: None,
            };
            controller.renewed().run_streamed(request, |_| {}).await?;
        }
    }
    let questions: BTreeSet<&str> = mine.iter().map(|e| e.question.as_str()).collect();
    let newest = newest_bundles(controller, limit, &questions).await?;
    let results: Vec<Checked> = mine
        .iter()
        .map(|expectation| check(expectation, newest.get(expectation.question.as_str())))
        .collect();
    Ok(GateReport {
        principal: principal.to_owned(),
        checked: results.len(),
        regressions: results.iter().filter(|r| !r.differences.is_empty()).count(),
        results,
    })
}

/// The newest bundle of each of `questions` among the caller's newest
/// `limit` runs; bundles are fetched newest first, until each question has
/// one.
async fn newest_bundles<'q>(
    controller: &Controller,
    limit: u32,
    questions: &BTreeSet<&'q str>,
) -> Result<BTreeMap<&'q str, ReplayBundle>, Failure> {
    let request = ListReplaysRequest {
        limit: Some(limit),
        engine_mode: None,
    };
    let listed = controller
        .renewed()
        .call(request, |mut c, r| async move { c.list_replays(r).await })
        .await?;
    let mut newest = BTreeMap::new();
    for metadata in listed.replays {
        if newest.len() == questions.len() {
            break;
        }
        let request = GetReplayRequest {
            run_id: metadata.run_id,
        };
        let replay = controller
            .renewed()
            .call(request, |mut c, r| async move { c.get_replay(r).await })
            .await?;
        if let Some(bundle) = replay.bundle
            && let Some(question) = questions.get(bundle.query.as_str())
        {
            newest.entry(*question).or_insert(bundle);
        }
    }
    Ok(newest)
}

fn check(expectation: &Expectation, bundle: Option<&ReplayBundle>) -> Checked {
    let question = expectation.question.clone();
    let Some(bundle) = bundle else {
        return Checked {
            question,
            run_id: None,
            differences: vec!["no stored run of this question".to_owned()],
        };
    };
    let mut differences = Vec::new();
    let mode = crate::render::mode(bundle.metadata.as_ref().map_or(0, |m| m.terminal_mode));
    if mode != expectation.terminal_mode {
        differences.push(format!(
            "terminal mode: expected {}, got {mode}",
            expectation.terminal_mode
        ));
    }
    let expected = &expectation.cited_sources;
    let cited: BTreeSet<Source> = bundle.cited_evidence.iter().map(Source::from).collect();
    for missing in expected.difference(&cited) {
        differences.push(format!(
            "cited sources: {} {} no longer cited",
            missing.source_system, missing.object_id
        ));
    }
    for extra in cited.difference(expected) {
        differences.push(format!(
            "cited sources: {} {} cited, not expected",
            extra.source_system, extra.object_id
        ));
    }
    let statuses: Vec<String> = bundle
        .claim_map
        .iter()
        .flat_map(|map| map.claims.iter())
        .map(|claim| crate::render::claim_status(claim.status))
        .collect();
    if statuses != expectation.claim_statuses {
        differences.push(format!(
            "claim statuses: expected [{}], got [{}]",
            expectation.claim_statuses.join(", "),
            statuses.join(", ")
        ));
    }
    Checked {
        question,
        run_id: bundle.metadata.as_ref().map(|m| m.run_id.clone()),
        differences,
    }
}

/// `gate: 6 questions for dev, 0 regressions`, then one block per regression.
pub fn render(report: &GateReport) -> String {
    let mut out = format!(
        "gate: {} for {}, {}\n",
        crate::render::plural(report.checked, "question"),
        report.principal,
        crate::render::plural(report.regressions, "regression")
    );
    for result in report.results.iter().filter(|r| !r.differences.is_empty()) {
        let _ = writeln!(
            out,
            "  {:?} ({})",
            result.question,
            result.run_id.as_deref().unwrap_or("no run")
        );
        for difference in &result.differences {
            let _ = writeln!(out, "    {difference}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_proto::v1::{
        Claim, ClaimMap, EvidenceUnitRef, ReplayBundleMetadata, TerminalMode, claim,
    };

    fn expectation() -> Expectation {
        Expectation {
            principal: "dev".into(),
            question: "q".into(),
            terminal_mode: "SUPPORTED".into(),
            cited_sources: BTreeSet::from([Source {
                source_system: "pg_safeview".into(),
                object_id: "row/1".into(),
            }]),
            claim_statuses: vec!["SUPPORTED".into()],
        }
    }

    fn bundle(mode: TerminalMode, object_id: &str, status: claim::Status) -> ReplayBundle {
        ReplayBundle {
            metadata: Some(ReplayBundleMetadata {
                run_id: "r1".into(),
                terminal_mode: mode as i32,
                ..Default::default()
            }),
            query: "q".into(),
            claim_map: Some(ClaimMap {
                claims: vec![Claim {
                    status: status as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            cited_evidence: vec![EvidenceUnitRef {
                source_system: "pg_safeview".into(),
                object_id: object_id.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_run_as_expected_passes() {
        let run = bundle(TerminalMode::Supported, "row/1", claim::Status::Supported);
        let checked = check(&expectation(), Some(&run));
        assert!(checked.differences.is_empty(), "{checked:?}");
    }

    #[test]
    fn every_difference_is_named() {
        let run = bundle(
            TerminalMode::InsufficientEvidence,
            "row/2",
            claim::Status::Unknown,
        );
        let checked = check(&expectation(), Some(&run));
        assert_eq!(
            checked.differences,
            [
                "terminal mode: expected SUPPORTED, got INSUFFICIENT_EVIDENCE",
                "cited sources: pg_safeview row/1 no longer cited",
                "cited sources: pg_safeview row/2 cited, not expected",
                "claim statuses: expected [SUPPORTED], got [UNKNOWN]",
            ]
        );
        let missing = check(&expectation(), None);
        assert_eq!(missing.differences, ["no stored run of this question"]);
    }
}

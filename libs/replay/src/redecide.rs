//! Re-deciding a stored run: the finalize gate runs again on the bundle's
//! own claim map, evidence and usage, and its verdict is compared with what
//! the bundle recorded.
//!
//! The gate's input is rebuilt from the bundle alone: the stored claims with
//! their stored statuses and evidence ids, the bundle's evidence ids as the
//! emitted evidence, its operator-call and byte counters against its budget,
//! and the stored `coverage_threshold`. The gate is idempotent on its own
//! output (trimmed texts, sorted ids, evidence-less SUPPORTED claims already
//! downgraded), so an untouched bundle re-decides to exactly what it holds.
//!
//! "The same" means: the terminal mode (in the claim map and in the
//! metadata), the observed coverage bit for bit (the gate computes it as a
//! plain quotient, with no rounding), and every claim's status and id.

use std::fmt::Display;

use pecr_proto::v1;

use crate::bundle::{ClaimMap, ReplayBundle};
use crate::finalize_gate::{SessionUsage, gate};
use crate::modes::TerminalMode;
use crate::run_record::reported_mode;
use crate::wire::{claim_map_to_proto, contract_mode, proto_status};

/// The outcome of re-deciding one bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redecision {
    pub run_id: String,
    /// One line per difference; empty when the run re-decides the same.
    pub differences: Vec<String>,
}

impl Redecision {
    pub fn is_same(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Runs the finalize gate again on `bundle` and compares its verdict with
/// the stored one.
pub fn redecide(bundle: &ReplayBundle) -> Redecision {
    let differences = match regate(bundle) {
        Ok(gated) => compare(bundle, &gated),
        Err(reason) => vec![reason],
    };
    Redecision {
        run_id: bundle.metadata.run_id.clone(),
        differences,
    }
}

/// What the gate decides today on the bundle's claim map, with the run's
/// reported mode applied as when it was recorded.
fn regate(bundle: &ReplayBundle) -> Result<v1::ClaimMap, String> {
    // Bundles keep their ids sorted and de-duplicated; the gate's lookup
    // relies on that, so it is not taken on trust.
    let mut emitted = bundle.evidence_unit_ids.clone();
    emitted.sort_unstable();
    emitted.dedup();
    let usage = SessionUsage {
        emitted_evidence_ids: &emitted,
        operator_calls_used: u64::from(bundle.operator_calls_used),
        max_operator_calls: u64::from(bundle.budget.max_operator_calls),
        bytes_used: bundle.bytes_used,
        max_bytes: bundle.budget.max_bytes,
    };
    let mut gated = gate(
        claim_map_to_proto(&bundle.claim_map),
        &usage,
        bundle.claim_map.coverage_threshold,
    )
    .map_err(|error| format!("the gate refuses the stored claim map: {}", error.message))?;
    let decided = contract_mode(gated.terminal_mode).ok_or("the gate decided no terminal mode")?;
    gated.terminal_mode = v1_mode(reported_mode(decided, loop_failure(bundle)));
    Ok(gated)
}

/// The loop's own failure, which the run reports instead of the gate's
/// INSUFFICIENT_EVIDENCE. The engine leaves the loop in INSUFFICIENT_PERMISSION
/// or SOURCE_UNAVAILABLE only when an operator call failed that way, so the
/// stored loop mode tells the failure apart.
fn loop_failure(bundle: &ReplayBundle) -> Option<TerminalMode> {
    matches!(
        bundle.loop_terminal_mode,
        TerminalMode::InsufficientPermission | TerminalMode::SourceUnavailable
    )
    .then_some(bundle.loop_terminal_mode)
}

fn v1_mode(mode: TerminalMode) -> i32 {
    crate::wire::proto_mode(mode) as i32
}

fn compare(bundle: &ReplayBundle, gated: &v1::ClaimMap) -> Vec<String> {
    let stored: &ClaimMap = &bundle.claim_map;
    let mut differences = Vec::new();
    let decided = mode_name(gated.terminal_mode);
    let mut differ = |what: &str, stored: &dyn Display, decided: &dyn Display| {
        differences.push(format!("{what}: stored {stored}, re-decided {decided}"));
    };
    if stored.terminal_mode.as_str() != decided {
        differ("terminal mode", &stored.terminal_mode.as_str(), &decided);
    }
    if bundle.metadata.terminal_mode.as_str() != decided {
        differ(
            "metadata terminal mode",
            &bundle.metadata.terminal_mode.as_str(),
            &decided,
        );
    }
    if stored.coverage_observed.to_bits() != gated.coverage_observed.to_bits() {
        differ(
            "coverage",
            &stored.coverage_observed,
            &gated.coverage_observed,
        );
    }
    if stored.claims.len() != gated.claims.len() {
        differ("claims", &stored.claims.len(), &gated.claims.len());
    }
    for (index, (kept, decided)) in stored.claims.iter().zip(&gated.claims).enumerate() {
        let number = index + 1;
        let status = proto_status(kept.status) as i32;
        if status != decided.status {
            differ(
                &format!("claim {number} status"),
                &kept.status.as_str(),
                &status_name(decided.status),
            );
        }
        if kept.claim_id != decided.claim_id {
            differ(
                &format!("claim {number} id"),
                &kept.claim_id,
                &decided.claim_id,
            );
        }
    }
    differences
}

fn mode_name(mode: i32) -> &'static str {
    v1::TerminalMode::try_from(mode).map_or("TERMINAL_MODE_UNSPECIFIED", |mode| mode.as_str_name())
}

fn status_name(status: i32) -> &'static str {
    v1::claim::Status::try_from(status).map_or("STATUS_UNSPECIFIED", |status| status.as_str_name())
}

#[cfg(test)]
mod tests {
    use pecr_contracts::budget::Budget;
    use serde_json::Value;

    use super::*;
    use crate::bundle::ReplayBundle;
    use crate::fixtures::{ID_A, ID_B};
    use crate::modes::{ClaimStatus, EngineMode};
    use crate::run_record::{RunRecord, SessionFacts};
    use crate::wire::claim_map_from_proto;
    use v1::claim::Status;

    /// One way a run can end, as the gateway and the engine saw it.
    struct Shape {
        name: &'static str,
        claims: Vec<v1::Claim>,
        threshold: f64,
        calls: (u32, u32),
        bytes: (u64, u64),
        loop_mode: TerminalMode,
    }

    fn claim(text: &str, status: Status, ids: &[&str]) -> v1::Claim {
        v1::Claim {
            claim_id: String::new(),
            claim_text: text.into(),
            status: status as i32,
            evidence_unit_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    fn shape(name: &'static str, claims: Vec<v1::Claim>, threshold: f64) -> Shape {
        Shape {
            name,
            claims,
            threshold,
            calls: (2, 10),
            bytes: (300, 1_048_576),
            loop_mode: TerminalMode::InsufficientEvidence,
        }
    }

    fn shapes() -> Vec<Shape> {
        let supported = || claim(" doc a says so ", Status::Supported, &[ID_B, ID_A, ID_A]);
        vec![
            shape("supported", vec![supported()], 0.95),
            shape(
                "supported and assumptions",
                vec![
                    supported(),
                    claim("the reader means doc a", Status::Assumption, &[]),
                ],
                0.95,
            ),
            shape(
                "coverage below the threshold",
                vec![
                    supported(),
                    claim("a guess", Status::Unknown, &[]),
                    claim("another guess", Status::Unknown, &[]),
                ],
                0.5,
            ),
            shape(
                "coverage at a third, above the threshold",
                vec![
                    supported(),
                    claim("a guess", Status::Unknown, &[]),
                    claim("another guess", Status::Unknown, &[]),
                ],
                0.3,
            ),
            shape(
                "supported without evidence is downgraded",
                vec![supported(), claim("no evidence", Status::Supported, &[])],
                0.5,
            ),
            shape(
                "only assumptions",
                vec![claim("an assumption", Status::Assumption, &[])],
                0.0,
            ),
            Shape {
                calls: (11, 10),
                ..shape("calls over budget", vec![supported()], 0.95)
            },
            Shape {
                bytes: (2048, 1024),
                ..shape("bytes over budget", vec![supported()], 0.95)
            },
            Shape {
                bytes: (5_000_000, 0),
                ..shape("unlimited bytes", vec![supported()], 0.95)
            },
            Shape {
                loop_mode: TerminalMode::SourceUnavailable,
                ..shape(
                    "a failed source and no support",
                    vec![claim("source unavailable.", Status::Unknown, &[])],
                    0.95,
                )
            },
            Shape {
                loop_mode: TerminalMode::InsufficientPermission,
                ..shape(
                    "a denied call and no support",
                    vec![claim("permission denied.", Status::Unknown, &[])],
                    0.95,
                )
            },
            Shape {
                loop_mode: TerminalMode::InsufficientPermission,
                ..shape(
                    "a denied call, supported after all",
                    vec![supported()],
                    0.95,
                )
            },
        ]
    }

    fn emitted() -> Vec<String> {
        vec![ID_A.to_owned(), ID_B.to_owned()]
    }

    fn gate_shape(shape: &Shape, map: v1::ClaimMap) -> v1::ClaimMap {
        let emitted = emitted();
        let usage = SessionUsage {
            emitted_evidence_ids: &emitted,
            operator_calls_used: u64::from(shape.calls.0),
            max_operator_calls: u64::from(shape.calls.1),
            bytes_used: shape.bytes.0,
            max_bytes: shape.bytes.1,
        };
        gate(map, &usage, shape.threshold).expect("gated")
    }

    fn proposed(shape: &Shape) -> v1::ClaimMap {
        v1::ClaimMap {
            claim_map_id: "cm_01".into(),
            terminal_mode: v1::TerminalMode::Supported as i32,
            claims: shape.claims.clone(),
            coverage_threshold: 0.0,
            coverage_observed: 0.0,
            notes: None,
        }
    }

    /// The bundle the run leaves, as stored and read back.
    fn recorded(shape: &Shape) -> ReplayBundle {
        let gated = gate_shape(shape, proposed(shape));
        let gated = claim_map_from_proto(&gated).expect("a terminal mode");
        let failure = matches!(
            shape.loop_mode,
            TerminalMode::InsufficientPermission | TerminalMode::SourceUnavailable
        )
        .then_some(shape.loop_mode);
        let record = RunRecord {
            query: "what does doc a say?".into(),
            engine_mode: EngineMode::Baseline,
            loop_terminal_mode: shape.loop_mode,
            loop_response_text: None,
            operator_calls_used: shape.calls.0,
            bytes_used: shape.bytes.0,
            depth_used: 1,
            evidence_ref_count: 2,
            evidence_unit_ids: emitted(),
            failure_mode: failure,
            cited_evidence: Vec::new(),
        };
        let facts = SessionFacts {
            trace_id: "01JR5M00000000000000000001",
            request_id: "r1",
            principal_id: "dev",
            session_id: "s1",
            policy_snapshot_id: "p1",
            budget: Budget {
                max_operator_calls: shape.calls.1,
                max_bytes: shape.bytes.1,
                max_wallclock_ms: 1000,
                max_recursion_depth: 3,
                max_parallelism: None,
            },
        };
        let bundle = record.bundle(&facts, "answer".into(), gated);
        let stored: Value =
            serde_json::from_str(&bundle.to_json().to_string()).expect("stored JSON");
        ReplayBundle::from_json_verified(&stored).expect("verifies")
    }

    #[test]
    fn the_gate_is_idempotent_on_its_own_output() {
        for shape in shapes() {
            let once = gate_shape(&shape, proposed(&shape));
            let twice = gate_shape(&shape, once.clone());
            assert_eq!(twice, once, "{}", shape.name);
        }
    }

    #[test]
    fn untouched_bundles_redecide_the_same() {
        let mut modes = std::collections::BTreeSet::new();
        for shape in shapes() {
            let bundle = recorded(&shape);
            modes.insert(bundle.metadata.terminal_mode.as_str());
            let redecision = redecide(&bundle);
            assert_eq!(redecision.run_id, bundle.metadata.run_id);
            assert!(
                redecision.is_same(),
                "{}: {:?}",
                shape.name,
                redecision.differences
            );
        }
        // The shapes reach every mode a run can report.
        assert_eq!(modes.len(), 4, "{modes:?}");
    }

    #[test]
    fn shapes_end_as_their_names_say() {
        let mode = |name: &str| {
            let shape = shapes()
                .into_iter()
                .find(|shape| shape.name == name)
                .expect("a shape");
            recorded(&shape).claim_map
        };
        assert_eq!(mode("supported").terminal_mode, TerminalMode::Supported);
        let below = mode("coverage below the threshold");
        assert_eq!(below.terminal_mode, TerminalMode::InsufficientEvidence);
        let third = mode("coverage at a third, above the threshold");
        assert_eq!(third.coverage_observed, 1.0 / 3.0);
        assert_eq!(third.terminal_mode, TerminalMode::Supported);
        let downgraded = mode("supported without evidence is downgraded");
        assert_eq!(downgraded.claims[1].status, ClaimStatus::Unknown);
        for name in ["calls over budget", "bytes over budget"] {
            assert_eq!(
                mode(name).terminal_mode,
                TerminalMode::InsufficientEvidence,
                "{name}"
            );
        }
        assert_eq!(
            mode("unlimited bytes").terminal_mode,
            TerminalMode::Supported
        );
        assert_eq!(
            mode("a failed source and no support").terminal_mode,
            TerminalMode::SourceUnavailable
        );
        assert_eq!(
            mode("a denied call and no support").terminal_mode,
            TerminalMode::InsufficientPermission
        );
        assert_eq!(
            mode("a denied call, supported after all").terminal_mode,
            TerminalMode::Supported
        );
    }

    fn edited(edit: impl FnOnce(&mut ReplayBundle)) -> Redecision {
        let shapes = shapes();
        let mut bundle = recorded(&shapes[2]);
        edit(&mut bundle);
        bundle.seal();
        redecide(&bundle)
    }

    #[test]
    fn an_edited_terminal_mode_is_reported() {
        let redecision = edited(|bundle| {
            bundle.claim_map.terminal_mode = TerminalMode::Supported;
            bundle.metadata.terminal_mode = TerminalMode::Supported;
        });
        assert_eq!(
            redecision.differences,
            vec![
                "terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE".to_owned(),
                "metadata terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE"
                    .to_owned(),
            ]
        );
        assert!(!redecision.is_same());
        assert_eq!(redecision.run_id.len(), 26 + 1 + 26);
    }

    #[test]
    fn an_edited_coverage_is_reported() {
        let redecision = edited(|bundle| bundle.claim_map.coverage_observed = 0.34);
        assert_eq!(
            redecision.differences,
            vec!["coverage: stored 0.34, re-decided 0.3333333333333333".to_owned()]
        );
        // Even the last bit counts.
        let redecision = edited(|bundle| {
            let exact = bundle.claim_map.coverage_observed;
            bundle.claim_map.coverage_observed = f64::from_bits(exact.to_bits() + 1);
        });
        assert_eq!(redecision.differences.len(), 1, "{redecision:?}");
    }

    #[test]
    fn an_edited_claim_status_is_reported() {
        // An UNKNOWN claim edited to ASSUMPTION leaves fewer claims needing
        // evidence: the coverage, the mode and the claim's id change with it.
        let redecision =
            edited(|bundle| bundle.claim_map.claims[1].status = ClaimStatus::Assumption);
        let differences = redecision.differences;
        for expected in [
            "terminal mode: stored INSUFFICIENT_EVIDENCE, re-decided SUPPORTED",
            "coverage: stored 0.3333333333333333, re-decided 0.5",
        ] {
            assert!(differences.iter().any(|d| d == expected), "{differences:?}");
        }
        assert!(
            differences
                .iter()
                .any(|d| d.starts_with("claim 2 id: stored ")),
            "{differences:?}"
        );

        // SUPPORTED without evidence is downgraded again.
        let redecision = edited(|bundle| {
            let claim = &mut bundle.claim_map.claims[1];
            claim.status = ClaimStatus::Supported;
        });
        assert!(
            redecision
                .differences
                .contains(&"claim 2 status: stored SUPPORTED, re-decided UNKNOWN".to_owned()),
            "{redecision:?}"
        );
    }

    #[test]
    fn a_claim_citing_unlisted_evidence_is_refused() {
        let redecision = edited(|bundle| bundle.evidence_unit_ids.retain(|id| id != ID_B));
        assert_eq!(
            redecision.differences,
            vec![
                "the gate refuses the stored claim map: claim references evidence not emitted in this trace"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn a_raised_counter_changes_the_decision() {
        let shapes = shapes();
        let mut bundle = recorded(&shapes[0]);
        bundle.operator_calls_used = bundle.budget.max_operator_calls + 1;
        bundle.seal();
        assert_eq!(
            redecide(&bundle).differences,
            vec![
                "terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE".to_owned(),
                "metadata terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE"
                    .to_owned(),
            ]
        );
    }
}

//! The replay bundle of a run, assembled in one place from what the engine
//! knows of its run and what the finalize gate decided. The gateway
//! assembles it when it records the finalize (the bundle then goes to the
//! ledger in the same write); the controller only when it keeps replays in
//! files.

use std::time::{SystemTime, UNIX_EPOCH};

use pecr_contracts::budget::Budget;
use pecr_contracts::hashing::principal_id_hash;

use crate::bundle::{
    CitedEvidence, ClaimMap, REPLAY_SCHEMA_VERSION, ReplayBundle, ReplayBundleMetadata, new_run_id,
};
use crate::modes::{EngineMode, TerminalMode};
use crate::scoring::quality_score;

/// What only the engine knows of its run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub query: String,
    pub engine_mode: EngineMode,
    pub loop_terminal_mode: TerminalMode,
    pub loop_response_text: Option<String>,
    pub operator_calls_used: u32,
    pub bytes_used: u64,
    pub depth_used: u32,
    pub evidence_ref_count: u32,
    pub evidence_unit_ids: Vec<String>,
    /// The loop's own failure (denied, source unavailable), if it ended on one.
    pub failure_mode: Option<TerminalMode>,
    /// Where the units the answer cites came from.
    pub cited_evidence: Vec<CitedEvidence>,
}

/// What the session adds: who ran it, under which snapshot and budget.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts<'a> {
    pub trace_id: &'a str,
    pub request_id: &'a str,
    pub principal_id: &'a str,
    pub session_id: &'a str,
    pub policy_snapshot_id: &'a str,
    pub budget: Budget,
}

/// The mode a run reports: the gate's, unless the gate did not find the
/// answer supported and the loop ended on a failure of its own (a denied
/// call, an unavailable source), whose mode then stands.
pub fn reported_mode(gated: TerminalMode, failure: Option<TerminalMode>) -> TerminalMode {
    match failure {
        Some(mode @ (TerminalMode::InsufficientPermission | TerminalMode::SourceUnavailable))
            if gated != TerminalMode::Supported =>
        {
            mode
        }
        _ => gated,
    }
}

impl RunRecord {
    /// The sealed bundle of this run, whose final answer is `response_text`
    /// and `gated` (the finalize gate's claim map).
    pub fn bundle(
        self,
        session: &SessionFacts<'_>,
        response_text: String,
        mut gated: ClaimMap,
    ) -> ReplayBundle {
        let terminal_mode = reported_mode(gated.terminal_mode, self.failure_mode);
        gated.terminal_mode = terminal_mode;
        let mut evidence_unit_ids = self.evidence_unit_ids;
        evidence_unit_ids.sort_unstable();
        evidence_unit_ids.dedup();
        let mut cited_evidence = self.cited_evidence;
        cited_evidence.sort_unstable();
        cited_evidence.dedup();
        let recorded_at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let mut bundle = ReplayBundle {
            metadata: ReplayBundleMetadata {
                schema_version: REPLAY_SCHEMA_VERSION,
                run_id: new_run_id(session.trace_id),
                trace_id: session.trace_id.to_owned(),
                request_id: session.request_id.to_owned(),
                principal_id_hash: principal_id_hash(session.principal_id),
                engine_mode: self.engine_mode,
                recorded_at_unix_ms,
                terminal_mode,
                quality_score: quality_score(terminal_mode, &gated, &evidence_unit_ids),
                bundle_hash: String::new(),
            },
            query: self.query,
            budget: session.budget,
            session_id: session.session_id.to_owned(),
            policy_snapshot_id: session.policy_snapshot_id.to_owned(),
            loop_terminal_mode: self.loop_terminal_mode,
            loop_response_text: self.loop_response_text,
            response_text,
            claim_map: gated,
            operator_calls_used: self.operator_calls_used,
            bytes_used: self.bytes_used,
            depth_used: self.depth_used,
            evidence_ref_count: self.evidence_ref_count,
            evidence_unit_ids,
            cited_evidence,
        };
        bundle.seal();
        bundle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Claim;
    use crate::modes::ClaimStatus;

    fn record(failure: Option<TerminalMode>) -> RunRecord {
        RunRecord {
            query: "q".into(),
            engine_mode: EngineMode::Baseline,
            loop_terminal_mode: TerminalMode::InsufficientEvidence,
            loop_response_text: None,
            operator_calls_used: 3,
            bytes_used: 120,
            depth_used: 2,
            evidence_ref_count: 1,
            evidence_unit_ids: vec!["e2".into(), "e1".into(), "e2".into()],
            failure_mode: failure,
            cited_evidence: Vec::new(),
        }
    }

    fn gated(mode: TerminalMode) -> ClaimMap {
        ClaimMap {
            claim_map_id: "cm".into(),
            terminal_mode: mode,
            claims: vec![Claim {
                claim_id: "c1".into(),
                claim_text: "x".into(),
                status: ClaimStatus::Supported,
                evidence_unit_ids: vec!["e1".into()],
            }],
            coverage_threshold: 0.95,
            coverage_observed: 1.0,
            notes: None,
        }
    }

    fn session() -> SessionFacts<'static> {
        SessionFacts {
            trace_id: "01JR5M00000000000000000001",
            request_id: "r1",
            principal_id: "dev",
            session_id: "s1",
            policy_snapshot_id: "p1",
            budget: Budget {
                max_operator_calls: 10,
                max_bytes: 0,
                max_wallclock_ms: 0,
                max_recursion_depth: 3,
                max_parallelism: None,
            },
        }
    }

    #[test]
    fn a_loop_failure_stands_unless_the_gate_supports_the_answer() {
        use TerminalMode::*;
        assert_eq!(
            reported_mode(InsufficientEvidence, Some(InsufficientPermission)),
            InsufficientPermission
        );
        assert_eq!(
            reported_mode(InsufficientEvidence, Some(SourceUnavailable)),
            SourceUnavailable
        );
        assert_eq!(reported_mode(Supported, Some(SourceUnavailable)), Supported);
        assert_eq!(
            reported_mode(InsufficientEvidence, Some(Supported)),
            InsufficientEvidence
        );
        assert_eq!(
            reported_mode(InsufficientEvidence, None),
            InsufficientEvidence
        );
    }

    #[test]
    fn cited_evidence_is_kept_sorted_and_sealed_and_absent_when_empty() {
        let cited = |id: &str| CitedEvidence {
            evidence_unit_id: id.into(),
            source_system: "pg_safeview".into(),
            object_id: format!("view/{id}"),
            version_id: "v1".into(),
        };
        let mut run = record(None);
        run.cited_evidence = vec![cited("e2"), cited("e1"), cited("e2")];
        let bundle = run.bundle(&session(), "a".into(), gated(TerminalMode::Supported));
        assert_eq!(bundle.cited_evidence, [cited("e1"), cited("e2")]);
        let stored = ReplayBundle::from_json_verified(&bundle.to_json()).expect("verifies");
        assert_eq!(stored, bundle);

        let bare = record(None).bundle(&session(), "a".into(), gated(TerminalMode::Supported));
        assert!(bare.to_json().get("cited_evidence").is_none());
        ReplayBundle::from_json_verified(&bare.to_json()).expect("verifies");
    }

    #[test]
    fn the_bundle_is_sealed_owned_and_reports_the_final_mode() {
        let bundle = record(Some(TerminalMode::SourceUnavailable)).bundle(
            &session(),
            "answer".into(),
            gated(TerminalMode::InsufficientEvidence),
        );
        assert_eq!(bundle.verify(), Ok(()));
        assert_eq!(
            bundle.metadata.terminal_mode,
            TerminalMode::SourceUnavailable
        );
        assert_eq!(
            bundle.claim_map.terminal_mode,
            TerminalMode::SourceUnavailable
        );
        assert_eq!(bundle.metadata.principal_id_hash, principal_id_hash("dev"));
        assert!(
            bundle
                .metadata
                .run_id
                .starts_with("01JR5M00000000000000000001-")
        );
        assert_eq!(bundle.evidence_unit_ids, ["e1", "e2"]);
        assert_eq!(bundle.response_text, "answer");
    }
}

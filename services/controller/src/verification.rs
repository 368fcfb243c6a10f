//! `VerifyReplays`: each of the caller's stored replays re-decided by the
//! finalize gate (`pecr_replay::redecide`), summed up for the response.

use pecr_proto::v1;
use pecr_replay::{ReplayBundle, redecide};

/// The summary over `bundles` (newest first) recorded at or after `since`
/// (Unix ms; None means all).
pub fn verify(bundles: &[ReplayBundle], since: Option<u64>) -> v1::VerifyReplaysResponse {
    let mut verified = 0_u32;
    let mut differences = Vec::new();
    for bundle in bundles
        .iter()
        .filter(|bundle| since.is_none_or(|since| bundle.metadata.recorded_at_unix_ms >= since))
    {
        verified = verified.saturating_add(1);
        let redecision = redecide(bundle);
        if !redecision.is_same() {
            differences.push(v1::DifferingReplay {
                run_id: redecision.run_id,
                differences: redecision.differences,
            });
        }
    }
    v1::VerifyReplaysResponse {
        verified,
        differing: u32::try_from(differences.len()).unwrap_or(u32::MAX),
        differences,
    }
}

#[cfg(test)]
mod tests {
    use pecr_contracts::budget::Budget;
    use pecr_replay::{ClaimMap, EngineMode, RunRecord, SessionFacts, TerminalMode};

    use super::*;

    fn bundle(recorded_at_unix_ms: u64, stored_mode: TerminalMode) -> ReplayBundle {
        let record = RunRecord {
            query: "q".into(),
            engine_mode: EngineMode::Baseline,
            loop_terminal_mode: TerminalMode::InsufficientEvidence,
            loop_response_text: None,
            operator_calls_used: 1,
            bytes_used: 10,
            depth_used: 1,
            evidence_ref_count: 0,
            evidence_unit_ids: vec![],
            failure_mode: None,
            cited_evidence: Vec::new(),
        };
        let facts = SessionFacts {
            trace_id: "01JR5M00000000000000000001",
            request_id: "r",
            principal_id: "dev",
            session_id: "s",
            policy_snapshot_id: "p",
            budget: Budget {
                max_operator_calls: 10,
                max_bytes: 0,
                max_wallclock_ms: 1000,
                max_recursion_depth: 3,
                max_parallelism: None,
            },
        };
        // The gate's verdict on a claim map without claims.
        let gated = ClaimMap {
            claim_map_id: "cm".into(),
            terminal_mode: stored_mode,
            claims: vec![],
            coverage_threshold: 0.95,
            coverage_observed: 0.0,
            notes: None,
        };
        let mut bundle = record.bundle(&facts, "UNKNOWN".into(), gated);
        bundle.metadata.recorded_at_unix_ms = recorded_at_unix_ms;
        bundle.seal();
        bundle
    }

    #[test]
    fn counts_the_replays_since_and_names_those_that_differ() {
        let bundles = [
            bundle(3_000, TerminalMode::InsufficientEvidence),
            bundle(2_000, TerminalMode::Supported),
            bundle(1_000, TerminalMode::Supported),
        ];
        let all = verify(&bundles, None);
        assert_eq!((all.verified, all.differing), (3, 2));
        assert_eq!(all.differences[0].run_id, bundles[1].metadata.run_id);
        assert_eq!(
            all.differences[0].differences[0],
            "terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE"
        );

        let recent = verify(&bundles, Some(2_000));
        assert_eq!((recent.verified, recent.differing), (2, 1));
        let none = verify(&bundles, Some(3_001));
        assert_eq!(none, v1::VerifyReplaysResponse::default());
    }
}

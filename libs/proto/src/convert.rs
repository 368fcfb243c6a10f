//! Conversions between generated messages and their `pecr-contracts`
//! models, written once for every service.

use pecr_contracts::budget::Budget;
use pecr_contracts::canonical_json;
use pecr_contracts::evidence::EvidenceUnit;
use pecr_contracts::hashing::TransformStep;
use pecr_contracts::replay::{Claim, ClaimMap, ClaimStatus, EngineMode, TerminalMode};
use pecr_contracts::run_record::RunRecord;

use crate::v1;

/// A proto terminal mode as its contract value; None for UNSPECIFIED.
pub fn contract_mode(mode: i32) -> Option<TerminalMode> {
    match v1::TerminalMode::try_from(mode).ok()? {
        v1::TerminalMode::Supported => Some(TerminalMode::Supported),
        v1::TerminalMode::InsufficientEvidence => Some(TerminalMode::InsufficientEvidence),
        v1::TerminalMode::InsufficientPermission => Some(TerminalMode::InsufficientPermission),
        v1::TerminalMode::SourceUnavailable => Some(TerminalMode::SourceUnavailable),
        v1::TerminalMode::Unspecified => None,
    }
}

/// A contract terminal mode as its proto value.
pub fn proto_mode(mode: TerminalMode) -> v1::TerminalMode {
    match mode {
        TerminalMode::Supported => v1::TerminalMode::Supported,
        TerminalMode::InsufficientEvidence => v1::TerminalMode::InsufficientEvidence,
        TerminalMode::InsufficientPermission => v1::TerminalMode::InsufficientPermission,
        TerminalMode::SourceUnavailable => v1::TerminalMode::SourceUnavailable,
    }
}

fn status_from_proto(status: i32) -> ClaimStatus {
    match v1::claim::Status::try_from(status) {
        Ok(v1::claim::Status::Supported) => ClaimStatus::Supported,
        Ok(v1::claim::Status::Assumption) => ClaimStatus::Assumption,
        _ => ClaimStatus::Unknown,
    }
}

/// A claim map as the contract model; None when it has no terminal mode.
pub fn claim_map_from_proto(map: &v1::ClaimMap) -> Option<ClaimMap> {
    Some(ClaimMap {
        claim_map_id: map.claim_map_id.clone(),
        terminal_mode: contract_mode(map.terminal_mode)?,
        claims: map
            .claims
            .iter()
            .map(|claim| Claim {
                claim_id: claim.claim_id.clone(),
                claim_text: claim.claim_text.clone(),
                status: status_from_proto(claim.status),
                evidence_unit_ids: claim.evidence_unit_ids.clone(),
            })
            .collect(),
        coverage_threshold: map.coverage_threshold,
        coverage_observed: map.coverage_observed,
        notes: map.notes.clone(),
    })
}

/// A run record as the contract model; the reason when a field is invalid.
pub fn run_record_from_proto(run: v1::RunRecord) -> Result<RunRecord, &'static str> {
    Ok(RunRecord {
        engine_mode: run
            .engine_mode
            .parse::<EngineMode>()
            .map_err(|_| "run.engine_mode must be baseline or rlm")?,
        loop_terminal_mode: contract_mode(run.loop_terminal_mode)
            .ok_or("run.loop_terminal_mode is required")?,
        failure_mode: run.failure_mode.and_then(contract_mode),
        query: run.query,
        loop_response_text: run.loop_response_text,
        operator_calls_used: run.operator_calls_used,
        bytes_used: run.bytes_used,
        depth_used: run.depth_used,
        evidence_ref_count: run.evidence_ref_count,
        evidence_unit_ids: run.evidence_unit_ids,
    })
}

impl From<RunRecord> for v1::RunRecord {
    fn from(run: RunRecord) -> Self {
        Self {
            query: run.query,
            engine_mode: run.engine_mode.as_str().to_owned(),
            loop_terminal_mode: proto_mode(run.loop_terminal_mode) as i32,
            loop_response_text: run.loop_response_text,
            operator_calls_used: run.operator_calls_used,
            bytes_used: run.bytes_used,
            depth_used: run.depth_used,
            evidence_ref_count: run.evidence_ref_count,
            evidence_unit_ids: run.evidence_unit_ids,
            failure_mode: run.failure_mode.map(|mode| proto_mode(mode) as i32),
        }
    }
}

impl From<&v1::Budget> for Budget {
    fn from(budget: &v1::Budget) -> Self {
        Self {
            max_operator_calls: budget.max_operator_calls,
            max_bytes: budget.max_bytes,
            max_wallclock_ms: budget.max_wallclock_ms,
            max_recursion_depth: budget.max_recursion_depth,
            max_parallelism: budget.max_parallelism,
        }
    }
}

impl From<&Budget> for v1::Budget {
    fn from(budget: &Budget) -> Self {
        Self {
            max_operator_calls: budget.max_operator_calls,
            max_bytes: budget.max_bytes,
            max_wallclock_ms: budget.max_wallclock_ms,
            max_recursion_depth: budget.max_recursion_depth,
            max_parallelism: budget.max_parallelism,
        }
    }
}

/// Free-form parts (span, content, step params) travel as canonical JSON
/// text, never as protobuf `Struct`, so their hashes survive the trip.
impl From<&EvidenceUnit> for v1::EvidenceUnit {
    fn from(unit: &EvidenceUnit) -> Self {
        Self {
            source_system: unit.source_system.clone(),
            object_id: unit.object_id.clone(),
            version_id: unit.version_id.clone(),
            span_or_row_spec: canonical_json(&unit.span_or_row_spec),
            content_type: unit.content_type.as_str().to_owned(),
            content: unit
                .content
                .as_ref()
                .filter(|content| !content.is_null())
                .map(canonical_json),
            content_hash: unit.content_hash.clone(),
            retrieved_at: unit.retrieved_at.clone(),
            as_of_time: unit.as_of_time.clone(),
            policy_snapshot_id: unit.policy_snapshot_id.clone(),
            policy_snapshot_hash: unit.policy_snapshot_hash.clone(),
            transform_chain: unit.transform_chain.iter().map(Into::into).collect(),
            evidence_unit_id: unit.evidence_unit_id.clone(),
        }
    }
}

impl From<&TransformStep> for v1::TransformStep {
    fn from(step: &TransformStep) -> Self {
        Self {
            transform_type: step.transform_type.clone(),
            transform_hash: step.transform_hash.clone(),
            params: step.params.as_ref().map(canonical_json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_survives_the_round_trip_with_and_without_parallelism() {
        for parallelism in [None, Some(4)] {
            let budget = Budget {
                max_operator_calls: 10,
                max_bytes: 1_048_576,
                max_wallclock_ms: 10_000,
                max_recursion_depth: 5,
                max_parallelism: parallelism,
            };
            let wire = v1::Budget::from(&budget);
            assert_eq!(wire.max_parallelism, parallelism);
            assert_eq!(Budget::from(&wire), budget);
        }
    }

    #[test]
    fn an_evidence_unit_reaches_the_wire_field_by_field() {
        use pecr_contracts::evidence::{EvidenceContent, EvidenceParts};
        use serde_json::json;

        let unit = EvidenceUnit::new(EvidenceParts {
            source_system: "pg_safeview".into(),
            object_id: "safe_customer_view_public:local:c1".into(),
            version_id: "v".repeat(64),
            span_or_row_spec: json!({"view_id": "v", "fields": ["status"], "type": "db_row"}),
            content: EvidenceContent::Json(json!({"status": "active", "n": 2.50})),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            policy_snapshot_id: "ps".into(),
            policy_snapshot_hash: "h".repeat(64),
            transform_chain: vec![TransformStep::new("redact", json!({"fields": ["x"]}))],
        });
        let wire = v1::EvidenceUnit::from(&unit);
        assert_eq!(wire.content_type, "application/json");
        assert_eq!(
            wire.span_or_row_spec,
            r#"{"fields":["status"],"type":"db_row","view_id":"v"}"#
        );
        assert_eq!(
            wire.content.as_deref(),
            Some(canonical_json(&json!({"n": 2.50, "status": "active"}))).as_deref()
        );
        assert_eq!(wire.content_hash, unit.content_hash);
        assert_eq!(wire.evidence_unit_id, unit.evidence_unit_id);
        assert_eq!(wire.transform_chain.len(), 1);
        assert_eq!(
            wire.transform_chain[0].params.as_deref(),
            Some(r#"{"fields":["x"]}"#)
        );
        assert_eq!(
            wire.transform_chain[0].transform_hash,
            unit.transform_chain[0].transform_hash
        );
    }
}

//! Conversions between generated messages and their `pecr-contracts`
//! models, written once for every service.

use pecr_contracts::budget::Budget;
use pecr_contracts::canonical_json;
use pecr_contracts::evidence::EvidenceUnit;
use pecr_contracts::hashing::TransformStep;

use crate::v1;

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

//! EvidenceUnit: from the contract's JSON model to the protobuf message.

use pecr_contracts::canonical_json;
use pecr_contracts::evidence::EvidenceUnit;
use pecr_proto::v1;
use serde_json::Value;

/// Free-form parts travel as canonical JSON text (never protobuf Struct).
pub fn to_proto(unit: &EvidenceUnit) -> v1::EvidenceUnit {
    let json = serde_json::to_value(unit).unwrap_or(Value::Null);
    let text = |key: &str| {
        json.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let steps = json
        .get("transform_chain")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .map(|step| v1::TransformStep {
                    transform_type: step
                        .get("transform_type")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    transform_hash: step
                        .get("transform_hash")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    params: step.get("params").map(canonical_json),
                })
                .collect()
        })
        .unwrap_or_default();
    v1::EvidenceUnit {
        source_system: text("source_system"),
        object_id: text("object_id"),
        version_id: text("version_id"),
        span_or_row_spec: json
            .get("span_or_row_spec")
            .map(canonical_json)
            .unwrap_or_else(|| "{}".to_owned()),
        content_type: text("content_type"),
        content: json
            .get("content")
            .filter(|c| !c.is_null())
            .map(canonical_json),
        content_hash: text("content_hash"),
        retrieved_at: text("retrieved_at"),
        as_of_time: text("as_of_time"),
        policy_snapshot_id: text("policy_snapshot_id"),
        policy_snapshot_hash: text("policy_snapshot_hash"),
        transform_chain: steps,
        evidence_unit_id: text("evidence_unit_id"),
    }
}

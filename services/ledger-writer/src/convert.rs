//! Conversions between protobuf messages and the contract's JSON shapes as
//! stored in the ledger (`input_json`, `budget_json`, `claim_map_json`).

use pecr_proto::v1;
use serde_json::{Value, json};

/// The full PolicySnapshot JSON (all eight fields).
pub fn snapshot_to_json(snapshot: &v1::PolicySnapshot) -> Value {
    json!({
        "policy_snapshot_hash": snapshot.policy_snapshot_hash,
        "principal_id": snapshot.principal_id,
        "tenant_id": snapshot.tenant_id,
        "principal_roles": snapshot.principal_roles,
        "principal_attrs_hash": snapshot.principal_attrs_hash,
        "policy_bundle_hash": snapshot.policy_bundle_hash,
        "as_of_time": snapshot.as_of_time,
        "evaluated_at": snapshot.evaluated_at,
    })
}

/// Reads a stored PolicySnapshot; unknown fields are ignored.
pub fn snapshot_from_json(value: &Value) -> Option<v1::PolicySnapshot> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(v1::PolicySnapshot {
        policy_snapshot_hash: text("policy_snapshot_hash")?,
        principal_id: text("principal_id")?,
        tenant_id: text("tenant_id")?,
        principal_roles: value
            .get("principal_roles")?
            .as_array()?
            .iter()
            .map(|role| role.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?,
        principal_attrs_hash: text("principal_attrs_hash")?,
        policy_bundle_hash: text("policy_bundle_hash")?,
        as_of_time: text("as_of_time")?,
        evaluated_at: text("evaluated_at")?,
    })
}

/// The ClaimMap JSON as the contract spells it (`notes` omitted when absent).
pub fn claim_map_to_json(claim_map: &v1::ClaimMap) -> Value {
    let claims: Vec<Value> = claim_map
        .claims
        .iter()
        .map(|claim| {
            json!({
                "claim_id": claim.claim_id,
                "claim_text": claim.claim_text,
                "status": v1::claim::Status::try_from(claim.status)
                    .unwrap_or(v1::claim::Status::Unspecified)
                    .as_str_name(),
                "evidence_unit_ids": claim.evidence_unit_ids,
            })
        })
        .collect();
    let mut value = json!({
        "claim_map_id": claim_map.claim_map_id,
        "terminal_mode": v1::TerminalMode::try_from(claim_map.terminal_mode)
            .unwrap_or(v1::TerminalMode::Unspecified)
            .as_str_name(),
        "claims": claims,
        "coverage_threshold": claim_map.coverage_threshold,
        "coverage_observed": claim_map.coverage_observed,
    });
    if let (Some(notes), Some(object)) = (&claim_map.notes, value.as_object_mut()) {
        object.insert("notes".to_owned(), Value::String(notes.clone()));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_maps_use_contract_spellings() {
        let claim_map = v1::ClaimMap {
            claim_map_id: "cm1".into(),
            terminal_mode: v1::TerminalMode::InsufficientEvidence as i32,
            claims: vec![v1::Claim {
                claim_id: "c".into(),
                claim_text: "t".into(),
                status: v1::claim::Status::Unknown as i32,
                evidence_unit_ids: vec![],
            }],
            coverage_threshold: 0.95,
            coverage_observed: 0.0,
            notes: None,
        };
        assert_eq!(
            pecr_contracts::canonical_json(&claim_map_to_json(&claim_map)),
            r#"{"claim_map_id":"cm1","claims":[{"claim_id":"c","claim_text":"t","evidence_unit_ids":[],"status":"UNKNOWN"}],"coverage_observed":0.0,"coverage_threshold":0.95,"terminal_mode":"INSUFFICIENT_EVIDENCE"}"#
        );
    }

    #[test]
    fn snapshots_round_trip() {
        let snapshot = v1::PolicySnapshot {
            policy_snapshot_hash: "h".into(),
            principal_id: "dev".into(),
            tenant_id: "local".into(),
            principal_roles: vec!["a".into()],
            principal_attrs_hash: "x".into(),
            policy_bundle_hash: "b".into(),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            evaluated_at: "1970-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            snapshot_from_json(&snapshot_to_json(&snapshot)),
            Some(snapshot)
        );
    }
}

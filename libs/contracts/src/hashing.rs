//! The hash recipes of the contract. Every digest is lowercase hex SHA-256.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::budget::Budget;
use crate::canonical::{canonical_json, canonical_text};

/// Lowercase hex SHA-256 of raw bytes.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes.as_ref()))
}

/// True only for exactly 64 characters of `0-9a-f`.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// SHA-256 of the canonical JSON of `value`.
pub fn hash_canonical_json(value: &Value) -> String {
    sha256_hex(canonical_json(value))
}

/// `content_hash` of `text/plain` content: hash of the canonical text.
pub fn text_content_hash(text: &str) -> String {
    sha256_hex(canonical_text(text))
}

/// The inputs of a policy snapshot that its hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySnapshotInputs<'a> {
    pub principal_id: &'a str,
    pub tenant_id: &'a str,
    pub principal_roles: &'a [String],
    pub principal_attrs_hash: &'a str,
    pub policy_bundle_hash: &'a str,
    pub as_of_time: &'a str,
}

/// `policy_snapshot_hash`: roles sorted (duplicates kept); `evaluated_at` excluded.
pub fn policy_snapshot_hash(inputs: &PolicySnapshotInputs<'_>) -> String {
    let mut roles = inputs.principal_roles.to_vec();
    roles.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    hash_canonical_json(&json!({
        "principal_id": inputs.principal_id,
        "tenant_id": inputs.tenant_id,
        "principal_roles": roles,
        "principal_attrs_hash": inputs.principal_attrs_hash,
        "policy_bundle_hash": inputs.policy_bundle_hash,
        "as_of_time": inputs.as_of_time,
    }))
}

/// `principal_id_hash`: canonical hash of `{"principal_id": ...}`.
pub fn principal_id_hash(principal_id: &str) -> String {
    hash_canonical_json(&json!({ "principal_id": principal_id }))
}

/// `claim_id` over the trimmed text, final status and sorted unique ids.
pub fn claim_id(claim_text: &str, status: &str, evidence_unit_ids: &[String]) -> String {
    let mut ids = evidence_unit_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    hash_canonical_json(&json!({
        "claim_text": claim_text.trim(),
        "status": status,
        "evidence_unit_ids": ids,
    }))
}

/// `budget_hash`: NOT canonical; compact JSON in declaration order.
pub fn budget_hash(budget: &Budget) -> String {
    sha256_hex(budget.to_declaration_order_json())
}

/// One step of an evidence unit's transform chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformStep {
    pub transform_type: String,
    pub transform_hash: String,
    pub params: Option<Value>,
}

impl TransformStep {
    /// A step whose hash is computed from its params.
    pub fn new(transform_type: impl Into<String>, params: Value) -> Self {
        Self {
            transform_type: transform_type.into(),
            transform_hash: hash_canonical_json(&params),
            params: Some(params),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut step = json!({
            "transform_type": self.transform_type,
            "transform_hash": self.transform_hash,
        });
        if let (Some(params), Some(object)) = (&self.params, step.as_object_mut()) {
            object.insert("params".to_owned(), params.clone());
        }
        step
    }
}

/// The fields of an evidence unit that its id covers.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceIdentity<'a> {
    pub source_system: &'a str,
    pub object_id: &'a str,
    pub version_id: &'a str,
    pub span_or_row_spec: &'a Value,
    pub content_hash: &'a str,
    pub as_of_time: &'a str,
    pub policy_snapshot_hash: &'a str,
    pub transform_chain: &'a [TransformStep],
}

/// `evidence_unit_id`: canonical hash of exactly the eight identity keys.
pub fn evidence_unit_id(identity: &EvidenceIdentity<'_>) -> String {
    let chain: Vec<Value> = identity
        .transform_chain
        .iter()
        .map(TransformStep::to_json)
        .collect();
    hash_canonical_json(&json!({
        "source_system": identity.source_system,
        "object_id": identity.object_id,
        "version_id": identity.version_id,
        "span_or_row_spec": identity.span_or_row_spec,
        "content_hash": identity.content_hash,
        "as_of_time": identity.as_of_time,
        "policy_snapshot_hash": identity.policy_snapshot_hash,
        "transform_chain": chain,
    }))
}

/// `bundle_hash`: canonical hash of the bundle with `metadata.bundle_hash` = "".
/// None when the value is not an object with a `metadata` object.
pub fn bundle_hash(bundle: &Value) -> Option<String> {
    let mut copy = bundle.clone();
    let metadata = copy.get_mut("metadata")?.as_object_mut()?;
    metadata.insert("bundle_hash".to_owned(), Value::String(String::new()));
    Some(hash_canonical_json(&copy))
}

#[cfg(test)]
mod tests;

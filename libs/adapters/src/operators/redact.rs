//! `redact` (gateway spec §5.9): applies the decision's redaction to units
//! emitted earlier in the session. Units that change are rebuilt, returned
//! and emitted; the others come back unchanged. The result is an array in
//! input order.

use pecr_contracts::evidence::{EvidenceContentType, EvidenceUnit};
use pecr_contracts::is_sha256_hex;
use pecr_errors::PecrError;
use serde_json::Value;

use super::units_json;
use crate::OperatorOutput;
use crate::redaction::Redaction;
use crate::scope::SessionScope;

/// Most units one call may carry.
const MAX_UNITS: usize = 200;

/// Checks one unit in the spec's order; the first failure is returned.
fn validate(value: &Value, scope: &SessionScope) -> Result<EvidenceUnit, PecrError> {
    let unit: EvidenceUnit = serde_json::from_value(value.clone())
        .map_err(|_| PecrError::invalid_params("invalid EvidenceUnit"))?;
    if !is_sha256_hex(&unit.evidence_unit_id) {
        return Err(PecrError::invalid_params(
            "EvidenceUnit.evidence_unit_id must be sha256 hex",
        ));
    }
    if !scope.emitted_evidence_ids.contains(&unit.evidence_unit_id) {
        return Err(PecrError::invalid_params(
            "evidence_unit_id not emitted in this session",
        ));
    }
    if unit.policy_snapshot_hash != scope.policy_snapshot_hash
        || unit.as_of_time != scope.as_of_time
    {
        return Err(PecrError::invalid_params(
            "evidence_unit must match current session policy_snapshot_hash and as_of_time",
        ));
    }
    unit.verify()
        .map_err(|err| PecrError::invalid_params(err.to_string()))?;
    Ok(unit)
}

pub(super) fn run(
    params: &Value,
    scope: &SessionScope,
    redaction: Option<&Redaction>,
) -> Result<OperatorOutput, PecrError> {
    let items = params
        .get("evidence_units")
        .and_then(Value::as_array)
        .ok_or_else(|| PecrError::invalid_params("params.evidence_units must be an array"))?;
    if items.len() > MAX_UNITS {
        return Err(PecrError::invalid_params("evidence_units too large"));
    }
    let mut units = Vec::with_capacity(items.len());
    let mut emitted = Vec::new();
    for item in items {
        let unit = validate(item, scope)?;
        let Some(redaction) = redaction else {
            units.push(unit);
            continue;
        };
        if unit.content_type != EvidenceContentType::ApplicationJson {
            return Err(PecrError::invalid_params(
                "redact supports application/json evidence only",
            ));
        }
        let mut redacted = unit.clone();
        redacted
            .policy_snapshot_id
            .clone_from(&scope.policy_snapshot_id);
        redacted
            .policy_snapshot_hash
            .clone_from(&scope.policy_snapshot_hash);
        if redaction.apply(&mut redacted)? {
            emitted.push(redacted.clone());
            units.push(redacted);
        } else {
            units.push(unit);
        }
    }
    Ok(OperatorOutput {
        result: units_json(&units)?,
        evidence: emitted,
    })
}

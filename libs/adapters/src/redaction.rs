//! Field redaction from a policy decision (gateway spec §6.3).

use pecr_contracts::evidence::{EvidenceContentType, EvidenceUnit};
use pecr_contracts::hashing::TransformStep;
use pecr_errors::{PecrError, TerminalMode};
use serde_json::{Map, Value, json};

use crate::errors::evidence_encoding_failed;

/// A parsed `decision.redaction`: trimmed, sorted, deduplicated, non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redaction {
    Deny(Vec<String>),
    Allow(Vec<String>),
}

/// 500 `ERR_INTERNAL`, hint `INSUFFICIENT_PERMISSION`, not retryable.
fn bad_redaction(message: String) -> PecrError {
    PecrError::internal(message).with_hint(TerminalMode::InsufficientPermission)
}

/// One list of `decision.redaction`; None when absent, null or empty.
fn parse_list(object: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, PecrError> {
    let Some(value) = object.get(key).filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let items = value
        .as_array()
        .ok_or_else(|| bad_redaction(format!("policy redaction `{key}` must be an array")))?;
    let mut list = Vec::with_capacity(items.len());
    for item in items {
        let field = item
            .as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                bad_redaction(format!("policy redaction `{key}` must be a string array"))
            })?;
        list.push(field.to_owned());
    }
    list.sort();
    list.dedup();
    Ok(if list.is_empty() { None } else { Some(list) })
}

/// Parses a policy decision's `redaction`. Absent, null, `{}` or an object
/// with neither list (other keys are ignored) → None. `allow_fields` is
/// checked before `deny_fields`; both non-empty is an error. A null list
/// counts as absent.
pub fn parse_redaction(value: Option<&Value>) -> Result<Option<Redaction>, PecrError> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let object = value
        .as_object()
        .ok_or_else(|| bad_redaction("policy redaction must be an object".to_owned()))?;
    let allow = parse_list(object, "allow_fields")?;
    let deny = parse_list(object, "deny_fields")?;
    match (allow, deny) {
        (Some(_), Some(_)) => Err(bad_redaction(
            "policy redaction cannot specify both allow_fields and deny_fields".to_owned(),
        )),
        (Some(allow), None) => Ok(Some(Redaction::Allow(allow))),
        (None, Some(deny)) => Ok(Some(Redaction::Deny(deny))),
        (None, None) => Ok(None),
    }
}

impl Redaction {
    /// Whether an object key survives.
    pub fn keeps(&self, key: &str) -> bool {
        match self {
            Redaction::Deny(fields) => !fields.iter().any(|field| field == key),
            Redaction::Allow(fields) => fields.iter().any(|field| field == key),
        }
    }

    /// The transform step's params: `{"deny_fields":[…]}` or `{"allow_fields":[…]}`.
    pub fn params(&self) -> Value {
        match self {
            Redaction::Deny(fields) => json!({ "deny_fields": fields }),
            Redaction::Allow(fields) => json!({ "allow_fields": fields }),
        }
    }

    /// Drops unkept keys from objects at every depth, inside arrays too.
    /// Returns whether anything was dropped.
    pub fn filter_value(&self, value: &mut Value) -> bool {
        match value {
            Value::Object(members) => {
                let before = members.len();
                members.retain(|key, _| self.keeps(key));
                let mut changed = members.len() != before;
                for member in members.values_mut() {
                    changed |= self.filter_value(member);
                }
                changed
            }
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.filter_value(item);
                }
                changed
            }
            _ => false,
        }
    }

    /// Field names (trimmed, sorted, deduplicated) that survive.
    pub fn filter_field_list(&self, fields: &[Value]) -> Vec<String> {
        crate::params::sorted_unique_strings(fields)
            .into_iter()
            .filter(|field| self.keeps(field))
            .collect()
    }

    /// Redacts an `application/json` unit in place. When nothing changes the
    /// unit is untouched and false is returned. Otherwise `content` and
    /// `content_hash` are replaced, `span_or_row_spec.fields` (if any) is
    /// filtered, a `redaction` step is appended and the id is recomputed.
    /// `primary_key`, `object_id` and text content are never redacted.
    pub fn apply(&self, unit: &mut EvidenceUnit) -> Result<bool, PecrError> {
        if unit.content_type != EvidenceContentType::ApplicationJson {
            return Ok(false);
        }
        let Some(content) = unit.content.as_mut() else {
            return Ok(false);
        };
        if !self.filter_value(content) {
            return Ok(false);
        }
        if let Some(spec) = unit.span_or_row_spec.as_object_mut()
            && let Some(Value::Array(fields)) = spec.get("fields")
        {
            let kept = self.filter_field_list(fields);
            spec.insert("fields".to_owned(), Value::from(kept));
        }
        unit.transform_chain
            .push(TransformStep::new("redaction", self.params()));
        unit.rehash().map_err(|_| evidence_encoding_failed())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use pecr_contracts::evidence::{EvidenceContent, EvidenceParts};
    use pecr_contracts::hash_canonical_json;
    use pecr_errors::ErrorCode;

    use super::*;

    fn parse(value: Value) -> Result<Option<Redaction>, PecrError> {
        parse_redaction(Some(&value))
    }

    fn error_message(value: Value) -> String {
        match parse(value) {
            Err(err) => {
                assert_eq!(err.code, ErrorCode::Internal);
                assert_eq!(err.http_status, 500);
                assert_eq!(err.hint, TerminalMode::InsufficientPermission);
                assert!(!err.retryable);
                err.message
            }
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn scenario_9_parsing() {
        assert_eq!(
            parse(json!({"allow_fields": ["b", "a", "a"]})),
            Ok(Some(Redaction::Allow(vec!["a".into(), "b".into()])))
        );
        assert_eq!(
            error_message(json!({"allow_fields": "secret"})),
            "policy redaction `allow_fields` must be an array"
        );
        assert_eq!(
            error_message(json!({"allow_fields": ["a"], "deny_fields": ["b"]})),
            "policy redaction cannot specify both allow_fields and deny_fields"
        );
        let deny = Redaction::Deny(vec!["secret".into()]);
        assert_eq!(
            deny.filter_field_list(&[json!("tenant_id"), json!("secret"), json!("status")]),
            vec!["status".to_owned(), "tenant_id".to_owned()]
        );
        let mut value = json!({"ok":1,"secret":"top","nested":{"secret":"h","keep":true},"arr":[{"secret":"x","keep":1},{"keep":2}]});
        assert!(deny.filter_value(&mut value));
        assert_eq!(
            value,
            json!({"ok":1,"nested":{"keep":true},"arr":[{"keep":1},{"keep":2}]})
        );
    }

    #[test]
    fn parsing_edge_cases() {
        assert_eq!(parse_redaction(None), Ok(None));
        assert_eq!(parse(Value::Null), Ok(None));
        assert_eq!(parse(json!({})), Ok(None));
        assert_eq!(parse(json!({"other": 1})), Ok(None));
        assert_eq!(parse(json!({"deny_fields": []})), Ok(None));
        assert_eq!(
            parse(json!({"allow_fields": [], "deny_fields": [" x ", "x"]})),
            Ok(Some(Redaction::Deny(vec!["x".into()])))
        );
        assert_eq!(
            error_message(json!([])),
            "policy redaction must be an object"
        );
        assert_eq!(
            error_message(json!("deny")),
            "policy redaction must be an object"
        );
        assert_eq!(
            error_message(json!({"deny_fields": ["a", " "]})),
            "policy redaction `deny_fields` must be a string array"
        );
        assert_eq!(
            error_message(json!({"deny_fields": ["a", 1]})),
            "policy redaction `deny_fields` must be a string array"
        );
        assert_eq!(
            error_message(json!({"allow_fields": 1, "deny_fields": 2})),
            "policy redaction `allow_fields` must be an array"
        );
    }

    fn json_unit(content: Value, fields: Value) -> EvidenceUnit {
        EvidenceUnit::new(EvidenceParts {
            source_system: "pg_safeview".into(),
            object_id: "v:local:c".into(),
            version_id: "v1".into(),
            span_or_row_spec: json!({"type": "db_row", "view_id": "v", "primary_key": {"tenant_id": "local", "customer_id": "c"}, "fields": fields}),
            content: EvidenceContent::Json(content),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            policy_snapshot_id: "ps".into(),
            policy_snapshot_hash: "h".into(),
            transform_chain: vec![],
        })
    }

    #[test]
    fn scenario_10_deny_on_a_json_unit() {
        let mut unit = json_unit(json!({"ok":"1","secret":"x"}), json!(["ok", "secret"]));
        let before = unit.evidence_unit_id.clone();
        let deny = Redaction::Deny(vec!["secret".into()]);
        assert_eq!(deny.apply(&mut unit), Ok(true));
        assert_eq!(unit.content, Some(json!({"ok":"1"})));
        assert_eq!(unit.content_hash, hash_canonical_json(&json!({"ok":"1"})));
        assert_ne!(unit.evidence_unit_id, before);
        assert_eq!(unit.transform_chain.len(), 1);
        assert_eq!(unit.transform_chain[0].transform_type, "redaction");
        assert_eq!(unit.span_or_row_spec["fields"], json!(["ok"]));
        assert_eq!(unit.span_or_row_spec["primary_key"]["customer_id"], "c");
        assert_eq!(unit.verify(), Ok(()));
    }

    #[test]
    fn unchanged_units_are_untouched() {
        let mut unit = json_unit(json!({"ok":"1"}), json!(["ok"]));
        let copy = unit.clone();
        assert_eq!(
            Redaction::Deny(vec!["secret".into()]).apply(&mut unit),
            Ok(false)
        );
        assert_eq!(unit, copy);
    }

    #[test]
    fn v18_step_hash() {
        let deny = Redaction::Deny(vec!["admin_note".into(), "injection_note".into()]);
        let step = TransformStep::new("redaction", deny.params());
        assert_eq!(
            step.transform_hash,
            "2cfde533e8d17ea1a98cd71b68bc187e5406176b030092bf59911d773875f115"
        );
    }
}

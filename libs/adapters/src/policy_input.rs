//! The policy-input fields derived from operator params (gateway spec §4.1).

use pecr_contracts::hash_canonical_json;
use serde_json::Value;

use crate::params::{member, trimmed_strings};

/// `object_id`, `view_id`, `fields_hash` and `filter_fingerprint` of an
/// `operator_call` policy input; None is sent as JSON null.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInputFields {
    pub object_id: Option<String>,
    pub view_id: Option<String>,
    pub fields_hash: Option<String>,
    pub filter_fingerprint: Option<String>,
}

/// Derives the policy-input fields from params:
/// - `object_id`: `params.object_id` when it is a string, untrimmed;
/// - `view_id`: `params.view_id` trimmed, when a non-empty string;
/// - `fields_hash`: canonical hash of the string elements of `params.fields`
///   (trimmed, blanks dropped, sorted, duplicates kept) when it is an array;
/// - `filter_fingerprint`: canonical hash of `params.filter_spec` when present
///   (a JSON null counts as absent).
///
/// For filesystem operators the gateway should also ask policy about the
/// canonical path (`Adapters::canonical_object_id`), so a symlink under an
/// allowed prefix cannot reach a file under another one.
pub fn policy_input_fields(params: &Value) -> PolicyInputFields {
    let object_id = params
        .get("object_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let view_id = params
        .get("view_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned);
    let fields_hash = params.get("fields").and_then(Value::as_array).map(|items| {
        let mut fields = trimmed_strings(items);
        fields.sort();
        hash_canonical_json(&Value::from(fields))
    });
    let filter_fingerprint = member(params, "filter_spec").map(hash_canonical_json);
    PolicyInputFields {
        object_id,
        view_id,
        fields_hash,
        filter_fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn derived_fields() {
        let fields = policy_input_fields(&json!({
            "object_id": " public/x.txt ",
            "view_id": " safe_customer_view_public ",
            "fields": ["status", " customer_id", "", 3, "status"],
            "filter_spec": {"b": "2", "a": "1"},
        }));
        assert_eq!(fields.object_id.as_deref(), Some(" public/x.txt "));
        assert_eq!(fields.view_id.as_deref(), Some("safe_customer_view_public"));
        assert_eq!(
            fields.fields_hash,
            Some(hash_canonical_json(&json!([
                "customer_id",
                "status",
                "status"
            ])))
        );
        assert_eq!(
            fields.filter_fingerprint,
            Some(hash_canonical_json(&json!({"a": "1", "b": "2"})))
        );
        assert_eq!(
            policy_input_fields(&json!({"view_id": "  ", "fields": "x"})),
            PolicyInputFields::default()
        );
        assert_eq!(
            policy_input_fields(&json!(null)),
            PolicyInputFields::default()
        );
    }
}

//! What a policy answers, and the key under which a caller may cache it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A policy decision (spec 20 §4.2). Parsed from the object OPA returns as
/// `result`: `allow` is required, `cacheable` defaults to false, `reason` and
/// `redaction` are optional (a JSON null counts as absent), extra fields are
/// ignored. Serializes with absent fields omitted, as simulate replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub allow: bool,
    #[serde(default)]
    pub cacheable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<Value>,
}

/// A result object that is not a decision: the caller must fail closed.
#[derive(Debug, thiserror::Error)]
#[error("invalid policy decision: {0}")]
pub struct InvalidDecision(String);

impl Decision {
    /// Reads a decision from an OPA-style `result` value.
    pub fn from_result(result: &Value) -> Result<Self, InvalidDecision> {
        // serde would also accept a JSON array as a struct; OPA's is an object.
        if !result.is_object() {
            return Err(InvalidDecision("result is not an object".to_owned()));
        }
        Self::deserialize(result).map_err(|error| InvalidDecision(error.to_string()))
    }

    /// Reads a whole OPA response body `{"result": {...}}`. A missing
    /// `result` (OPA's answer for an undefined rule) is invalid.
    pub fn from_response_body(body: &[u8]) -> Result<Self, InvalidDecision> {
        #[derive(Deserialize)]
        struct Response {
            result: Option<Value>,
        }
        let response: Response =
            serde_json::from_slice(body).map_err(|error| InvalidDecision(error.to_string()))?;
        let result = response
            .result
            .ok_or_else(|| InvalidDecision("response has no result".to_owned()))?;
        Self::from_result(&result)
    }
}

/// The cache identity of a decision. Tenant and principal are fields of
/// their own, so no decision is ever reused across principals or tenants
/// whatever the caller puts in `parts` (snapshot hash, op name, params hash…).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    pub tenant_id: String,
    pub principal_id: String,
    pub action: String,
    pub parts: Vec<String>,
}

impl DecisionKey {
    pub fn new(
        tenant_id: impl Into<String>,
        principal_id: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            principal_id: principal_id.into(),
            action: action.into(),
            parts: Vec::new(),
        }
    }

    /// Appends one more component (order matters).
    pub fn with_part(mut self, part: impl Into<String>) -> Self {
        self.parts.push(part.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_result_parses() {
        let decision = Decision::from_result(&json!({
            "allow": true, "cacheable": true, "reason": "r",
            "redaction": {"deny_fields": ["a"]}, "extra": 1
        }))
        .expect("valid");
        assert_eq!(
            decision,
            Decision {
                allow: true,
                cacheable: true,
                reason: Some("r".into()),
                redaction: Some(json!({"deny_fields": ["a"]})),
            }
        );
    }

    #[test]
    fn cacheable_defaults_to_false_and_nulls_are_absent() {
        let decision =
            Decision::from_result(&json!({"allow": false, "reason": null, "redaction": null}))
                .expect("valid");
        assert!(!decision.cacheable);
        assert_eq!(decision.reason, None);
        assert_eq!(decision.redaction, None);
    }

    #[test]
    fn malformed_results_are_invalid() {
        for bad in [
            json!({}),
            json!({"allow": "true"}),
            json!({"allow": 1}),
            json!({"allow": true, "cacheable": "yes"}),
            json!({"allow": true, "reason": 5}),
            json!([true]),
            json!(null),
        ] {
            assert!(Decision::from_result(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_body_needs_result() {
        assert!(
            Decision::from_response_body(br#"{"result":{"allow":true}}"#)
                .expect("valid")
                .allow
        );
        assert!(Decision::from_response_body(b"{}").is_err());
        assert!(Decision::from_response_body(br#"{"result":null}"#).is_err());
        assert!(Decision::from_response_body(br#"{"result":[true]}"#).is_err());
        assert!(Decision::from_response_body(b"not json").is_err());
    }

    #[test]
    fn serializes_without_absent_fields() {
        let decision = Decision {
            allow: true,
            cacheable: false,
            reason: None,
            redaction: None,
        };
        assert_eq!(
            serde_json::to_value(&decision).expect("serializable"),
            json!({"allow": true, "cacheable": false})
        );
    }
}

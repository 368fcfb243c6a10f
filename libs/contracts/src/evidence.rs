//! The EvidenceUnit wire model: the immutable, hash-identified unit of
//! retrieved context. Its `content_hash` and `evidence_unit_id` follow the
//! recipes in [`crate::hashing`]; this module only carries the shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hashing::{
    EvidenceIdentity, TransformStep, evidence_unit_id, hash_canonical_json, text_content_hash,
};

/// `content_type` of an evidence unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EvidenceContentType {
    #[serde(rename = "text/plain")]
    TextPlain,
    #[serde(rename = "application/json")]
    ApplicationJson,
}

impl EvidenceContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TextPlain => "text/plain",
            Self::ApplicationJson => "application/json",
        }
    }
}

/// An EvidenceUnit as it travels in JSON. Unknown fields are ignored on
/// decode; `content` is omitted when absent (`null` on input means absent);
/// each transform step omits `params` when it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceUnit {
    pub source_system: String,
    pub object_id: String,
    pub version_id: String,
    pub span_or_row_spec: Value,
    pub content_type: EvidenceContentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    pub content_hash: String,
    pub retrieved_at: String,
    pub as_of_time: String,
    pub policy_snapshot_id: String,
    pub policy_snapshot_hash: String,
    #[serde(with = "chain_serde")]
    pub transform_chain: Vec<TransformStep>,
    pub evidence_unit_id: String,
}

/// The payload of a new unit; its type decides `content_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum EvidenceContent {
    /// `text/plain`: kept as given; only its hash uses the canonical text.
    Text(String),
    /// `application/json`.
    Json(Value),
}

/// Everything a unit holds apart from what is derived from it
/// (`content_type`, `content_hash`, `retrieved_at`, `evidence_unit_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceParts {
    pub source_system: String,
    pub object_id: String,
    pub version_id: String,
    pub span_or_row_spec: Value,
    pub content: EvidenceContent,
    pub as_of_time: String,
    pub policy_snapshot_id: String,
    pub policy_snapshot_hash: String,
    pub transform_chain: Vec<TransformStep>,
}

/// Why a unit's hashes cannot be recomputed or do not match. The messages
/// are the gateway's `redact` validation messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("EvidenceUnit.content is required")]
    MissingContent,
    #[error("text/plain evidence content must be a string")]
    TextNotString,
    #[error("EvidenceUnit.content_hash mismatch")]
    ContentHashMismatch,
    #[error("EvidenceUnit.evidence_unit_id mismatch")]
    IdMismatch,
}

impl EvidenceUnit {
    /// Builds a unit, computing `content_hash` and `evidence_unit_id` from
    /// the other fields. `retrieved_at` is the `as_of_time` (not wall clock).
    pub fn new(parts: EvidenceParts) -> Self {
        let (content_type, content, content_hash) = match parts.content {
            EvidenceContent::Text(text) => {
                let hash = text_content_hash(&text);
                (EvidenceContentType::TextPlain, Value::String(text), hash)
            }
            EvidenceContent::Json(value) => {
                let hash = hash_canonical_json(&value);
                (EvidenceContentType::ApplicationJson, value, hash)
            }
        };
        let mut unit = Self {
            source_system: parts.source_system,
            object_id: parts.object_id,
            version_id: parts.version_id,
            span_or_row_spec: parts.span_or_row_spec,
            content_type,
            content: Some(content),
            content_hash,
            retrieved_at: parts.as_of_time.clone(),
            as_of_time: parts.as_of_time,
            policy_snapshot_id: parts.policy_snapshot_id,
            policy_snapshot_hash: parts.policy_snapshot_hash,
            transform_chain: parts.transform_chain,
            evidence_unit_id: String::new(),
        };
        unit.evidence_unit_id = unit.compute_evidence_unit_id();
        unit
    }

    /// The fields the id covers.
    pub fn identity(&self) -> EvidenceIdentity<'_> {
        EvidenceIdentity {
            source_system: &self.source_system,
            object_id: &self.object_id,
            version_id: &self.version_id,
            span_or_row_spec: &self.span_or_row_spec,
            content_hash: &self.content_hash,
            as_of_time: &self.as_of_time,
            policy_snapshot_hash: &self.policy_snapshot_hash,
            transform_chain: &self.transform_chain,
        }
    }

    /// The content hash the current `content` and `content_type` call for.
    pub fn compute_content_hash(&self) -> Result<String, EvidenceError> {
        let content = self.content.as_ref().ok_or(EvidenceError::MissingContent)?;
        match self.content_type {
            EvidenceContentType::TextPlain => content
                .as_str()
                .map(text_content_hash)
                .ok_or(EvidenceError::TextNotString),
            EvidenceContentType::ApplicationJson => Ok(hash_canonical_json(content)),
        }
    }

    /// The id the identity fields (with the stored `content_hash`) call for.
    pub fn compute_evidence_unit_id(&self) -> String {
        evidence_unit_id(&self.identity())
    }

    /// Recomputes `content_hash`, then `evidence_unit_id`, after a change.
    pub fn rehash(&mut self) -> Result<(), EvidenceError> {
        self.content_hash = self.compute_content_hash()?;
        self.evidence_unit_id = self.compute_evidence_unit_id();
        Ok(())
    }

    /// Checks, in this order, that content is present (and a string for
    /// `text/plain`), that `content_hash` matches it, and that
    /// `evidence_unit_id` matches the identity fields.
    pub fn verify(&self) -> Result<(), EvidenceError> {
        if self.compute_content_hash()? != self.content_hash {
            return Err(EvidenceError::ContentHashMismatch);
        }
        if self.compute_evidence_unit_id() != self.evidence_unit_id {
            return Err(EvidenceError::IdMismatch);
        }
        Ok(())
    }
}

/// `transform_chain` as JSON: `{transform_type, transform_hash, params?}`.
mod chain_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    use crate::hashing::TransformStep;

    #[derive(Serialize)]
    struct StepOut<'a> {
        transform_type: &'a str,
        transform_hash: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a Value>,
    }

    #[derive(Deserialize)]
    struct StepIn {
        transform_type: String,
        transform_hash: String,
        #[serde(default)]
        params: Option<Value>,
    }

    pub fn serialize<S: Serializer>(
        chain: &[TransformStep],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(chain.iter().map(|step| StepOut {
            transform_type: &step.transform_type,
            transform_hash: &step.transform_hash,
            params: step.params.as_ref(),
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<TransformStep>, D::Error> {
        let steps = Vec::<StepIn>::deserialize(deserializer)?;
        Ok(steps
            .into_iter()
            .map(|step| TransformStep {
                transform_type: step.transform_type,
                transform_hash: step.transform_hash,
                params: step.params,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hashing::sha256_hex;

    const V8_SNAPSHOT_DEV: &str =
        "fbaa1a39f1f98474a7eded447a9d1df4c7f150a9fb1e9e4e87d70057e8f5c5df";
    const EPOCH: &str = "1970-01-01T00:00:00Z";

    fn public_file() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/fs_corpus/public/public_1.txt"
        );
        std::fs::read_to_string(path).expect("fixture file is readable UTF-8")
    }

    fn v14_unit() -> EvidenceUnit {
        let text = public_file();
        EvidenceUnit::new(EvidenceParts {
            source_system: "fs_corpus".into(),
            object_id: "public/public_1.txt".into(),
            version_id: sha256_hex(text.as_bytes()),
            span_or_row_spec: json!({
                "type": "text_span", "start_byte": 0, "end_byte": text.len(),
                "line_start": 1, "line_end": 1 + text.matches('\n').count(),
            }),
            content: EvidenceContent::Text(text),
            as_of_time: EPOCH.into(),
            policy_snapshot_id: "ps1".into(),
            policy_snapshot_hash: V8_SNAPSHOT_DEV.into(),
            transform_chain: vec![],
        })
    }

    fn v16_unit() -> EvidenceUnit {
        EvidenceUnit::new(EvidenceParts {
            source_system: "pg_safeview".into(),
            object_id: "safe_customer_view_public:local:cust_public_1".into(),
            version_id: sha256_hex("2026-01-01T00:00:00Z"),
            span_or_row_spec: json!({
                "type": "db_row",
                "view_id": "safe_customer_view_public",
                "primary_key": {"tenant_id": "local", "customer_id": "cust_public_1"},
                "fields": ["customer_id", "status"],
            }),
            content: EvidenceContent::Json(
                json!({"customer_id":"cust_public_1","status":"active"}),
            ),
            as_of_time: EPOCH.into(),
            policy_snapshot_id: "ps1".into(),
            policy_snapshot_hash: V8_SNAPSHOT_DEV.into(),
            transform_chain: vec![],
        })
    }

    #[test]
    fn v14_whole_public_file() {
        let unit = v14_unit();
        assert_eq!(unit.content_type, EvidenceContentType::TextPlain);
        assert_eq!(
            unit.content_hash,
            "463bace3fd0318503dfc3052a7309c531d9993e2075a3618030ad513e0883579"
        );
        assert_eq!(unit.version_id, unit.content_hash);
        assert_eq!(
            unit.evidence_unit_id,
            "f2a54285533a2e77a3262fa16318865222116f53ef798683c85009a1c37cdf3f"
        );
        assert_eq!(unit.retrieved_at, EPOCH);
        assert_eq!(unit.verify(), Ok(()));
    }

    #[test]
    fn v16_safe_view_row() {
        let unit = v16_unit();
        assert_eq!(unit.content_type, EvidenceContentType::ApplicationJson);
        assert_eq!(
            unit.content_hash,
            "d1c942e925eed4192130e50f3a7d4031b6186e3be6036671ccf9d17e5117d1ed"
        );
        assert_eq!(
            unit.version_id,
            "06fea089d547d0b62143aee268eed0ebac99884c102736f285e41bb1acad10dc"
        );
        assert_eq!(
            unit.evidence_unit_id,
            "82f52a1490bfd949c470e1b4743a7717ac53424778c30c7a66a417b1435e245c"
        );
        assert_eq!(unit.verify(), Ok(()));
    }

    #[test]
    fn wire_shape_round_trips_and_omits_absent_fields() {
        let mut unit = v16_unit();
        unit.transform_chain = vec![TransformStep {
            transform_type: "x".into(),
            transform_hash: "h".into(),
            params: None,
        }];
        let wire = serde_json::to_value(&unit).expect("serializes");
        assert_eq!(wire["content_type"], "application/json");
        assert_eq!(
            wire["transform_chain"],
            json!([{"transform_type":"x","transform_hash":"h"}])
        );
        let back: EvidenceUnit = serde_json::from_value(wire.clone()).expect("decodes");
        assert_eq!(back, unit);

        unit.content = None;
        let wire = serde_json::to_value(&unit).expect("serializes");
        assert!(wire.get("content").is_none());
        let mut with_null = wire.clone();
        with_null["content"] = Value::Null;
        with_null["unknown_field"] = json!(1);
        let back: EvidenceUnit = serde_json::from_value(with_null).expect("decodes");
        assert_eq!(back.content, None);
    }

    #[test]
    fn step_params_round_trip() {
        let mut unit = v16_unit();
        unit.transform_chain = vec![TransformStep::new(
            "redaction",
            json!({"deny_fields":["admin_note","injection_note"]}),
        )];
        unit.rehash().expect("json content hashes");
        let wire = serde_json::to_value(&unit).expect("serializes");
        assert_eq!(
            wire["transform_chain"][0]["transform_hash"],
            "2cfde533e8d17ea1a98cd71b68bc187e5406176b030092bf59911d773875f115"
        );
        let back: EvidenceUnit = serde_json::from_value(wire).expect("decodes");
        assert_eq!(back.verify(), Ok(()));
        assert_ne!(back.evidence_unit_id, v16_unit().evidence_unit_id);
    }

    #[test]
    fn bad_units_are_refused() {
        assert!(serde_json::from_value::<EvidenceUnit>(json!({"source_system":"x"})).is_err());
        let mut wire = serde_json::to_value(v16_unit()).expect("serializes");
        wire["content_type"] = json!("text/html");
        assert!(serde_json::from_value::<EvidenceUnit>(wire).is_err());
    }

    #[test]
    fn verify_reports_each_failure_in_order() {
        let mut unit = v14_unit();
        unit.content = None;
        assert_eq!(unit.verify(), Err(EvidenceError::MissingContent));
        unit.content = Some(json!({"not":"text"}));
        assert_eq!(unit.verify(), Err(EvidenceError::TextNotString));
        unit.content = Some(json!("changed"));
        assert_eq!(unit.verify(), Err(EvidenceError::ContentHashMismatch));
        let mut unit = v14_unit();
        unit.object_id = "public/other.txt".into();
        assert_eq!(unit.verify(), Err(EvidenceError::IdMismatch));
        assert_eq!(
            EvidenceError::ContentHashMismatch.to_string(),
            "EvidenceUnit.content_hash mismatch"
        );
    }

    #[test]
    fn text_hash_uses_canonical_text_but_content_is_kept() {
        let unit = EvidenceUnit::new(EvidenceParts {
            content: EvidenceContent::Text("a\r\nb".into()),
            ..v14_parts_stub()
        });
        assert_eq!(unit.content, Some(json!("a\r\nb")));
        assert_eq!(unit.content_hash, sha256_hex("a\nb"));
    }

    fn v14_parts_stub() -> EvidenceParts {
        EvidenceParts {
            source_system: "fs_corpus".into(),
            object_id: "o".into(),
            version_id: "v".into(),
            span_or_row_spec: json!({}),
            content: EvidenceContent::Text(String::new()),
            as_of_time: EPOCH.into(),
            policy_snapshot_id: "ps".into(),
            policy_snapshot_hash: V8_SNAPSHOT_DEV.into(),
            transform_chain: vec![],
        }
    }
}

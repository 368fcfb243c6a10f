//! `--json`: messages as the REST contract writes them. The prost message
//! is re-read as a `DynamicMessage` and written by the edge's own encoder,
//! so field names, enum names and embedded JSON text match the REST API
//! byte for byte instead of being a second, hand-kept mapping. Also the
//! JSON files the local checks read and write.

use std::path::Path;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde::Serialize;

use crate::client::Failure;

pub struct JsonWriter {
    pool: DescriptorPool,
}

impl JsonWriter {
    pub fn new() -> Result<Self, String> {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
            .map_err(|err| format!("bad descriptor set: {err}"))?;
        Ok(Self { pool })
    }

    /// One line of JSON for `message`, whose protobuf type is `full_name`
    /// (prost types do not know their own names).
    pub fn render<M: Message>(&self, full_name: &str, message: &M) -> Result<String, String> {
        let descriptor = self
            .pool
            .get_message_by_name(full_name)
            .ok_or_else(|| format!("{full_name} is not in the descriptor set"))?;
        let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
            .map_err(|err| format!("{full_name}: {err}"))?;
        let bytes = pecr_edge_json::message_json(&self.pool, &dynamic)?;
        String::from_utf8(bytes).map_err(|err| format!("{full_name}: {err}"))
    }
}

/// Reads a JSON file of type `T` (an input of a local check); a usage error
/// names the file and what it should have been.
pub fn read_file<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|err| Failure::Usage(format!("{} is not {what}: {err}", path.display())))
}

/// A local check's report as one line of JSON, newline included.
pub fn line<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map(|text| text + "\n")
        .map_err(|err| Failure::Output(err.to_string()))
}

/// A report as indented JSON for a file, newline included.
pub fn pretty<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|err| Failure::Output(err.to_string()))
}

/// Writes `text` to `path`, creating the folders it needs.
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_errors::{ErrorCode, PecrError};
    use pecr_proto::v1::{Claim, ClaimMap, EvidenceUnitRef, RunResponse, TerminalMode, claim};

    #[test]
    fn a_run_response_uses_contract_names() {
        let response = RunResponse {
            terminal_mode: TerminalMode::Supported as i32,
            trace_id: "t1".into(),
            claim_map: Some(ClaimMap {
                claim_map_id: "cm".into(),
                terminal_mode: TerminalMode::Supported as i32,
                claims: vec![
                    Claim {
                        claim_id: "c1".into(),
                        claim_text: "the sky is blue".into(),
                        status: claim::Status::Supported as i32,
                        evidence_unit_ids: vec!["ab".repeat(32)],
                    },
                    Claim {
                        claim_id: "c2".into(),
                        claim_text: "it may rain".into(),
                        status: claim::Status::Assumption as i32,
                        evidence_unit_ids: vec![],
                    },
                ],
                coverage_threshold: 0.5,
                coverage_observed: 1.0,
                notes: None,
            }),
            response_text: "blue".into(),
            run_id: "t1-01J".into(),
            stop_reason: "finalized".into(),
            cited_evidence: vec![EvidenceUnitRef {
                evidence_unit_id: "ab".repeat(32),
                source_system: "fs_corpus".into(),
                object_id: "sky.md".into(),
                version_id: "v1".into(),
                transform_types: vec![],
            }],
        };
        let json = JsonWriter::new()
            .expect("pool")
            .render("pecr.v1.RunResponse", &response)
            .expect("renders");
        assert!(!json.contains('\n'), "{json}");
        assert!(json.contains(r#""terminal_mode":"SUPPORTED""#), "{json}");
        assert!(json.contains(r#""status":"SUPPORTED""#), "{json}");
        assert!(json.contains(r#""status":"ASSUMPTION""#), "{json}");
        assert!(json.contains(r#""object_id":"sky.md""#), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(
            value["claim_map"]["claims"][0]["claim_text"],
            "the sky is blue"
        );
    }

    #[test]
    fn an_error_renders_as_the_rest_error_body() {
        let error = PecrError::new(ErrorCode::RateLimited, "slow down");
        let json = JsonWriter::new()
            .expect("pool")
            .render("pecr.v1.ErrorResponse", &error.to_error_response())
            .expect("renders");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "code": "ERR_RATE_LIMITED",
                "message": "slow down",
                "terminal_mode_hint": "INSUFFICIENT_PERMISSION",
                "retryable": true,
            })
        );
    }

    #[test]
    fn unknown_types_are_an_error_not_a_panic() {
        let writer = JsonWriter::new().expect("pool");
        assert!(
            writer
                .render("pecr.v1.Nope", &RunResponse::default())
                .is_err()
        );
    }
}

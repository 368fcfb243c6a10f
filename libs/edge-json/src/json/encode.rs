//! `DynamicMessage` → JSON bytes, written directly (no intermediate value),
//! members in declaration order.

use std::fmt;

use base64::Engine as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value};
use serde_json::value::RawValue;

use super::{JsonMapping, MAX_DEPTH, compact};
use crate::descriptors::{fields_in_order, has_explicit_presence, is_unspecified};

/// Why a response could not be written as contract JSON (an internal error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(reason: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError(reason.into()))
}

impl JsonMapping {
    pub fn encode_message(&self, message: &DynamicMessage) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        self.write_message(message, &mut out, 0)?;
        Ok(out)
    }

    /// The JSON of one field's value (for `response_body`). The field is
    /// written even when unset, like every field without presence.
    pub fn encode_field(
        &self,
        message: &DynamicMessage,
        field: &FieldDescriptor,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        if has_explicit_presence(field) && !message.has_field(field) {
            out.extend_from_slice(b"null");
        } else {
            self.write_field(field, &message.get_field(field), &mut out, 0)?;
        }
        Ok(out)
    }

    fn write_message(
        &self,
        message: &DynamicMessage,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        if depth > MAX_DEPTH {
            return fail("message nesting too deep");
        }
        out.push(b'{');
        let mut first = true;
        for field in fields_in_order(&message.descriptor()) {
            if has_explicit_presence(&field) && !message.has_field(&field) {
                continue;
            }
            if self.omits_when_empty(&field) && !message.has_field(&field) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_string(field.name(), out)?;
            out.push(b':');
            self.write_field(&field, &message.get_field(&field), out, depth)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn write_field(
        &self,
        field: &FieldDescriptor,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        match value {
            Value::List(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    self.write_single(field, &field.kind(), item, out, depth)?;
                }
                out.push(b']');
                Ok(())
            }
            Value::Map(map) => {
                let Kind::Message(entry) = field.kind() else {
                    return fail(format!(
                        "{}: map value on a non-map field",
                        field.full_name()
                    ));
                };
                let value_field = entry.map_entry_value_field();
                let mut entries: Vec<(&MapKey, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (index, (key, item)) in entries.into_iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write_string(&map_key_text(key), out)?;
                    out.push(b':');
                    self.write_single(&value_field, &value_field.kind(), item, out, depth)?;
                }
                out.push(b'}');
                Ok(())
            }
            single => self.write_single(field, &field.kind(), single, out, depth),
        }
    }

    fn write_single(
        &self,
        field: &FieldDescriptor,
        kind: &Kind,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        let what = field.full_name();
        match (kind, value) {
            (Kind::String, Value::String(text)) if self.is_json_text(field) => {
                let raw = serde_json::from_str::<&RawValue>(text)
                    .map_err(|_| EncodeError(format!("{what}: not JSON text")))?;
                out.extend_from_slice(compact(raw.get()).as_bytes());
            }
            (_, Value::String(text)) => write_string(text, out)?,
            (_, Value::Bool(flag)) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
            (_, Value::I32(number)) => out.extend_from_slice(number.to_string().as_bytes()),
            (_, Value::I64(number)) => out.extend_from_slice(number.to_string().as_bytes()),
            (_, Value::U32(number)) => out.extend_from_slice(number.to_string().as_bytes()),
            (_, Value::U64(number)) => out.extend_from_slice(number.to_string().as_bytes()),
            (_, Value::F64(number)) => {
                if !number.is_finite() {
                    return fail(format!("{what}: not a finite number"));
                }
                serde_json::to_writer(&mut *out, number)
                    .map_err(|err| EncodeError(format!("{what}: {err}")))?;
            }
            (_, Value::F32(number)) => {
                if !number.is_finite() {
                    return fail(format!("{what}: not a finite number"));
                }
                serde_json::to_writer(&mut *out, number)
                    .map_err(|err| EncodeError(format!("{what}: {err}")))?;
            }
            (_, Value::Bytes(data)) => {
                let text = base64::engine::general_purpose::STANDARD.encode(data);
                write_string(&text, out)?;
            }
            (Kind::Enum(enumeration), Value::EnumNumber(number)) => {
                match enumeration.get_value(*number) {
                    Some(value) if !is_unspecified(&value) => write_string(value.name(), out)?,
                    Some(_) => return fail(format!("{what}: enum value is unspecified")),
                    None => return fail(format!("{what}: unknown enum number {number}")),
                }
            }
            (_, Value::Message(message)) => self.write_message(message, out, depth + 1)?,
            _ => return fail(format!("{what}: value does not match the field type")),
        }
        Ok(())
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    serde_json::to_writer(&mut *out, text).map_err(|err| EncodeError(err.to_string()))
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(v) => v.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(v) => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    fn mapping() -> (DescriptorPool, JsonMapping) {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool");
        let mapping = JsonMapping::new(&pool, &[]);
        (pool, mapping)
    }

    fn encode<M: prost::Message>(name: &str, message: &M) -> Result<String, EncodeError> {
        let (pool, mapping) = mapping();
        let descriptor = pool.get_message_by_name(name).expect("message");
        let dynamic =
            DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).expect("decode");
        let bytes = mapping.encode_message(&dynamic)?;
        Ok(String::from_utf8(bytes).expect("utf-8"))
    }

    #[test]
    fn error_response_is_exact() {
        let error = pecr_proto::v1::ErrorResponse {
            code: "ERR_INVALID_PARAMS".into(),
            message: "invalid JSON body".into(),
            terminal_mode_hint: pecr_proto::v1::TerminalMode::InsufficientEvidence as i32,
            retryable: false,
            detail: None,
        };
        assert_eq!(
            encode("pecr.v1.ErrorResponse", &error).as_deref(),
            Ok(
                r#"{"code":"ERR_INVALID_PARAMS","message":"invalid JSON body","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#
            )
        );
        let with_detail = pecr_proto::v1::ErrorResponse {
            detail: Some(r#"{"n": 1, "f": 2.50}"#.into()),
            ..error
        };
        assert_eq!(
            encode("pecr.v1.ErrorResponse", &with_detail).as_deref(),
            Ok(
                r#"{"code":"ERR_INVALID_PARAMS","message":"invalid JSON body","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false,"detail":{"n":1,"f":2.50}}"#
            )
        );
    }

    #[test]
    fn zero_values_present_optional_omitted_numbers_stay_numbers() {
        let bundle = pecr_proto::v1::ReplayBundleMetadata {
            schema_version: 1,
            recorded_at_unix_ms: u64::MAX,
            terminal_mode: pecr_proto::v1::TerminalMode::Supported as i32,
            quality_score: 100.0,
            ..Default::default()
        };
        assert_eq!(
            encode("pecr.v1.ReplayBundleMetadata", &bundle).as_deref(),
            Ok(
                r#"{"schema_version":1,"run_id":"","trace_id":"","request_id":"","principal_id_hash":"","engine_mode":"","recorded_at_unix_ms":18446744073709551615,"terminal_mode":"SUPPORTED","quality_score":100.0,"bundle_hash":""}"#
            )
        );
        let budget = pecr_proto::v1::Budget::default();
        assert_eq!(
            encode("pecr.v1.Budget", &budget).as_deref(),
            Ok(
                r#"{"max_operator_calls":0,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}"#
            )
        );
        let budget = pecr_proto::v1::Budget {
            max_parallelism: Some(0),
            ..Default::default()
        };
        assert!(
            encode("pecr.v1.Budget", &budget).is_ok_and(|j| j.ends_with(r#""max_parallelism":0}"#))
        );
    }

    #[test]
    fn an_omit_empty_list_is_written_only_with_items() {
        let opened = pecr_proto::v1::CreateSessionResponse {
            session_id: "S".into(),
            ..Default::default()
        };
        assert_eq!(
            encode("pecr.v1.CreateSessionResponse", &opened).as_deref(),
            Ok(
                r#"{"session_id":"S","trace_id":"","policy_snapshot_id":"","budget":{"max_operator_calls":0,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}}"#
            )
        );
        let with_calls = pecr_proto::v1::CreateSessionResponse {
            outcomes: vec![pecr_proto::v1::OperatorOutcome::default()],
            ..opened
        };
        assert!(
            encode("pecr.v1.CreateSessionResponse", &with_calls)
                .is_ok_and(|json| json.ends_with(r#""outcomes":[{}]}"#))
        );
    }

    #[test]
    fn unspecified_enums_and_bad_json_text_are_internal_errors() {
        let map = pecr_proto::v1::ClaimMap::default();
        assert!(encode("pecr.v1.ClaimMap", &map).is_err());
        let decision = pecr_proto::v1::PolicyDecision {
            redaction: Some("{not json".into()),
            ..Default::default()
        };
        assert!(encode("pecr.v1.PolicyDecision", &decision).is_err());
        let unit = pecr_proto::v1::EvidenceUnit {
            span_or_row_spec: String::new(),
            ..Default::default()
        };
        assert!(encode("pecr.v1.EvidenceUnit", &unit).is_err());
        let score = pecr_proto::v1::ReplayRunScore {
            terminal_mode: 1,
            quality_score: f64::NAN,
            ..Default::default()
        };
        assert!(encode("pecr.v1.ReplayRunScore", &score).is_err());
    }
}

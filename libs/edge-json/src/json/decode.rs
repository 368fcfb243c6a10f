//! JSON → `DynamicMessage`. The body is split lazily with `RawValue`, so
//! each member is parsed by the type its field asks for and JSON-text
//! fields keep their exact spelling.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{JsonMapping, MAX_DEPTH, compact};
use crate::descriptors::{fields_in_order, has_explicit_presence, is_unspecified, real_oneof_name};

/// Why a body was refused; logged, never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(reason: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(reason.into()))
}

/// The members of a JSON object, in order, duplicates kept.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The JSON type of valid JSON text, by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

fn json_type(raw: &str) -> JsonType {
    match raw.as_bytes().first() {
        Some(b'{') => JsonType::Object,
        Some(b'[') => JsonType::Array,
        Some(b'"') => JsonType::String,
        Some(b't' | b'f') => JsonType::Bool,
        Some(b'n') => JsonType::Null,
        _ => JsonType::Number,
    }
}

fn expect(raw: &str, wanted: JsonType, what: &str) -> Result<(), DecodeError> {
    let found = json_type(raw);
    if found == wanted {
        Ok(())
    } else {
        fail(format!("{what}: expected {wanted:?}, found {found:?}"))
    }
}

/// Parses the top level of a body: one JSON value, nothing after it.
pub fn parse_body(body: &[u8]) -> Result<&RawValue, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError("body is not UTF-8".into()))?;
    serde_json::from_str::<&RawValue>(text)
        .map_err(|err| DecodeError(format!("malformed JSON: {err}")))
}

impl JsonMapping {
    /// Decodes a JSON object into `message`, refusing members for the
    /// `excluded` fields (those bound by the path).
    pub fn decode_message(
        &self,
        message: &MessageDescriptor,
        raw: &RawValue,
        excluded: &[FieldDescriptor],
    ) -> Result<DynamicMessage, DecodeError> {
        self.message(message, raw.get().trim(), excluded, 0)
    }

    /// Decodes the JSON value of one field. `None` means `null` for a field
    /// with explicit presence: leave it unset.
    pub fn decode_field(
        &self,
        field: &FieldDescriptor,
        raw: &RawValue,
    ) -> Result<Option<Value>, DecodeError> {
        self.field_value(field, raw.get().trim(), 0)
    }

    /// Parses a path or query parameter for a scalar or enum field.
    pub fn parse_text(&self, field: &FieldDescriptor, text: &str) -> Result<Value, DecodeError> {
        let what = field.name();
        Ok(match field.kind() {
            Kind::String if self.is_json_text(field) => {
                let raw = serde_json::from_str::<&RawValue>(text)
                    .map_err(|_| DecodeError(format!("{what}: not JSON")))?;
                Value::String(compact(raw.get()))
            }
            Kind::String => Value::String(text.to_owned()),
            Kind::Bool => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return fail(format!("{what}: not a boolean")),
            },
            Kind::Bytes => Value::Bytes(
                base64_decode(text).ok_or_else(|| DecodeError(format!("{what}: not base64")))?,
            ),
            Kind::Enum(enumeration) => Value::EnumNumber(enum_number(&enumeration, text, what)?),
            Kind::Double | Kind::Float => {
                let number: f64 = text
                    .parse()
                    .map_err(|_| DecodeError(format!("{what}: not a number")))?;
                float_value(&field.kind(), number, what)?
            }
            Kind::Message(_) => return fail(format!("{what}: a message cannot be a parameter")),
            kind => integer_value(&kind, text, what)?,
        })
    }

    fn message(
        &self,
        descriptor: &MessageDescriptor,
        raw: &str,
        excluded: &[FieldDescriptor],
        depth: usize,
    ) -> Result<DynamicMessage, DecodeError> {
        let name = descriptor.full_name();
        if depth > MAX_DEPTH {
            return fail("message nesting too deep");
        }
        expect(raw, JsonType::Object, name)?;
        let members: Members<'_> =
            serde_json::from_str(raw).map_err(|err| DecodeError(format!("{name}: {err}")))?;
        let lenient = self.lenient.contains(name);
        let mut message = DynamicMessage::new(descriptor.clone());
        let mut seen: HashSet<u32> = HashSet::new();
        let mut oneofs: HashSet<String> = HashSet::new();
        for (key, value) in members.0 {
            let field = descriptor
                .get_field_by_name(&key)
                .filter(|field| !excluded.contains(field));
            let Some(field) = field else {
                if lenient {
                    continue;
                }
                return fail(format!("{name}: unknown field `{key}`"));
            };
            if !seen.insert(field.number()) {
                return fail(format!("{name}: duplicate field `{key}`"));
            }
            let Some(value) = self.field_value(&field, value.get().trim(), depth)? else {
                continue;
            };
            if let Some(oneof) = real_oneof_name(&field)
                && !oneofs.insert(oneof)
            {
                return fail(format!("{name}: more than one member of a oneof"));
            }
            message
                .try_set_field(&field, value)
                .map_err(|err| DecodeError(format!("{name}.{key}: {err}")))?;
        }
        for field in fields_in_order(descriptor) {
            let optional = has_explicit_presence(&field) || field.is_list() || field.is_map();
            if !optional && !excluded.contains(&field) && !seen.contains(&field.number()) {
                return fail(format!("{name}: missing field `{}`", field.name()));
            }
        }
        Ok(message)
    }

    fn field_value(
        &self,
        field: &FieldDescriptor,
        raw: &str,
        depth: usize,
    ) -> Result<Option<Value>, DecodeError> {
        let what = field.full_name();
        if json_type(raw) == JsonType::Null {
            if has_explicit_presence(field) {
                return Ok(None);
            }
            if self.is_json_text(field) && !field.is_list() {
                return Ok(Some(Value::String("null".into())));
            }
            return fail(format!("{what}: null for a field that is not optional"));
        }
        if field.is_map() {
            return self.map_value(field, raw, depth).map(Some);
        }
        if field.is_list() {
            expect(raw, JsonType::Array, what)?;
            let items: Vec<&RawValue> =
                serde_json::from_str(raw).map_err(|err| DecodeError(format!("{what}: {err}")))?;
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                values.push(self.single(field, &field.kind(), item.get().trim(), depth)?);
            }
            return Ok(Some(Value::List(values)));
        }
        self.single(field, &field.kind(), raw, depth).map(Some)
    }

    fn map_value(
        &self,
        field: &FieldDescriptor,
        raw: &str,
        depth: usize,
    ) -> Result<Value, DecodeError> {
        let what = field.full_name();
        let Kind::Message(entry) = field.kind() else {
            return fail(format!("{what}: malformed map field"));
        };
        expect(raw, JsonType::Object, what)?;
        let members: Members<'_> =
            serde_json::from_str(raw).map_err(|err| DecodeError(format!("{what}: {err}")))?;
        let key_field = entry.map_entry_key_field();
        let value_field = entry.map_entry_value_field();
        let mut map = HashMap::with_capacity(members.0.len());
        for (key, value) in members.0 {
            let key = map_key(&key_field.kind(), &key, what)?;
            let value = value.get().trim();
            if json_type(value) == JsonType::Null {
                return fail(format!("{what}: null map value"));
            }
            let value = self.single(&value_field, &value_field.kind(), value, depth)?;
            if map.insert(key, value).is_some() {
                return fail(format!("{what}: duplicate map key"));
            }
        }
        Ok(Value::Map(map))
    }

    /// One non-repeated value of `kind` (a list item, map value or singular field).
    fn single(
        &self,
        field: &FieldDescriptor,
        kind: &Kind,
        raw: &str,
        depth: usize,
    ) -> Result<Value, DecodeError> {
        let what = field.full_name();
        Ok(match kind {
            Kind::String if self.is_json_text(field) => Value::String(compact(raw)),
            Kind::String => {
                expect(raw, JsonType::String, what)?;
                Value::String(string(raw, what)?)
            }
            Kind::Bool => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return fail(format!("{what}: expected a boolean")),
            },
            Kind::Bytes => {
                expect(raw, JsonType::String, what)?;
                let text = string(raw, what)?;
                Value::Bytes(
                    base64_decode(&text)
                        .ok_or_else(|| DecodeError(format!("{what}: not base64")))?,
                )
            }
            Kind::Enum(enumeration) => {
                expect(raw, JsonType::String, what)?;
                Value::EnumNumber(enum_number(enumeration, &string(raw, what)?, what)?)
            }
            Kind::Message(message) => Value::Message(self.message(message, raw, &[], depth + 1)?),
            Kind::Double | Kind::Float => {
                expect(raw, JsonType::Number, what)?;
                let number: f64 = raw
                    .parse()
                    .map_err(|_| DecodeError(format!("{what}: not a number")))?;
                float_value(kind, number, what)?
            }
            kind => {
                expect(raw, JsonType::Number, what)?;
                integer_value(kind, raw, what)?
            }
        })
    }
}

fn string(raw: &str, what: &str) -> Result<String, DecodeError> {
    serde_json::from_str::<String>(raw).map_err(|err| DecodeError(format!("{what}: {err}")))
}

fn enum_number(enumeration: &EnumDescriptor, name: &str, what: &str) -> Result<i32, DecodeError> {
    match enumeration.get_value_by_name(name) {
        Some(value) if !is_unspecified(&value) => Ok(value.number()),
        Some(_) => fail(format!(
            "{what}: the unspecified enum value is not accepted"
        )),
        None => fail(format!("{what}: unknown enum value")),
    }
}

fn float_value(kind: &Kind, number: f64, what: &str) -> Result<Value, DecodeError> {
    if !number.is_finite() {
        return fail(format!("{what}: not a finite number"));
    }
    if matches!(kind, Kind::Float) {
        #[allow(clippy::cast_possible_truncation)]
        let narrow = number as f32;
        if !narrow.is_finite() {
            return fail(format!("{what}: out of range for float"));
        }
        return Ok(Value::F32(narrow));
    }
    Ok(Value::F64(number))
}

/// An integer written without fraction or exponent, in range for `kind`.
fn integer_value(kind: &Kind, text: &str, what: &str) -> Result<Value, DecodeError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return fail(format!("{what}: expected an integer"));
    }
    let out_of_range = || DecodeError(format!("{what}: integer out of range"));
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(|_| out_of_range())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(|_| out_of_range())?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().map_err(|_| out_of_range())?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().map_err(|_| out_of_range())?),
        _ => return fail(format!("{what}: not an integer field")),
    })
}

fn map_key(kind: &Kind, key: &str, what: &str) -> Result<MapKey, DecodeError> {
    let bad = || DecodeError(format!("{what}: bad map key"));
    Ok(match kind {
        Kind::String => MapKey::String(key.to_owned()),
        Kind::Bool => match key {
            "true" => MapKey::Bool(true),
            "false" => MapKey::Bool(false),
            _ => return Err(bad()),
        },
        kind => match integer_value(kind, key, what).map_err(|_| bad())? {
            Value::I32(v) => MapKey::I32(v),
            Value::I64(v) => MapKey::I64(v),
            Value::U32(v) => MapKey::U32(v),
            Value::U64(v) => MapKey::U64(v),
            _ => return Err(bad()),
        },
    })
}

/// Standard or URL-safe base64, padded or not (as proto3 JSON allows).
fn base64_decode(text: &str) -> Option<bytes::Bytes> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(bytes::Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    fn setup() -> (DescriptorPool, JsonMapping) {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool");
        let mapping = JsonMapping::new(&pool, &["pecr.v1.ClaimMap"]);
        (pool, mapping)
    }

    fn decode(name: &str, json: &str) -> Result<DynamicMessage, DecodeError> {
        let (pool, mapping) = setup();
        let descriptor = pool.get_message_by_name(name).expect("message");
        let raw = parse_body(json.as_bytes())?;
        mapping.decode_message(&descriptor, raw, &[])
    }

    #[test]
    fn budgets_decode_with_numbers_and_optional_null() {
        let budget = decode(
            "pecr.v1.Budget",
            r#"{"max_operator_calls":10,"max_bytes":67108864,"max_wallclock_ms":18446744073709551615,"max_recursion_depth":0,"max_parallelism":null}"#,
        )
        .expect("budget");
        assert_eq!(
            budget.get_field_by_name("max_wallclock_ms").as_deref(),
            Some(&Value::U64(u64::MAX))
        );
        assert!(!budget.has_field_by_name("max_parallelism"));
        let with = decode(
            "pecr.v1.Budget",
            r#"{"max_operator_calls":1,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0,"max_parallelism":0}"#,
        )
        .expect("budget");
        assert!(with.has_field_by_name("max_parallelism"));
    }

    #[test]
    fn bad_budgets_are_refused() {
        let base = |field: &str, value: &str| {
            let mut parts = vec![
                ("max_operator_calls", "1"),
                ("max_bytes", "1"),
                ("max_wallclock_ms", "1"),
                ("max_recursion_depth", "1"),
            ];
            for part in &mut parts {
                if part.0 == field {
                    part.1 = value;
                }
            }
            let body: Vec<String> = parts
                .iter()
                .filter(|p| !p.1.is_empty())
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        };
        for (field, value) in [
            ("max_operator_calls", "-1"),
            ("max_operator_calls", "1.5"),
            ("max_operator_calls", "1.0"),
            ("max_operator_calls", "1e2"),
            ("max_operator_calls", "4294967296"),
            ("max_bytes", "\"1\""),
            ("max_bytes", "18446744073709551616"),
            ("max_bytes", "null"),
            ("max_bytes", "true"),
            ("max_bytes", ""),
        ] {
            let body = base(field, value);
            assert!(decode("pecr.v1.Budget", &body).is_err(), "{body}");
        }
        assert!(decode("pecr.v1.Budget", &base("", "")).is_ok());
        let extra = r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"x":1}"#;
        assert!(decode("pecr.v1.Budget", extra).is_err());
        let duplicate = r#"{"max_operator_calls":1,"max_operator_calls":2,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#;
        assert!(decode("pecr.v1.Budget", duplicate).is_err());
    }

    #[test]
    fn enums_by_name_only() {
        let claim = |status: &str| {
            decode(
                "pecr.v1.Claim",
                &format!(
                    r#"{{"claim_id":"","claim_text":"t","status":{status},"evidence_unit_ids":[]}}"#
                ),
            )
        };
        let ok = claim("\"ASSUMPTION\"").expect("claim");
        assert_eq!(
            ok.get_field_by_name("status").as_deref(),
            Some(&Value::EnumNumber(2))
        );
        assert!(claim("\"STATUS_UNSPECIFIED\"").is_err());
        assert!(claim("\"assumption\"").is_err());
        assert!(claim("2").is_err());
        assert!(claim("null").is_err());
    }

    #[test]
    fn doubles_accept_integers_and_lenient_messages_ignore_unknowns() {
        let map = decode(
            "pecr.v1.ClaimMap",
            r#"{"claim_map_id":"c","terminal_mode":"SUPPORTED","claims":[],"coverage_threshold":1,"coverage_observed":0.5,"extra":{"x":1}}"#,
        )
        .expect("claim map");
        assert_eq!(
            map.get_field_by_name("coverage_threshold").as_deref(),
            Some(&Value::F64(1.0))
        );
        assert!(
            decode(
                "pecr.v1.ClaimMap",
                r#"{"claim_map_id":"c","terminal_mode":"SUPPORTED","claims":[],"coverage_threshold":"1","coverage_observed":0}"#,
            )
            .is_err()
        );
    }

    #[test]
    fn json_text_keeps_spelling_and_accepts_any_value() {
        let request = |params: &str| {
            decode(
                "pecr.v1.CallOperatorRequest",
                &format!(r#"{{"op_name":"x","session_id":"s","params":{params}}}"#),
            )
        };
        let message = request(r#"{ "a" : 1, "b": 1.0, "c": [ 100 ] }"#).expect("request");
        assert_eq!(
            message.get_field_by_name("params").as_deref(),
            Some(&Value::String(r#"{"a":1,"b":1.0,"c":[100]}"#.into()))
        );
        for (input, stored) in [("\"text\"", "\"text\""), ("null", "null"), ("7", "7")] {
            let message = request(input).expect("request");
            assert_eq!(
                message.get_field_by_name("params").as_deref(),
                Some(&Value::String(stored.into()))
            );
        }
        assert!(request("{").is_err());
    }

    #[test]
    fn missing_required_fields_are_refused_but_lists_default() {
        assert!(
            decode(
                "pecr.v1.CallOperatorRequest",
                r#"{"op_name":"x","session_id":"s"}"#
            )
            .is_err()
        );
        let submission = decode(
            "pecr.v1.ReplayEvaluationSubmission",
            r#"{"evaluation_name":"e"}"#,
        )
        .expect("submission");
        assert!(!submission.has_field_by_name("min_quality_score"));
        assert!(decode("pecr.v1.ReplayEvaluationSubmission", "[]").is_err());
        assert!(decode("pecr.v1.ReplayEvaluationSubmission", "").is_err());
        assert!(decode("pecr.v1.ReplayEvaluationSubmission", "{} x").is_err());
    }

    #[test]
    fn parameters_parse_by_kind() {
        let (pool, mapping) = setup();
        let request = pool
            .get_message_by_name("pecr.v1.ListReplaysRequest")
            .expect("message");
        let limit = request.get_field_by_name("limit").expect("limit");
        assert_eq!(mapping.parse_text(&limit, "5").ok(), Some(Value::U32(5)));
        assert!(mapping.parse_text(&limit, "-1").is_err());
        assert!(mapping.parse_text(&limit, "").is_err());
        assert!(mapping.parse_text(&limit, "1.5").is_err());
        assert!(mapping.parse_text(&limit, "+5").is_err());
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool");
        let mapping = JsonMapping::new(&pool, &[]);
        let request = pool
            .get_message_by_name("pecr.v1.CallOperatorRequest")
            .expect("message");
        let depth = 200_000;
        let body = format!(
            r#"{{"session_id":"s","params":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let op_name = request.get_field_by_name("op_name").expect("op_name");
        // Free-form JSON is kept as text, whatever its depth.
        assert!(
            parse_body(body.as_bytes())
                .and_then(|raw| mapping.decode_message(&request, raw, &[op_name]))
                .is_ok()
        );
        // Deep nesting where a typed field is expected is a type error.
        let run = pool
            .get_message_by_name("pecr.v1.RunRequest")
            .expect("message");
        let body = format!(
            r#"{{"query":"q","budget":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(
            parse_body(body.as_bytes())
                .and_then(|raw| mapping.decode_message(&run, raw, &[]))
                .is_err()
        );
    }
}

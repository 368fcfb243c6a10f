//! JSON → `DynamicMessage`. The body is split lazily with `RawValue`, so
//! each member is parsed by the type its field asks for and JSON-text
//! fields keep their exact spelling.
//!
//! Input follows the proto3 JSON mapping where its writers differ from our
//! output: a member may be named by its proto name or its lowerCamelCase
//! JSON name, a 64-bit integer may be a JSON number or a decimal string,
//! and an enum a value name or number. Our own strictness stays: unknown
//! members (outside open messages), the same field twice under either
//! name, missing non-optional members, `null` outside optional fields,
//! fractions or exponents in integers and unspecified enum values are
//! refused. Every refusal names the member by its JSON path.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::path::Path;
use super::{JsonMapping, MAX_DEPTH, compact};
use crate::descriptors::{fields_in_order, has_explicit_presence, is_unspecified, real_oneof_name};

/// Why a request was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The refused member as a JSON path (`budget.max_bytes`,
    /// `claims[0].status`), spelt as the client wrote it (a missing member
    /// by its proto name); for a parameter, its field path. `None` when the
    /// body as a whole is refused (not JSON, not an object).
    pub field: Option<String>,
    /// Why, in a few words; never repeats the refused value.
    pub reason: String,
}

impl DecodeError {
    pub fn new(field: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The refusal as an error's `detail`:
    /// `{"field":"budget.max_bytes","reason":"expected an integer"}`,
    /// without `field` when the body as a whole was refused. Deterministic:
    /// the same request gets the same bytes.
    pub fn detail_json(&self) -> String {
        let mut detail = serde_json::Map::new();
        if let Some(field) = &self.field {
            detail.insert("field".into(), field.as_str().into());
        }
        detail.insert("reason".into(), self.reason.as_str().into());
        serde_json::Value::Object(detail).to_string()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for DecodeError {}

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

impl JsonType {
    fn of(raw: &str) -> Self {
        match raw.as_bytes().first() {
            Some(b'{') => Self::Object,
            Some(b'[') => Self::Array,
            Some(b'"') => Self::String,
            Some(b't' | b'f') => Self::Bool,
            Some(b'n') => Self::Null,
            _ => Self::Number,
        }
    }

    fn named(self) -> &'static str {
        match self {
            Self::Object => "an object",
            Self::Array => "an array",
            Self::String => "a string",
            Self::Number => "a number",
            Self::Bool => "a boolean",
            Self::Null => "null",
        }
    }
}

fn expect(raw: &str, wanted: JsonType, path: &Path<'_>) -> Result<(), DecodeError> {
    let found = JsonType::of(raw);
    if found == wanted {
        Ok(())
    } else {
        path.refuse(format!(
            "expected {}, found {}",
            wanted.named(),
            found.named()
        ))
    }
}

/// Parses the top level of a body: one JSON value, nothing after it.
pub fn parse_body(body: &[u8]) -> Result<&RawValue, DecodeError> {
    let text =
        std::str::from_utf8(body).map_err(|_| DecodeError::new(None, "body is not UTF-8"))?;
    // serde_json's syntax errors give a position, never the text.
    serde_json::from_str::<&RawValue>(text)
        .map_err(|err| DecodeError::new(None, format!("malformed JSON: {err}")))
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
        self.message(message, raw.get().trim(), excluded, 0, &Path::Root)
    }

    /// Decodes the JSON value of one field (a body bound to `field`). `None`
    /// means `null` for a field with explicit presence: leave it unset.
    /// Paths inside the body start at its members; a refusal of the body
    /// as a whole names the field.
    pub fn decode_field(
        &self,
        field: &FieldDescriptor,
        raw: &RawValue,
    ) -> Result<Option<Value>, DecodeError> {
        self.field_value(field, raw.get().trim(), 0, &Path::Root)
            .map_err(|mut err| {
                err.field.get_or_insert_with(|| field.name().to_owned());
                err
            })
    }

    /// Parses a path or query parameter for a scalar or enum field. A
    /// refusal names the field; callers with a nested path rename it.
    pub fn parse_text(&self, field: &FieldDescriptor, text: &str) -> Result<Value, DecodeError> {
        let refuse = |reason: &str| DecodeError::new(Some(field.name().to_owned()), reason);
        Ok(match field.kind() {
            Kind::String if self.is_json_text(field) => {
                let raw =
                    serde_json::from_str::<&RawValue>(text).map_err(|_| refuse("not JSON"))?;
                Value::String(compact(raw.get()))
            }
            Kind::String => Value::String(text.to_owned()),
            Kind::Bool => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(refuse("expected true or false")),
            },
            Kind::Bytes => Value::Bytes(base64_decode(text).ok_or_else(|| refuse("not base64"))?),
            Kind::Enum(enumeration) => {
                let value = if is_integer_text(text) {
                    let number = text.parse().map_err(|_| refuse("unknown enum value"))?;
                    enumeration.get_value(number)
                } else {
                    enumeration.get_value_by_name(text)
                };
                Value::EnumNumber(accepted_enum(value).map_err(refuse)?)
            }
            Kind::Double | Kind::Float => {
                let number: f64 = text.parse().map_err(|_| refuse("expected a number"))?;
                float_value(&field.kind(), number).map_err(refuse)?
            }
            Kind::Message(_) => return Err(refuse("a message cannot be a parameter")),
            kind => integer_value(&kind, text).map_err(refuse)?,
        })
    }

    fn message(
        &self,
        descriptor: &MessageDescriptor,
        raw: &str,
        excluded: &[FieldDescriptor],
        depth: usize,
        path: &Path<'_>,
    ) -> Result<DynamicMessage, DecodeError> {
        if depth > MAX_DEPTH {
            return path.refuse("nesting too deep");
        }
        expect(raw, JsonType::Object, path)?;
        let members: Members<'_> =
            serde_json::from_str(raw).map_err(|_| path.error("malformed object"))?;
        let lenient = self.lenient.contains(descriptor.full_name());
        let mut message = DynamicMessage::new(descriptor.clone());
        let mut seen: HashSet<u32> = HashSet::new();
        let mut oneofs: HashSet<String> = HashSet::new();
        for (key, value) in &members.0 {
            let here = path.member(key);
            // The proto name or the lowerCamelCase JSON name, as proto3
            // JSON parsers accept.
            let field = descriptor
                .get_field_by_name(key)
                .or_else(|| descriptor.get_field_by_json_name(key));
            let Some(field) = field else {
                if lenient {
                    continue;
                }
                return here.refuse("unknown field");
            };
            if excluded.contains(&field) {
                return here.refuse("set by the URL path, not the body");
            }
            // Protobuf's parsers refuse a field given twice, whichever
            // names were used.
            if !seen.insert(field.number()) {
                return here.refuse("duplicate field");
            }
            let Some(value) = self.field_value(&field, value.get().trim(), depth, &here)? else {
                continue;
            };
            if let Some(oneof) = real_oneof_name(&field)
                && !oneofs.insert(oneof)
            {
                return here.refuse("more than one member of a oneof");
            }
            message
                .try_set_field(&field, value)
                .map_err(|_| here.error("value does not fit the field"))?;
        }
        for field in fields_in_order(descriptor) {
            let optional = has_explicit_presence(&field) || field.is_list() || field.is_map();
            if !optional && !excluded.contains(&field) && !seen.contains(&field.number()) {
                return path.member(field.name()).refuse("missing field");
            }
        }
        Ok(message)
    }

    fn field_value(
        &self,
        field: &FieldDescriptor,
        raw: &str,
        depth: usize,
        path: &Path<'_>,
    ) -> Result<Option<Value>, DecodeError> {
        if JsonType::of(raw) == JsonType::Null {
            if has_explicit_presence(field) {
                return Ok(None);
            }
            if self.is_json_text(field) && !field.is_list() {
                return Ok(Some(Value::String("null".into())));
            }
            return path.refuse("null for a field that is not optional");
        }
        if field.is_map() {
            return self.map_value(field, raw, depth, path).map(Some);
        }
        if field.is_list() {
            expect(raw, JsonType::Array, path)?;
            let items: Vec<&RawValue> =
                serde_json::from_str(raw).map_err(|_| path.error("malformed array"))?;
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                let here = path.item(index);
                values.push(self.single(field, &field.kind(), item.get().trim(), depth, &here)?);
            }
            return Ok(Some(Value::List(values)));
        }
        self.single(field, &field.kind(), raw, depth, path)
            .map(Some)
    }

    fn map_value(
        &self,
        field: &FieldDescriptor,
        raw: &str,
        depth: usize,
        path: &Path<'_>,
    ) -> Result<Value, DecodeError> {
        let Kind::Message(entry) = field.kind() else {
            return path.refuse("malformed map field");
        };
        expect(raw, JsonType::Object, path)?;
        let members: Members<'_> =
            serde_json::from_str(raw).map_err(|_| path.error("malformed object"))?;
        let key_field = entry.map_entry_key_field();
        let value_field = entry.map_entry_value_field();
        let mut map = HashMap::with_capacity(members.0.len());
        for (key, value) in &members.0 {
            let here = path.member(key);
            let map_key = map_key(&key_field.kind(), key).map_err(|reason| here.error(reason))?;
            let value = value.get().trim();
            if JsonType::of(value) == JsonType::Null {
                return here.refuse("null map value");
            }
            let value = self.single(&value_field, &value_field.kind(), value, depth, &here)?;
            if map.insert(map_key, value).is_some() {
                return here.refuse("duplicate map key");
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
        path: &Path<'_>,
    ) -> Result<Value, DecodeError> {
        let refuse = |reason: &str| path.error(reason);
        Ok(match kind {
            Kind::String if self.is_json_text(field) => Value::String(compact(raw)),
            Kind::String => {
                expect(raw, JsonType::String, path)?;
                Value::String(string(raw).map_err(refuse)?)
            }
            Kind::Bool => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return path.refuse(format!(
                        "expected a boolean, found {}",
                        JsonType::of(raw).named()
                    ));
                }
            },
            Kind::Bytes => {
                expect(raw, JsonType::String, path)?;
                let text = string(raw).map_err(refuse)?;
                Value::Bytes(base64_decode(&text).ok_or_else(|| refuse("not base64"))?)
            }
            Kind::Enum(enumeration) => {
                Value::EnumNumber(enum_number(enumeration, raw).map_err(refuse)?)
            }
            Kind::Message(message) => {
                let nested = self.message(message, raw, &[], depth + 1, path)?;
                Value::Message(nested)
            }
            Kind::Double | Kind::Float => {
                expect(raw, JsonType::Number, path)?;
                let number: f64 = raw.parse().map_err(|_| refuse("expected a number"))?;
                float_value(kind, number).map_err(refuse)?
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
                // proto3 JSON writes 64-bit integers as decimal strings.
                let text = match JsonType::of(raw) {
                    JsonType::Number => raw.to_owned(),
                    JsonType::String => string(raw).map_err(refuse)?,
                    found => {
                        return path.refuse(format!(
                            "expected an integer or a decimal string, found {}",
                            found.named()
                        ));
                    }
                };
                integer_value(kind, &text).map_err(refuse)?
            }
            kind => {
                expect(raw, JsonType::Number, path)?;
                integer_value(kind, raw).map_err(refuse)?
            }
        })
    }
}

fn string(raw: &str) -> Result<String, &'static str> {
    serde_json::from_str::<String>(raw).map_err(|_| "not a valid JSON string")
}

/// An enum value from its name (a JSON string) or number (a JSON integer).
fn enum_number(enumeration: &EnumDescriptor, raw: &str) -> Result<i32, &'static str> {
    let value = match JsonType::of(raw) {
        JsonType::String => enumeration.get_value_by_name(&string(raw)?),
        // A fraction or exponent is not an enum number; a whole number out
        // of `int32` range is simply no known value.
        JsonType::Number if !is_integer_text(raw) => return Err("expected an integer"),
        JsonType::Number => match raw.parse() {
            Ok(number) => enumeration.get_value(number),
            Err(_) => None,
        },
        _ => return Err("expected an enum value name or number"),
    };
    accepted_enum(value)
}

/// Known, and not the `*_UNSPECIFIED` zero (which means "not set").
fn accepted_enum(value: Option<prost_reflect::EnumValueDescriptor>) -> Result<i32, &'static str> {
    match value {
        Some(value) if !is_unspecified(&value) => Ok(value.number()),
        Some(_) => Err("the unspecified enum value is not accepted"),
        None => Err("unknown enum value"),
    }
}

fn float_value(kind: &Kind, number: f64) -> Result<Value, &'static str> {
    if !number.is_finite() {
        return Err("not a finite number");
    }
    if matches!(kind, Kind::Float) {
        #[allow(clippy::cast_possible_truncation)]
        let narrow = number as f32;
        if !narrow.is_finite() {
            return Err("out of range for float");
        }
        return Ok(Value::F32(narrow));
    }
    Ok(Value::F64(number))
}

/// `-?(0|[1-9][0-9]*)`: a JSON integer without fraction or exponent.
fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// An integer written without fraction or exponent, in range for `kind`.
fn integer_value(kind: &Kind, text: &str) -> Result<Value, &'static str> {
    if !is_integer_text(text) {
        return Err("expected an integer");
    }
    let out_of_range = |_| "integer out of range";
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(out_of_range)?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(out_of_range)?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().map_err(out_of_range)?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().map_err(out_of_range)?),
        _ => return Err("not an integer field"),
    })
}

fn map_key(kind: &Kind, key: &str) -> Result<MapKey, &'static str> {
    let bad = "bad map key";
    Ok(match kind {
        Kind::String => MapKey::String(key.to_owned()),
        Kind::Bool => match key {
            "true" => MapKey::Bool(true),
            "false" => MapKey::Bool(false),
            _ => return Err(bad),
        },
        kind => match integer_value(kind, key).map_err(|_| bad)? {
            Value::I32(v) => MapKey::I32(v),
            Value::I64(v) => MapKey::I64(v),
            Value::U32(v) => MapKey::U32(v),
            Value::U64(v) => MapKey::U64(v),
            _ => return Err(bad),
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
            ("max_operator_calls", "\"1\""),
            ("max_bytes", "\"1.0\""),
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
    fn enums_by_name_or_number() {
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
        assert_eq!(
            claim("2")
                .expect("claim")
                .get_field_by_name("status")
                .as_deref(),
            Some(&Value::EnumNumber(2))
        );
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

//! Small questions asked of descriptors by the JSON mapping, the HTTP
//! bindings and the OpenAPI document.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumValueDescriptor, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, Value,
};

/// The HTTP rule option on methods.
pub(crate) const HTTP_RULE_OPTION: &str = "google.api.http";
/// PECR's field option marking a string field that carries JSON text.
pub(crate) const JSON_TEXT_OPTION: &str = "pecr.v1.json_text";
/// PECR's field option marking a repeated field left out of JSON while empty.
pub(crate) const OMIT_EMPTY_OPTION: &str = "pecr.v1.omit_empty";
/// PECR's field option describing the values a field accepts.
pub(crate) const FIELD_RULES_OPTION: &str = "pecr.v1.field_rules";
/// PECR's message option naming the operator whose params a message describes.
pub(crate) const OPERATOR_PARAMS_OPTION: &str = "pecr.v1.operator_params";
/// The request of one operator call; its `params` follow an operator's params message.
pub(crate) const CALL_OPERATOR_REQUEST: &str = "pecr.v1.CallOperatorRequest";
/// The REST error body.
pub const ERROR_RESPONSE: &str = "pecr.v1.ErrorResponse";
/// The status detail that carries the REST error body and HTTP status.
pub const ERROR_DETAIL: &str = "pecr.v1.ErrorDetail";

/// Fields in declaration order (`MessageDescriptor::fields` iterates by
/// number), so JSON members come out in the order the proto lists them.
pub(crate) fn fields_in_order(message: &MessageDescriptor) -> Vec<FieldDescriptor> {
    message
        .descriptor_proto()
        .field
        .iter()
        .filter_map(|field| message.get_field_by_name(field.name()))
        .collect()
}

/// A field with explicit presence: proto3 `optional` (a synthetic oneof) or
/// a member of a real oneof. Such fields are omitted from JSON when unset
/// and accept `null` on input.
pub(crate) fn has_explicit_presence(field: &FieldDescriptor) -> bool {
    field.containing_oneof().is_some()
}

/// The member of a real (non-synthetic) oneof, if the field is one.
pub(crate) fn real_oneof_name(field: &FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|oneof| !oneof.is_synthetic())
        .map(|oneof| oneof.full_name().to_owned())
}

/// An enum value that means "not set": the zero value named `*_UNSPECIFIED`.
/// It is refused on input and is an internal error on output.
pub(crate) fn is_unspecified(value: &EnumValueDescriptor) -> bool {
    value.number() == 0 && value.name().ends_with("_UNSPECIFIED")
}

/// Full names of every string field marked `(pecr.v1.json_text) = true`.
pub(crate) fn json_text_fields(pool: &DescriptorPool) -> HashSet<String> {
    flagged_fields(pool, JSON_TEXT_OPTION, |field| {
        matches!(field.kind(), Kind::String)
    })
}

/// Full names of every repeated field marked `(pecr.v1.omit_empty) = true`.
pub(crate) fn omit_empty_fields(pool: &DescriptorPool) -> HashSet<String> {
    flagged_fields(pool, OMIT_EMPTY_OPTION, FieldDescriptor::is_list)
}

/// Fields of the right shape whose boolean `option` is true.
fn flagged_fields(
    pool: &DescriptorPool,
    option: &str,
    shaped: impl Fn(&FieldDescriptor) -> bool,
) -> HashSet<String> {
    let Some(option) = pool.get_extension_by_name(option) else {
        return HashSet::new();
    };
    pool.all_messages()
        .flat_map(|message| message.fields().collect::<Vec<_>>())
        .filter(|field| shaped(field))
        .filter(|field| field.options().get_extension(&option).as_bool() == Some(true))
        .map(|field| field.full_name().to_owned())
        .collect()
}

/// Operator name → the message describing its params, for every message
/// carrying `(pecr.v1.operator_params)`, sorted by operator name.
pub fn operator_params(pool: &DescriptorPool) -> BTreeMap<String, MessageDescriptor> {
    let Some(option) = pool.get_extension_by_name(OPERATOR_PARAMS_OPTION) else {
        return BTreeMap::new();
    };
    pool.all_messages()
        .filter(|message| message.options().has_extension(&option))
        .filter_map(|message| {
            let operator = message
                .options()
                .get_extension(&option)
                .as_str()?
                .to_owned();
            Some((operator, message))
        })
        .collect()
}

/// The leading comment of a descriptor, trimmed, from the source info kept
/// in the descriptor set (None without source info or comment).
pub(crate) fn leading_comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|loc| loc.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let joined = lines.join("\n");
    let trimmed = joined.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The `(pecr.v1.field_rules)` of one field: what values it accepts, in
/// JSON Schema terms (see `proto/pecr/v1/options.proto`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldRules {
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub enum_values: Vec<String>,
    pub pattern: Option<String>,
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub min_items: Option<u32>,
    pub max_items: Option<u32>,
}

impl FieldRules {
    fn from_option(rules: &DynamicMessage) -> Self {
        let present = |name: &str| {
            rules
                .has_field_by_name(name)
                .then(|| rules.get_field_by_name(name))
                .flatten()
        };
        let number = |name: &str| present(name).and_then(|value| value.as_f64());
        let count = |name: &str| present(name).and_then(|value| value.as_u32());
        Self {
            minimum: number("minimum"),
            maximum: number("maximum"),
            enum_values: present("enum_values")
                .and_then(|value| {
                    value.as_list().map(|items| {
                        items
                            .iter()
                            .filter_map(|item| item.as_str().map(str::to_owned))
                            .collect()
                    })
                })
                .unwrap_or_default(),
            pattern: present("pattern").and_then(|value| value.as_str().map(str::to_owned)),
            min_length: count("min_length"),
            max_length: count("max_length"),
            min_items: count("min_items"),
            max_items: count("max_items"),
        }
    }
}

/// Full field name → rules, for every field that carries
/// `(pecr.v1.field_rules)`.
pub fn field_rules(pool: &DescriptorPool) -> HashMap<String, FieldRules> {
    let Some(option) = pool.get_extension_by_name(FIELD_RULES_OPTION) else {
        return HashMap::new();
    };
    pool.all_messages()
        .flat_map(|message| message.fields().collect::<Vec<_>>())
        .filter(|field| field.options().has_extension(&option))
        .filter_map(
            |field| match field.options().get_extension(&option).as_ref() {
                Value::Message(rules) => {
                    Some((field.full_name().to_owned(), FieldRules::from_option(rules)))
                }
                _ => None,
            },
        )
        .collect()
}

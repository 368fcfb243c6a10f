//! JSON ⇄ protobuf for the REST contract, written on `DynamicMessage`:
//!
//! - member names are the proto field names (snake_case), in declaration
//!   order; input also takes the lowerCamelCase JSON names (proto3 JSON),
//!   and refuses the same field under both;
//! - enums are value names; input also takes their numbers; `*_UNSPECIFIED`
//!   (by name or as 0) is refused on input and an internal error on output;
//! - 64-bit integers are JSON numbers; input also takes decimal strings, as
//!   proto3 JSON writers send them (32-bit integers stay numbers); doubles
//!   accept integers;
//! - fields without explicit presence are always written (`false`, `0`,
//!   `""`, `[]`); proto3 `optional` fields are omitted when unset and
//!   accept `null` as unset;
//! - `(pecr.v1.omit_empty)` repeated fields are left out while empty;
//! - `(pecr.v1.json_text)` string fields carry JSON text, embedded as a raw
//!   JSON value (number spellings kept byte for byte) and stored compact;
//! - on input, unknown members, missing non-optional singular members,
//!   duplicate members and wrong JSON types are errors, each naming the
//!   member by its JSON path ([`DecodeError::field`]).

mod decode;
mod encode;
mod path;
#[cfg(test)]
mod proto3_input_tests;
mod text;

use std::collections::HashSet;

use prost_reflect::DescriptorPool;

pub use decode::{DecodeError, parse_body};
pub use encode::EncodeError;
pub(crate) use text::compact;

/// Nesting deeper than this is refused (decode) or an error (encode).
const MAX_DEPTH: usize = 64;

/// How one descriptor pool maps to JSON.
#[derive(Debug, Clone)]
pub struct JsonMapping {
    /// Full names of `(pecr.v1.json_text) = true` fields.
    json_text: HashSet<String>,
    /// Full names of `(pecr.v1.omit_empty) = true` fields.
    omit_empty: HashSet<String>,
    /// Full names of messages whose unknown members are ignored on input.
    lenient: HashSet<String>,
}

impl JsonMapping {
    pub fn new(pool: &DescriptorPool, lenient: &[&str]) -> Self {
        Self {
            json_text: crate::descriptors::json_text_fields(pool),
            omit_empty: crate::descriptors::omit_empty_fields(pool),
            lenient: lenient.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    fn is_json_text(&self, field: &prost_reflect::FieldDescriptor) -> bool {
        self.json_text.contains(field.full_name())
    }

    fn omits_when_empty(&self, field: &prost_reflect::FieldDescriptor) -> bool {
        self.omit_empty.contains(field.full_name())
    }
}

//! `pecr-edge-json`: the REST contract of PECR as the descriptors define it,
//! without an HTTP server. The REST edge (`pecr-edge`) serves it; clients
//! that speak gRPC (the CLI) print their replies with the same codec.
//!
//! - [`JsonMapping`]: proto3 JSON ⇄ `DynamicMessage` as the contract writes
//!   it (proto field names, enum names, `(pecr.v1.json_text)` fields
//!   embedded as raw JSON, `(pecr.v1.omit_empty)` lists left out while empty).
//! - [`bindings`]: the `google.api.http` annotations read into routes.
//! - [`field_rules`]: the `(pecr.v1.field_rules)` of every field.
//! - [`openapi_document`]: the OpenAPI 3 document of the routes, generated
//!   from the same bindings and descriptors, so it cannot drift.

mod descriptors;
mod events;
mod json;
mod openapi;
mod rules;

use std::fmt;

use prost_reflect::{DescriptorPool, DynamicMessage};

pub use crate::descriptors::{
    ERROR_DETAIL, ERROR_RESPONSE, FieldRules, field_rules, operator_params,
};
pub use crate::events::{DEFAULT_EVENT, ERROR_EVENT, EventNames};
pub use crate::json::{DecodeError, EncodeError, JsonMapping, parse_body};
/// The HTTP statuses the OpenAPI document lists an `ErrorResponse` for.
pub use crate::openapi::ERROR_STATUSES;
pub use crate::rules::{Binding, BodyRule, Segment, bindings};

/// Seconds a Server-Sent Events stream stays silent before the edge sends
/// a keep-alive comment (the edge's default; the OpenAPI document says it).
pub const SSE_KEEP_ALIVE_SECS: u64 = 15;

/// Messages whose unknown JSON members are ignored on input, because the
/// spec keeps them open: the run request's top level (controller §6.1) and
/// claim maps and claims (gateway §1.5, contracts §1.5). Every other
/// message refuses unknown members with 400.
pub const OPEN_MESSAGES: &[&str] = &["pecr.v1.RunRequest", "pecr.v1.ClaimMap", "pecr.v1.Claim"];

/// Why a router or OpenAPI document could not be built from descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EdgeError {
    /// A requested service is not in the pool.
    UnknownService(String),
    /// A descriptor the edge needs (`google.api.http`,
    /// `pecr.v1.ErrorResponse`, `pecr.v1.ErrorDetail`) is not in the pool.
    MissingDescriptor(String),
    /// An HTTP rule the edge cannot serve (custom verb, wildcard template,
    /// unknown field, client-streaming RPC, …).
    InvalidHttpRule { method: String, reason: String },
    /// Two rules claim the same method and path.
    RouteConflict { method: String, path: String },
    /// The OpenAPI document could not be written as YAML.
    Render(String),
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownService(name) => write!(f, "unknown service {name}"),
            Self::MissingDescriptor(name) => write!(f, "descriptor {name} is not in the pool"),
            Self::InvalidHttpRule { method, reason } => {
                write!(f, "HTTP rule of {method}: {reason}")
            }
            Self::RouteConflict { method, path } => {
                write!(f, "more than one RPC is bound to {method} {path}")
            }
            Self::Render(reason) => write!(f, "OpenAPI document: {reason}"),
        }
    }
}

impl std::error::Error for EdgeError {}

/// The OpenAPI 3 document (YAML, deterministic) of `services`' REST routes,
/// generated from the same annotations and descriptors as the router.
pub fn openapi_document(pool: &DescriptorPool, services: &[&str]) -> Result<String, EdgeError> {
    openapi::document(pool, services, OPEN_MESSAGES)
}

/// The same OpenAPI document as [`openapi_document`], as JSON.
pub fn openapi_json(pool: &DescriptorPool, services: &[&str]) -> Result<String, EdgeError> {
    openapi::document_json(pool, services, OPEN_MESSAGES)
}

/// The self-contained JSON Schema (draft 2020-12) of `message`'s JSON
/// object as the REST edge reads it, less the `excluded` fields (proto
/// names): the OpenAPI document's schema with references inlined. For
/// tools that take part of a request, the rest coming from elsewhere.
pub fn json_schema(
    pool: &DescriptorPool,
    message: &str,
    excluded: &[&str],
) -> Result<serde_json::Value, EdgeError> {
    let descriptor = pool
        .get_message_by_name(message)
        .ok_or_else(|| EdgeError::MissingDescriptor(message.to_owned()))?;
    openapi::message_schema(pool, &descriptor, excluded, OPEN_MESSAGES)
}

/// `message` as the REST edge writes it (field names, enum names, embedded
/// `json_text`), so clients that speak gRPC can print the REST contract's JSON.
pub fn message_json(pool: &DescriptorPool, message: &DynamicMessage) -> Result<Vec<u8>, String> {
    JsonMapping::new(pool, &[])
        .encode_message(message)
        .map_err(|err| err.to_string())
}

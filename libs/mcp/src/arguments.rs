//! Tools whose arguments are a contract message's JSON, less the fields
//! the server supplies (a session id, a run record): the input schema is
//! rendered by the OpenAPI document's renderer and the arguments are read
//! by the REST edge's own JSON decoder, so a tool takes exactly what the
//! REST body would.

use std::sync::Arc;

use pecr_edge_json::{DecodeError, JsonMapping, OPEN_MESSAGES, parse_body};
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, MessageDescriptor};
use rmcp::model::JsonObject;
use serde_json::Value;

use crate::tool_result::contract_pool;

pub struct ContractArguments {
    mapping: JsonMapping,
    message: MessageDescriptor,
    supplied: Vec<FieldDescriptor>,
    schema: Arc<JsonObject>,
}

/// A tool's input schema: `full_name`'s JSON Schema without the
/// `excluded` fields.
pub fn input_schema(full_name: &str, excluded: &[&str]) -> Result<Arc<JsonObject>, String> {
    let pool = contract_pool()?;
    match pecr_edge_json::json_schema(pool, full_name, excluded).map_err(|err| err.to_string())? {
        Value::Object(map) => Ok(Arc::new(map)),
        _ => Err(format!("the schema of {full_name} is not an object")),
    }
}

impl ContractArguments {
    /// Arguments shaped as `full_name`'s JSON without the `supplied` fields.
    pub fn new(full_name: &str, supplied: &[&str]) -> Result<Self, String> {
        let pool = contract_pool()?;
        let message = pool
            .get_message_by_name(full_name)
            .ok_or_else(|| format!("{full_name} is not in the contract"))?;
        let schema = input_schema(full_name, supplied)?;
        let supplied = supplied
            .iter()
            .filter_map(|name| message.get_field_by_name(name))
            .collect();
        Ok(Self {
            mapping: JsonMapping::new(pool, OPEN_MESSAGES),
            message,
            supplied,
            schema,
        })
    }

    /// The tool's input schema.
    pub fn schema(&self) -> Arc<JsonObject> {
        Arc::clone(&self.schema)
    }

    /// The message the arguments describe; a member for a supplied field
    /// is refused like an unknown one.
    pub fn read<M: Message + Default>(&self, arguments: &JsonObject) -> Result<M, DecodeError> {
        let text = serde_json::to_vec(arguments)
            .map_err(|_| DecodeError::new(None, "arguments are not JSON"))?;
        let raw = parse_body(&text)?;
        let message: DynamicMessage =
            self.mapping
                .decode_message(&self.message, raw, &self.supplied)?;
        M::decode(message.encode_to_vec().as_slice())
            .map_err(|_| DecodeError::new(None, "arguments do not fit the contract"))
    }
}

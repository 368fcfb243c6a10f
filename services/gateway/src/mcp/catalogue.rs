//! The tools, generated from the contract: each operator's input schema is
//! its `(pecr.v1.operator_params)` message, `finalize`'s is
//! `FinalizeRequest` without the fields the session supplies, both
//! rendered by the same code as the OpenAPI document. The arguments of
//! `finalize` are read by the REST edge's own JSON decoder.

use std::collections::BTreeMap;

use pecr_adapters::Operator;
use pecr_mcp::arguments::{ContractArguments, input_schema};
use pecr_mcp::rmcp::model::{Tool, ToolAnnotations};
use pecr_mcp::tool_result::contract_pool;
use serde_json::Value;

pub(crate) const FINALIZE: &str = "finalize";
const FINALIZE_REQUEST: &str = "pecr.v1.FinalizeRequest";
/// What the MCP session supplies to a finalize, never the agent.
const FINALIZE_FROM_SESSION: [&str; 2] = ["session_id", "run"];

const FINALIZE_DESCRIPTION: &str = "Submit the answer and end the session: the response text and \
its claim map, each claim citing the evidence_unit_ids of units this session received. The \
gateway re-checks every claim against the session's evidence and returns the gated claim map \
(each claim's status) and the terminal mode; a claim citing nothing of the session is not \
SUPPORTED. No tool call is possible in the session afterwards.";

pub(crate) struct Catalogue {
    operators: BTreeMap<Operator, Tool>,
    finalize: Tool,
    finalize_arguments: ContractArguments,
}

impl Catalogue {
    pub fn new() -> Result<Self, String> {
        let mut operators = BTreeMap::new();
        for (name, message) in pecr_edge_json::operator_params(contract_pool()?) {
            let operator = Operator::parse(&name)
                .ok_or_else(|| format!("{} describes no operator", message.full_name()))?;
            let schema = input_schema(message.full_name(), &[])?;
            let description = schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or(operator.name())
                .to_owned();
            let mut tool = Tool::new(operator.name(), description, schema);
            // Operators read; the ledger records the call, nothing else changes.
            tool.annotations = Some(
                ToolAnnotations::new()
                    .read_only(true)
                    .destructive(false)
                    .open_world(false),
            );
            operators.insert(operator, tool);
        }
        if let Some(missing) = Operator::ALL.iter().find(|op| !operators.contains_key(op)) {
            return Err(format!("{} has no params message", missing.name()));
        }
        let finalize_arguments = ContractArguments::new(FINALIZE_REQUEST, &FINALIZE_FROM_SESSION)?;
        let mut finalize = Tool::new(FINALIZE, FINALIZE_DESCRIPTION, finalize_arguments.schema());
        finalize.annotations = Some(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(false),
        );
        Ok(Self {
            operators,
            finalize,
            finalize_arguments,
        })
    }

    /// The operator tools among `usable`, then `finalize`.
    pub fn tools(&self, usable: &[Operator]) -> Vec<Tool> {
        let mut tools: Vec<Tool> = usable
            .iter()
            .filter_map(|op| self.operators.get(op).cloned())
            .collect();
        tools.push(self.finalize.clone());
        tools
    }

    /// `finalize`'s arguments: FinalizeRequest's JSON without what the
    /// session supplies.
    pub fn finalize_arguments(&self) -> &ContractArguments {
        &self.finalize_arguments
    }
}

#[cfg(test)]
mod tests {
    use pecr_mcp::rmcp::model::JsonObject;
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn every_operator_is_a_tool_with_its_params_schema() {
        let catalogue = Catalogue::new().expect("catalogue");
        let tools = catalogue.tools(&Operator::ALL);
        let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "search",
                "list_versions",
                "fetch_span",
                "diff",
                "fetch_rows",
                "aggregate",
                "redact",
                "finalize"
            ]
        );
        let fetch_rows = &tools[4];
        assert_eq!(
            fetch_rows.input_schema["required"],
            json!(["view_id", "fields"])
        );
        assert_eq!(
            fetch_rows.input_schema["additionalProperties"],
            json!(false)
        );
        assert!(
            fetch_rows
                .description
                .as_deref()
                .is_some_and(|text| text.starts_with("fetch_rows:"))
        );
        let finalize = &tools[7];
        assert_eq!(
            finalize.input_schema["required"],
            json!(["response_text", "claim_map"])
        );
        assert_eq!(catalogue.tools(&[]).len(), 1, "finalize is always listed");
    }

    #[test]
    fn finalize_arguments_are_read_as_the_rest_edge_reads_them() {
        let catalogue = Catalogue::new().expect("catalogue");
        let claim_map = json!({
            "claim_map_id": "c1",
            "terminal_mode": "SUPPORTED",
            "claims": [{"claim_id": "", "claim_text": "active", "status": "SUPPORTED",
                        "evidence_unit_ids": ["a".repeat(64)]}],
            "coverage_threshold": 0.95,
            "coverage_observed": 1.0
        });
        let request: pecr_proto::v1::FinalizeRequest = catalogue
            .finalize_arguments()
            .read(&object(
                json!({"response_text": "r", "claim_map": claim_map}),
            ))
            .expect("valid arguments");
        assert_eq!(request.response_text, "r");
        assert_eq!(request.claim_map.map(|map| map.claims.len()), Some(1));

        let refused = |arguments: Value| {
            catalogue
                .finalize_arguments()
                .read::<pecr_proto::v1::FinalizeRequest>(&object(arguments))
                .err()
                .map(|err| err.field.unwrap_or_default())
        };
        assert_eq!(
            refused(json!({"response_text": "r", "claim_map": claim_map, "session_id": "other"})),
            Some("session_id".to_owned())
        );
        assert_eq!(
            refused(json!({"claim_map": claim_map})),
            Some("response_text".to_owned())
        );
        assert_eq!(
            refused(json!({"response_text": 1, "claim_map": claim_map})),
            Some("response_text".to_owned())
        );
    }
}

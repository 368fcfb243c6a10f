//! Self-contained JSON Schemas (draft 2020-12) of contract messages, for
//! clients that describe input in plain JSON Schema rather than OpenAPI:
//! the MCP servers' tool input schemas. They come from the same renderer
//! as the OpenAPI document (descriptions, field rules, required members,
//! closed or open objects); only the OpenAPI dialect is translated:
//! component references are inlined and `nullable` becomes an alternative with `null`.

use serde_json::{Map, Value};

use prost_reflect::{DescriptorPool, MessageDescriptor};

use super::Schemas;
use crate::EdgeError;

/// References are followed at most this deep; the contract's messages do
/// not nest further, and a cycle must not loop.
const MAX_INLINE_DEPTH: usize = 16;

const COMPONENT_PREFIX: &str = "#/components/schemas/";

/// The JSON Schema of `message`'s JSON object without the `excluded`
/// fields (by proto name): what a tool takes when the rest of the request
/// comes from elsewhere (a session, a path).
pub(crate) fn message_schema(
    pool: &DescriptorPool,
    message: &MessageDescriptor,
    excluded: &[&str],
    open: &[&str],
) -> Result<Value, EdgeError> {
    let excluded_fields: Vec<_> = message
        .fields()
        .filter(|field| excluded.contains(&field.name()))
        .collect();
    if let Some(unknown) = excluded
        .iter()
        .find(|name| message.get_field_by_name(name).is_none())
    {
        return Err(EdgeError::MissingDescriptor(format!(
            "{}.{unknown}",
            message.full_name()
        )));
    }
    let mut schemas = Schemas::new(pool, open);
    let root = schemas.object_schema(message, &excluded_fields);
    let components = schemas.finish();
    let as_json = |node: &super::Node| {
        serde_json::to_value(node).map_err(|err| EdgeError::Render(err.to_string()))
    };
    let components = match as_json(&components)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut schema = inline(as_json(&root)?, &components, 0)?;
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$schema".to_owned(),
            Value::from("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    Ok(schema)
}

/// Replaces each component reference by the component, and OpenAPI's
/// `nullable` by an alternative with JSON Schema's `null` type.
fn inline(value: Value, components: &Map<String, Value>, depth: usize) -> Result<Value, EdgeError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| inline(item, components, depth))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let name = target.strip_prefix(COMPONENT_PREFIX).unwrap_or(target);
                let component = components
                    .get(name)
                    .cloned()
                    .ok_or_else(|| EdgeError::MissingDescriptor(target.clone()))?;
                if depth >= MAX_INLINE_DEPTH {
                    return Err(EdgeError::Render(format!("{name} nests too deep")));
                }
                return inline(component, components, depth + 1);
            }
            let mut out = Map::new();
            let mut nullable = false;
            for (key, member) in map {
                match key.as_str() {
                    "nullable" => nullable = member == Value::Bool(true),
                    // Schemas, or maps of schemas, below this key.
                    _ => {
                        out.insert(key, inline(member, components, depth)?);
                    }
                }
            }
            Ok(if nullable {
                admit_null(out)
            } else {
                Value::Object(out)
            })
        }
        other => Ok(other),
    }
}

/// `schema` or null, as two alternatives of one type each (a type array
/// is legal JSON Schema but less portable: clients that map tool schemas
/// onto a single-type dialect refuse it). The description stays outside.
fn admit_null(mut schema: Map<String, Value>) -> Value {
    let description = schema.remove("description");
    let mut out = Map::new();
    if let Some(description) = description {
        out.insert("description".to_owned(), description);
    }
    out.insert(
        "anyOf".to_owned(),
        Value::Array(vec![
            Value::Object(schema),
            serde_json::json!({"type": "null"}),
        ]),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nullables_become_an_alternative_with_null() {
        let components = Map::new();
        let typed = json!({"type": "integer", "nullable": true, "minimum": 0, "description": "d"});
        assert_eq!(
            inline(typed, &components, 0).ok(),
            Some(
                json!({"description": "d", "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]})
            )
        );
        let untyped = json!({"description": "d", "allOf": [{"type": "object"}], "nullable": true});
        assert_eq!(
            inline(untyped, &components, 0).ok(),
            Some(
                json!({"description": "d", "anyOf": [{"allOf": [{"type": "object"}]}, {"type": "null"}]})
            )
        );
    }

    #[test]
    fn references_are_inlined_and_unknown_ones_refused() {
        let components: Map<String, Value> = serde_json::from_value(json!({
            "Inner": {"type": "object", "properties": {"a": {"type": "string"}}}
        }))
        .expect("map");
        let schema = json!({"properties": {"x": {"$ref": "#/components/schemas/Inner"}}});
        assert_eq!(
            inline(schema, &components, 0).ok(),
            Some(
                json!({"properties": {"x": {"type": "object", "properties": {"a": {"type": "string"}}}}})
            )
        );
        let missing = json!({"$ref": "#/components/schemas/Missing"});
        assert!(inline(missing, &components, 0).is_err());
        let cyclic: Map<String, Value> =
            serde_json::from_value(json!({"Loop": {"$ref": "#/components/schemas/Loop"}}))
                .expect("map");
        assert!(inline(json!({"$ref": "#/components/schemas/Loop"}), &cyclic, 0).is_err());
    }
}

#[cfg(test)]
mod contract_tests {
    use prost_reflect::DescriptorPool;
    use serde_json::Value;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set")
    }

    /// Member names, sorted (serde_json maps are).
    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .map(|map| map.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_operator_has_one_params_message() {
        let names: Vec<String> = crate::operator_params(&pool()).into_keys().collect();
        assert_eq!(
            names,
            [
                "aggregate",
                "diff",
                "fetch_rows",
                "fetch_span",
                "list_versions",
                "redact",
                "search"
            ]
        );
    }

    #[test]
    fn operator_params_are_closed_self_contained_schemas() {
        let pool = pool();
        for (operator, message) in crate::operator_params(&pool) {
            let schema = crate::json_schema(&pool, message.full_name(), &[]).expect("schema");
            let text = schema.to_string();
            assert!(!text.contains("$ref"), "{operator}: {text}");
            assert!(!text.contains("nullable"), "{operator}: {text}");
            assert_eq!(schema["type"], "object", "{operator}");
            assert_eq!(schema["additionalProperties"], false, "{operator}");
        }
        let search = crate::json_schema(&pool, "pecr.v1.SearchParams", &[]).expect("schema");
        assert_eq!(keys(&search["properties"]), ["limit", "query"]);
        assert_eq!(search["required"], serde_json::json!(["query"]));
        assert_eq!(
            search["properties"]["limit"]["anyOf"][1],
            serde_json::json!({"type": "null"})
        );
        assert_eq!(search["properties"]["limit"]["anyOf"][0]["type"], "integer");
        let redact = crate::json_schema(&pool, "pecr.v1.RedactParams", &[]).expect("schema");
        let unit = &redact["properties"]["evidence_units"]["items"];
        assert_eq!(unit["type"], "object");
        assert!(keys(&unit["properties"]).contains(&"evidence_unit_id"));
    }

    #[test]
    fn excluded_fields_leave_the_schema_and_unknown_ones_are_refused() {
        let pool = pool();
        let finalize = crate::json_schema(&pool, "pecr.v1.FinalizeRequest", &["session_id", "run"])
            .expect("schema");
        assert_eq!(
            keys(&finalize["properties"]),
            ["claim_map", "response_text"]
        );
        assert_eq!(
            finalize["required"],
            serde_json::json!(["response_text", "claim_map"])
        );
        let claims = &finalize["properties"]["claim_map"]["properties"]["claims"];
        assert_eq!(claims["items"]["properties"]["claim_text"]["minLength"], 1);
        assert!(crate::json_schema(&pool, "pecr.v1.FinalizeRequest", &["nope"]).is_err());
        assert!(crate::json_schema(&pool, "pecr.v1.Nope", &[]).is_err());
    }
}

//! The evidence units one MCP session received, readable as resources
//! `pecr://evidence/<id>` within that session only, and the text rendering
//! of operator results for clients that read text.

use std::collections::BTreeMap;

use pecr_mcp::tool_result::evidence_label;
use serde_json::Value;

pub(crate) const URI_PREFIX: &str = "pecr://evidence/";

/// Units by evidence id, as the operators returned them. Bounded by the
/// session's budget: every unit came through a call that counted.
#[derive(Default)]
pub(crate) struct Shelf {
    units: BTreeMap<String, Value>,
}

/// A JSON value that is an evidence unit (references and version lists
/// name ids too, but carry no content hash).
fn is_unit(value: &Value) -> bool {
    value
        .get("evidence_unit_id")
        .and_then(Value::as_str)
        .is_some()
        && value.get("content_hash").is_some()
}

/// The units of an operator's result: the result itself, or its items.
pub(crate) fn units_of(result: &Value) -> Vec<&Value> {
    match result {
        Value::Array(items) => items.iter().filter(|item| is_unit(item)).collect(),
        single if is_unit(single) => vec![single],
        _ => Vec::new(),
    }
}

impl Shelf {
    pub fn keep(&mut self, result: &Value) {
        for unit in units_of(result) {
            if let Some(id) = unit.get("evidence_unit_id").and_then(Value::as_str) {
                self.units.insert(id.to_owned(), unit.clone());
            }
        }
    }

    /// `(uri, unit)` of every unit kept.
    pub fn all(&self) -> impl Iterator<Item = (String, &Value)> {
        self.units
            .iter()
            .map(|(id, unit)| (format!("{URI_PREFIX}{id}"), unit))
    }

    /// The unit a `pecr://evidence/<id>` URI names, if this session got it.
    pub fn get(&self, uri: &str) -> Option<&Value> {
        self.units.get(uri.strip_prefix(URI_PREFIX)?)
    }
}

/// The result as text: each unit's label and content, or the JSON of a
/// result that holds no units (search references, version lists).
pub(crate) fn render(result: &Value) -> String {
    let units = units_of(result);
    if units.is_empty() {
        return serde_json::to_string_pretty(result).unwrap_or_default();
    }
    let blocks: Vec<String> = units
        .into_iter()
        .map(|unit| {
            let content = match unit.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => "(content withheld)".to_owned(),
            };
            format!("{}\n{content}", evidence_label(unit))
        })
        .collect();
    blocks.join("\n\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn unit(id: &str, content: Value) -> Value {
        json!({"evidence_unit_id": id, "source_system": "pg_safeview", "object_id": "v",
               "version_id": "1", "content_hash": "h", "content": content})
    }

    #[test]
    fn units_are_kept_by_id_and_readable_by_uri_only_when_kept() {
        let mut shelf = Shelf::default();
        shelf.keep(&json!([unit("a", json!({"status": "active"})), {"not": "a unit"}]));
        shelf.keep(&unit("b", json!("text")));
        shelf.keep(&json!({"refs": [{"evidence_unit_id": "c", "object_id": "x"}]}));
        let uris: Vec<String> = shelf.all().map(|(uri, _)| uri).collect();
        assert_eq!(uris, ["pecr://evidence/a", "pecr://evidence/b"]);
        assert!(shelf.get("pecr://evidence/a").is_some());
        assert!(shelf.get("pecr://evidence/c").is_none());
        assert!(shelf.get("a").is_none());
    }

    #[test]
    fn text_names_each_unit_and_shows_its_content() {
        let text = render(&json!([unit("a", json!({"status": "active"}))]));
        assert_eq!(
            text,
            "evidence a (pg_safeview v @ 1)\n{\"status\":\"active\"}"
        );
        assert!(render(&json!({"refs": []})).contains("refs"));
    }
}

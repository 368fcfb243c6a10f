//! The plan step that reads a safe view's rows for a question: which
//! fields, and which row when the question names one (docs/decisions.md,
//! "Usefulness").
//!
//! - Rows: a word of the question that starts with the key prefix
//!   (`cust_public_1` for `cust_`) names a row; exactly one such word filters
//!   the view on the key field, otherwise every row is read (the gateway
//!   caps how many) and the answer keeps the rows that match the question.
//! - Fields: when the question names some of the step's fields and every
//!   other term of it is the key's or a key value's, only those fields are
//!   read; any other term may be a value (`suspended`, `enterprise`), so
//!   then every field of the step is read.

use std::collections::BTreeSet;

use pecr_contracts::terms::term_set;
use serde_json::{Map, Value, json};

/// Which column identifies a row, and how its values begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub field: String,
    pub prefix: String,
}

/// `{"kind":"view_rows","view_id":…,"fields":[…],"key_field":…,"key_prefix":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRows {
    pub view_id: String,
    /// The fields the step may read, in the order they are asked for.
    pub fields: Vec<String>,
    pub key: Option<RowKey>,
}

impl ViewRows {
    /// Reads a step's members (`kind` already checked).
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, String> {
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let view_id = text("view_id").ok_or("view_id must be a non-empty string")?;
        let names = fields
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("fields must be a non-empty array of strings")?;
        let mut wanted = Vec::new();
        for name in names {
            let name = name
                .as_str()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .ok_or("fields must be a non-empty array of strings")?;
            if !wanted.iter().any(|seen: &String| seen == name) {
                wanted.push(name.to_owned());
            }
        }
        if wanted.is_empty() {
            return Err("fields must be a non-empty array of strings".into());
        }
        let key = match (text("key_field"), text("key_prefix")) {
            (Some(field), Some(prefix)) => Some(RowKey { field, prefix }),
            (None, None) => None,
            _ => return Err("key_field and key_prefix go together".into()),
        };
        Ok(Self {
            view_id,
            fields: wanted,
            key,
        })
    }

    /// The `fetch_rows` params for `query`.
    pub fn params_for(&self, query: &str) -> Value {
        let terms = term_set(query);
        let keys = self.key_values(query);
        let field_terms: Vec<(&String, BTreeSet<String>)> = self
            .fields
            .iter()
            .map(|field| (field, term_set(field)))
            .collect();
        let named: Vec<&String> = field_terms
            .iter()
            .filter(|(_, its_terms)| !its_terms.is_disjoint(&terms))
            .map(|(field, _)| *field)
            .collect();
        let mut explained: BTreeSet<String> = field_terms
            .into_iter()
            .flat_map(|(_, its_terms)| its_terms)
            .collect();
        if let Some(key) = &self.key {
            explained.extend(term_set(&key.field));
        }
        explained.extend(keys.iter().flat_map(|value| term_set(value)));
        let fields: Vec<&String> = if !named.is_empty() && terms.is_subset(&explained) {
            named
        } else {
            self.fields.iter().collect()
        };
        let mut params = json!({ "view_id": self.view_id, "fields": fields });
        if let Some(key) = &self.key
            && keys.len() == 1
            && let Some(value) = keys.first()
        {
            params["filter_spec"] = json!({ key.field.as_str(): value });
        }
        params
    }

    /// The key values `query` names: its words that start with the prefix.
    fn key_values(&self, query: &str) -> BTreeSet<String> {
        let Some(key) = &self.key else {
            return BTreeSet::new();
        };
        query
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .filter(|word| word.len() > key.prefix.len() && word.starts_with(&key.prefix))
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> ViewRows {
        ViewRows {
            view_id: "v".into(),
            fields: vec!["status".into(), "plan_tier".into(), "updated_at".into()],
            key: Some(RowKey {
                field: "customer_id".into(),
                prefix: "cust_".into(),
            }),
        }
    }

    #[test]
    fn named_fields_only_when_nothing_else_is_asked() {
        let rows = step();
        assert_eq!(
            rows.params_for("What is the customer status and plan tier?"),
            json!({"view_id": "v", "fields": ["status", "plan_tier"]})
        );
        assert_eq!(
            rows.params_for("What plan is cust_public_1 on?"),
            json!({"view_id": "v", "fields": ["plan_tier"], "filter_spec": {"customer_id": "cust_public_1"}})
        );
        // "suspended" may be a value: every field is read.
        assert_eq!(
            rows.params_for("Which plan is the suspended customer on?"),
            json!({"view_id": "v", "fields": ["status", "plan_tier", "updated_at"]})
        );
        assert_eq!(
            rows.params_for("smoke"),
            json!({"view_id": "v", "fields": ["status", "plan_tier", "updated_at"]})
        );
    }

    #[test]
    fn one_named_row_filters_two_do_not() {
        let rows = step();
        assert_eq!(
            rows.params_for("Is cust_restricted_1's status active?")["filter_spec"],
            json!({"customer_id": "cust_restricted_1"})
        );
        assert_eq!(
            rows.params_for("Compare cust_a and cust_b")
                .get("filter_spec"),
            None
        );
        assert_eq!(rows.params_for("cust_ alone").get("filter_spec"), None);
        let keyless = ViewRows {
            key: None,
            ..step()
        };
        assert_eq!(
            keyless.params_for("status of cust_a").get("filter_spec"),
            None
        );
    }

    #[test]
    fn steps_parse_and_bad_ones_say_why() {
        let parse = |text: &str| {
            let value: Value = serde_json::from_str(text).expect("json");
            ViewRows::parse(value.as_object().expect("object"))
        };
        assert_eq!(
            parse(
                r#"{"view_id":"v","fields":["status"," plan_tier ","status"],"key_field":"customer_id","key_prefix":"cust_"}"#
            ),
            Ok(ViewRows {
                fields: vec!["status".into(), "plan_tier".into()],
                ..step()
            })
        );
        assert_eq!(
            parse(r#"{"view_id":"v","fields":["status"]}"#).map(|rows| rows.key),
            Ok(None)
        );
        for (text, reason) in [
            (r#"{"fields":["a"]}"#, "view_id"),
            (r#"{"view_id":"v"}"#, "fields"),
            (r#"{"view_id":"v","fields":[]}"#, "fields"),
            (r#"{"view_id":"v","fields":["a",1]}"#, "fields"),
            (
                r#"{"view_id":"v","fields":["a"],"key_field":"k"}"#,
                "together",
            ),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}

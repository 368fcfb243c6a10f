//! The baseline engine's plan (spec 30 §9.1): a list of steps, configurable
//! as JSON through `PECR_BASELINE_PLAN`.

use serde_json::{Value, json};

use crate::view_rows::{RowKey, ViewRows};

/// One plan step.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStep {
    /// Call `op_name` with `params`, every string exactly `"$query"` replaced
    /// by the trimmed query.
    Operator { op_name: String, params: Value },
    /// `fetch_rows` of one view, its fields and row picked by the query.
    ViewRows(ViewRows),
    /// `fetch_span` the first `max_refs` refs of the latest search, concurrently.
    SearchRefFetchSpan { max_refs: usize },
}

impl PlanStep {
    /// The operator call this step makes for `trimmed_query`; None for the
    /// fan-out, which depends on an earlier search.
    pub fn call_for(&self, trimmed_query: &str) -> Option<(String, Value)> {
        match self {
            Self::Operator { op_name, params } => {
                Some((op_name.clone(), render_params(params, trimmed_query)))
            }
            Self::ViewRows(rows) => Some(("fetch_rows".to_owned(), rows.params_for(trimmed_query))),
            Self::SearchRefFetchSpan { .. } => None,
        }
    }
}

/// A non-empty list of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan(Vec<PlanStep>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan is not a JSON array of steps: {0}")]
    NotJson(String),
    #[error("the plan has no steps")]
    Empty,
    #[error("step {index}: {reason}")]
    Step { index: usize, reason: String },
}

impl Plan {
    /// The default plan: versions of the public document (a principal who
    /// may read nothing is told so even when nothing else runs), the public
    /// view's rows and fields the question asks for, a ranked search for
    /// any of its terms, then the three best documents found.
    pub fn default_plan() -> Self {
        Self(vec![
            PlanStep::Operator {
                op_name: "list_versions".into(),
                params: json!({"object_id": "public/public_1.txt"}),
            },
            PlanStep::ViewRows(ViewRows {
                view_id: "safe_customer_view_public".into(),
                fields: vec!["status".into(), "plan_tier".into(), "updated_at".into()],
                key: Some(RowKey {
                    field: "customer_id".into(),
                    prefix: "cust_".into(),
                }),
            }),
            PlanStep::Operator {
                op_name: "search".into(),
                params: json!({"query": "$query", "limit": 5, "match": "any"}),
            },
            PlanStep::SearchRefFetchSpan { max_refs: 3 },
        ])
    }

    /// Parses `PECR_BASELINE_PLAN`. Unknown fields inside a step are ignored.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let value: Value =
            serde_json::from_str(text).map_err(|err| PlanError::NotJson(err.to_string()))?;
        let Value::Array(steps) = value else {
            return Err(PlanError::NotJson("expected an array".into()));
        };
        if steps.is_empty() {
            return Err(PlanError::Empty);
        }
        let steps = steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                parse_step(step).map_err(|reason| PlanError::Step { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(steps))
    }

    pub fn steps(&self) -> &[PlanStep] {
        &self.0
    }
}

fn parse_step(step: &Value) -> Result<PlanStep, String> {
    let Some(fields) = step.as_object() else {
        return Err("a step must be an object".into());
    };
    match fields.get("kind").and_then(Value::as_str) {
        Some("operator") => {
            let op_name = fields
                .get("op_name")
                .and_then(Value::as_str)
                .filter(|name| !name.trim().is_empty())
                .ok_or("op_name must be a non-empty string")?;
            let params = match fields.get("params") {
                None => json!({}),
                Some(params) => params.clone(),
            };
            Ok(PlanStep::Operator {
                op_name: op_name.to_owned(),
                params,
            })
        }
        Some("view_rows") => ViewRows::parse(fields).map(PlanStep::ViewRows),
        Some("search_ref_fetch_span") => {
            let max_refs = match fields.get("max_refs") {
                None => 2,
                Some(value) => value
                    .as_u64()
                    .filter(|n| *n > 0)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("max_refs must be an integer greater than 0")?,
            };
            Ok(PlanStep::SearchRefFetchSpan { max_refs })
        }
        Some(other) => Err(format!("unknown kind {other:?}")),
        None => Err("kind must be a string".into()),
    }
}

/// Replaces every string value that is exactly `"$query"`, at any depth, by
/// the trimmed query. Partial matches are left alone.
pub fn render_params(params: &Value, trimmed_query: &str) -> Value {
    match params {
        Value::String(text) if text == "$query" => Value::String(trimmed_query.to_owned()),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_params(item, trimmed_query))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), render_params(value, trimmed_query)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_with_defaults() {
        let plan = Plan::parse(
            r#"[{"kind":"operator","op_name":"list_versions","extra":1},{"kind":"search_ref_fetch_span"}]"#,
        )
        .expect("parses");
        assert_eq!(
            plan.steps(),
            [
                PlanStep::Operator {
                    op_name: "list_versions".into(),
                    params: json!({})
                },
                PlanStep::SearchRefFetchSpan { max_refs: 2 }
            ]
        );
    }

    #[test]
    fn bad_plans_are_refused() {
        for text in [
            "",
            "{}",
            "[]",
            r#"[{"kind":"nope"}]"#,
            r#"[{"kind":"operator","op_name":"  "}]"#,
            r#"[{"kind":"search_ref_fetch_span","max_refs":0}]"#,
            r#"[{"kind":"search_ref_fetch_span","max_refs":-1}]"#,
            r#"[{"op_name":"search"}]"#,
            r#"[{"kind":"view_rows","fields":["status"]}]"#,
        ] {
            assert!(Plan::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn view_rows_steps_parse_and_render() {
        let plan = Plan::parse(
            r#"[{"kind":"view_rows","view_id":"v","fields":["status"],"key_field":"id","key_prefix":"c_"}]"#,
        )
        .expect("parses");
        assert_eq!(
            plan.steps()[0].call_for("status of c_1"),
            Some((
                "fetch_rows".to_owned(),
                json!({"view_id": "v", "fields": ["status"], "filter_spec": {"id": "c_1"}})
            ))
        );
        assert_eq!(
            Plan::default_plan().steps()[3].call_for("q"),
            None,
            "the fan-out makes no call of its own"
        );
    }

    #[test]
    fn query_substitution_is_exact_and_deep() {
        let params =
            json!({"query": "$query", "nested": ["$query", "x $query", {"q": "$query"}], "n": 5});
        assert_eq!(
            render_params(&params, "status"),
            json!({"query": "status", "nested": ["status", "x $query", {"q": "status"}], "n": 5})
        );
    }
}

//! Reading operator params: trimmed strings, optional numbers, and the
//! `filter_spec` shared by the safe-view operators (gateway spec §5, §5.6).

use pecr_errors::PecrError;
use serde_json::Value;

/// A present, non-null member of `params` (null counts as absent).
pub(crate) fn member<'a>(params: &'a Value, key: &str) -> Option<&'a Value> {
    params.get(key).filter(|value| !value.is_null())
}

/// A string param, trimmed; absent, non-string or blank → "params.{key} is required".
pub(crate) fn required_str<'a>(params: &'a Value, key: &str) -> Result<&'a str, PecrError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| PecrError::invalid_params(format!("params.{key} is required")))
}

/// An unsigned integer param, or None for anything else.
pub(crate) fn optional_u64(params: &Value, key: &str) -> Option<u64> {
    params.get(key).and_then(Value::as_u64)
}

/// String elements of an array, trimmed, blanks and non-strings dropped.
pub(crate) fn trimmed_strings(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .collect()
}

/// [`trimmed_strings`], sorted and deduplicated.
pub(crate) fn sorted_unique_strings(items: &[Value]) -> Vec<String> {
    let mut list = trimmed_strings(items);
    list.sort();
    list.dedup();
    list
}

/// One `filter_spec` predicate: an allowlisted column (a static name, never
/// caller text) and the trimmed value bound for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub field: &'static str,
    pub value: String,
}

/// Appends ` WHERE a = $n AND …` for `filters` to `sql`, binding each value
/// after those already in `values` (values are parameters, never SQL text).
pub(crate) fn push_where<'a>(
    sql: &mut String,
    filters: &'a [Filter],
    values: &mut Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>,
) {
    let mut predicates = Vec::with_capacity(filters.len());
    for filter in filters {
        values.push(&filter.value);
        predicates.push(format!("{} = ${}", filter.field, values.len()));
    }
    if !predicates.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&predicates.join(" AND "));
    }
}

/// Parses `filter_spec`: an object whose trimmed, non-empty keys are taken in
/// sorted order; each must be one of `allowed` and map to a non-empty string.
/// Absent or null → no predicates.
pub(crate) fn parse_filter_spec(
    params: &Value,
    allowed: &[&'static str],
) -> Result<Vec<Filter>, PecrError> {
    let Some(spec) = member(params, "filter_spec") else {
        return Ok(Vec::new());
    };
    let object = spec
        .as_object()
        .ok_or_else(|| PecrError::invalid_params("params.filter_spec must be an object"))?;
    let mut entries: Vec<(&str, &Value)> = object
        .iter()
        .map(|(key, value)| (key.trim(), value))
        .filter(|(key, _)| !key.is_empty())
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut filters = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let field = allowed
            .iter()
            .copied()
            .find(|field| *field == key)
            .ok_or_else(|| {
                crate::errors::not_allowlisted("filter field not allowlisted", &[key], || {
                    key.to_owned()
                })
            })?;
        let value = value
            .as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                PecrError::invalid_params(format!("filter_spec.{key} must be a non-empty string"))
            })?;
        filters.push(Filter {
            field,
            value: value.to_owned(),
        });
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ALLOWED: &[&str] = &["customer_id", "plan_tier", "status"];

    fn message(result: Result<Vec<Filter>, PecrError>) -> String {
        result.err().map(|err| err.message).unwrap_or_default()
    }

    #[test]
    fn filter_spec_rules() {
        assert_eq!(parse_filter_spec(&json!({}), ALLOWED), Ok(vec![]));
        assert_eq!(
            parse_filter_spec(&json!({"filter_spec": null}), ALLOWED),
            Ok(vec![])
        );
        assert_eq!(
            message(parse_filter_spec(&json!({"filter_spec": []}), ALLOWED)),
            "params.filter_spec must be an object"
        );
        let parsed = parse_filter_spec(
            &json!({"filter_spec": {" status ": " active ", "": "x", "customer_id": "c1"}}),
            ALLOWED,
        );
        assert_eq!(
            parsed,
            Ok(vec![
                Filter {
                    field: "customer_id",
                    value: "c1".into()
                },
                Filter {
                    field: "status",
                    value: "active".into()
                },
            ])
        );
        assert_eq!(
            message(parse_filter_spec(
                &json!({"filter_spec": {"zeta": "1", "admin_note": "x"}}),
                ALLOWED
            )),
            "filter field not allowlisted: admin_note"
        );
        assert_eq!(
            message(parse_filter_spec(
                &json!({"filter_spec": {"status": " "}}),
                ALLOWED
            )),
            "filter_spec.status must be a non-empty string"
        );
        assert_eq!(
            message(parse_filter_spec(
                &json!({"filter_spec": {"status": 1}}),
                ALLOWED
            )),
            "filter_spec.status must be a non-empty string"
        );
    }

    #[test]
    fn required_strings_are_trimmed() {
        assert_eq!(required_str(&json!({"q": " a "}), "q"), Ok("a"));
        let err = required_str(&json!({"q": 1}), "q").err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("params.q is required"));
        assert!(required_str(&json!("not an object"), "q").is_err());
    }
}

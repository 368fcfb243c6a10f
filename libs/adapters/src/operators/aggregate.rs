//! `aggregate` (gateway spec §5.8): grouped counts over an allowlisted safe
//! view. Emits one unit; the result is the unit object. Aggregates read the
//! live view: there is no history to travel back in.

use pecr_contracts::evidence::{EvidenceContent, EvidenceParts, EvidenceUnit};
use pecr_contracts::hash_canonical_json;
use pecr_errors::PecrError;
use serde_json::{Map, Value, json};
use tokio_postgres::types::ToSql;

use super::fetch_rows::parse_view;
use super::unit_json;
use crate::errors::schema_mismatch;
use crate::params::{member, parse_filter_spec, sorted_unique_strings};
use crate::redaction::Redaction;
use crate::safe_view::{FILTER_FIELDS, GROUP_BY_FIELDS, METRICS, SOURCE_SYSTEM};
use crate::scope::SessionScope;
use crate::{AdaptersInner, OperatorOutput};

/// `group_by`: optional (a non-array is empty); trimmed strings, sorted,
/// deduplicated, each a group-by field.
fn parse_group_by(params: &Value) -> Result<Vec<&'static str>, PecrError> {
    let names = params
        .get("group_by")
        .and_then(Value::as_array)
        .map(|items| sorted_unique_strings(items))
        .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            GROUP_BY_FIELDS
                .iter()
                .copied()
                .find(|field| field == name)
                .ok_or_else(|| {
                    crate::errors::not_allowlisted(
                        "group_by field not allowlisted",
                        &[name],
                        || (*name).to_owned(),
                    )
                })
        })
        .collect()
}

/// `metrics`: an array of `{name, field}` objects (exactly those two string
/// members), trimmed, allowlisted, sorted by (name, field), deduplicated, non-empty.
fn parse_metrics(params: &Value) -> Result<Vec<(&'static str, &'static str)>, PecrError> {
    let items = params
        .get("metrics")
        .and_then(Value::as_array)
        .ok_or_else(|| PecrError::invalid_params("params.metrics must be an array"))?;
    let mut metrics = Vec::with_capacity(items.len());
    for item in items {
        let pair = item
            .as_object()
            .filter(|object| object.len() == 2)
            .and_then(|object| {
                Some((
                    object.get("name")?.as_str()?.trim(),
                    object.get("field")?.as_str()?.trim(),
                ))
            });
        let (name, field) =
            pair.ok_or_else(|| PecrError::invalid_params("invalid metric object"))?;
        if name.is_empty() || field.is_empty() {
            return Err(PecrError::invalid_params(
                "metric name and field are required",
            ));
        }
        let metric = METRICS
            .iter()
            .copied()
            .find(|(n, f)| *n == name && *f == field)
            .ok_or_else(|| {
                crate::errors::not_allowlisted("metric not allowlisted", &[name, field], || {
                    format!("{name}({field})")
                })
            })?;
        metrics.push(metric);
    }
    metrics.sort();
    metrics.dedup();
    if metrics.is_empty() {
        return Err(PecrError::invalid_params(
            "params.metrics must be a non-empty array",
        ));
    }
    Ok(metrics)
}

/// The SELECT expression of a metric; only `count` exists.
fn metric_column(name: &'static str, field: &'static str) -> String {
    format!("COUNT({field})::bigint AS {name}_{field}")
}

pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
    redaction: Option<&Redaction>,
) -> Result<OperatorOutput, PecrError> {
    let view = parse_view(params)?;
    let group_by = parse_group_by(params)?;
    let metrics = parse_metrics(params)?;
    let filters = parse_filter_spec(params, &FILTER_FIELDS)?;
    let empty = json!({});
    let filter_fingerprint = hash_canonical_json(member(params, "filter_spec").unwrap_or(&empty));

    let mut columns: Vec<String> = group_by
        .iter()
        .map(|g| format!("{g}::text AS {g}"))
        .collect();
    columns.extend(
        metrics
            .iter()
            .map(|(name, field)| metric_column(name, field)),
    );
    let mut sql = format!("SELECT {} FROM {}", columns.join(", "), view.view_id);
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(filters.len() + 1);
    crate::params::push_where(&mut sql, &filters, &mut values);
    let limit = i64::from(adapters.config.pg_max_groups);
    if group_by.is_empty() {
        sql.push_str(" LIMIT 1");
    } else {
        let keys = group_by.join(", ");
        values.push(&limit);
        sql.push_str(&format!(
            " GROUP BY {keys} ORDER BY {keys} LIMIT ${}",
            values.len()
        ));
    }
    let rows = adapters.db.query(&scope.tenant_id, &sql, &values).await?;

    let mut out_rows = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut group = Map::new();
        for (index, field) in group_by.iter().enumerate() {
            let value: Option<String> = row.try_get(index).map_err(|_| schema_mismatch())?;
            group.insert(
                (*field).to_owned(),
                value.map_or(Value::Null, Value::String),
            );
        }
        let mut values = Vec::with_capacity(metrics.len());
        for (offset, (name, field)) in metrics.iter().enumerate() {
            let value: i64 = row
                .try_get(group_by.len() + offset)
                .map_err(|_| schema_mismatch())?;
            values.push(json!({"name": name, "field": field, "value": value}));
        }
        out_rows.push(json!({"group": group, "metrics": values}));
    }
    let content = json!({ "rows": out_rows });
    let version_id = hash_canonical_json(&content);
    let metric_specs: Vec<Value> = metrics
        .iter()
        .map(|(name, field)| json!({"name": name, "field": field}))
        .collect();
    let mut unit = EvidenceUnit::new(EvidenceParts {
        source_system: SOURCE_SYSTEM.to_owned(),
        object_id: view.view_id.to_owned(),
        version_id,
        span_or_row_spec: json!({
            "type": "db_aggregate",
            "view_id": view.view_id,
            "filter_fingerprint": filter_fingerprint,
            "group_by": group_by,
            "metrics": metric_specs,
        }),
        content: EvidenceContent::Json(content),
        as_of_time: scope.as_of_time.clone(),
        policy_snapshot_id: scope.policy_snapshot_id.clone(),
        policy_snapshot_hash: scope.policy_snapshot_hash.clone(),
        transform_chain: Vec::new(),
    });
    if let Some(redaction) = redaction {
        redaction.apply(&mut unit)?;
    }
    Ok(OperatorOutput {
        result: unit_json(&unit)?,
        evidence: vec![unit],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: std::fmt::Debug>(result: Result<T, PecrError>) -> String {
        result.err().map(|err| err.message).unwrap_or_default()
    }

    #[test]
    fn group_by_rules() {
        assert_eq!(parse_group_by(&json!({})), Ok(vec![]));
        assert_eq!(parse_group_by(&json!({"group_by": "status"})), Ok(vec![]));
        assert_eq!(
            parse_group_by(&json!({"group_by": ["status", " plan_tier", "", 3, "status"]})),
            Ok(vec!["plan_tier", "status"])
        );
        assert_eq!(
            message(parse_group_by(&json!({"group_by": ["customer_id"]}))),
            "group_by field not allowlisted: customer_id"
        );
    }

    #[test]
    fn metric_rules() {
        let count = json!({"name": "count", "field": "customer_id"});
        assert_eq!(
            parse_metrics(
                &json!({"metrics": [count, {"name": " count ", "field": "customer_id "}]})
            ),
            Ok(vec![("count", "customer_id")])
        );
        assert_eq!(
            message(parse_metrics(&json!({}))),
            "params.metrics must be an array"
        );
        assert_eq!(
            message(parse_metrics(&json!({"metrics": {}}))),
            "params.metrics must be an array"
        );
        assert_eq!(
            message(parse_metrics(&json!({"metrics": []}))),
            "params.metrics must be a non-empty array"
        );
        assert_eq!(
            message(parse_metrics(&json!({"metrics": ["count"]}))),
            "invalid metric object"
        );
        assert_eq!(
            message(parse_metrics(&json!({"metrics": [{"name": "count"}]}))),
            "invalid metric object"
        );
        assert_eq!(
            message(parse_metrics(
                &json!({"metrics": [{"name": "count", "field": 1}]})
            )),
            "invalid metric object"
        );
        assert_eq!(
            message(parse_metrics(
                &json!({"metrics": [{"name": "count", "field": "customer_id", "x": 1}]})
            )),
            "invalid metric object"
        );
        assert_eq!(
            message(parse_metrics(
                &json!({"metrics": [{"name": " ", "field": "customer_id"}]})
            )),
            "metric name and field are required"
        );
        assert_eq!(
            message(parse_metrics(
                &json!({"metrics": [{"name": "sum", "field": "status"}]})
            )),
            "metric not allowlisted: sum(status)"
        );
    }
}

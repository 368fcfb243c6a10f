//! `fetch_rows` (gateway spec §5.7): rows of an allowlisted safe view, as of
//! the session's `as_of_time`. Emits every unit; the result is an array in
//! primary-key order.
//!
//! `as_of_time` applies on every path (decision 5): the row-snapshot store
//! is applied on the database path too. A row that has a snapshot at the
//! session's `as_of_time` is answered from that snapshot (and left out if
//! the snapshot does not match the filters), so every path time-travels,
//! not only a lookup by `customer_id`.

use std::sync::Arc;

use pecr_contracts::evidence::{EvidenceContent, EvidenceParts, EvidenceUnit};
use pecr_contracts::sha256_hex;
use pecr_errors::PecrError;
use serde_json::{Map, Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::units_json;
use crate::errors::schema_mismatch;
use crate::params::{Filter, parse_filter_spec, required_str, sorted_unique_strings};
use crate::redaction::Redaction;
use crate::safe_view::{FILTER_FIELDS, SOURCE_SYSTEM, SafeView, VERSION_FIELD, text_column};
use crate::scope::SessionScope;
use crate::version_store::{NewVersion, ResolveRequest, VersionKey};
use crate::{AdaptersInner, OperatorOutput};

/// `view_id`: required, then in the catalogue.
pub(super) fn parse_view(params: &Value) -> Result<&'static SafeView, PecrError> {
    let view_id = required_str(params, "view_id")?;
    SafeView::find(view_id).ok_or_else(|| PecrError::invalid_params("view_id not allowlisted"))
}

/// `fields`: an array; strings trimmed, blanks and non-strings dropped,
/// sorted, deduplicated; non-empty, within the cap, each selectable.
fn parse_fields(
    params: &Value,
    view: &SafeView,
    max_fields: usize,
) -> Result<Vec<&'static str>, PecrError> {
    let items = params
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| PecrError::invalid_params("params.fields must be an array of strings"))?;
    let names = sorted_unique_strings(items);
    if names.is_empty() {
        return Err(PecrError::invalid_params(
            "params.fields must be a non-empty array",
        ));
    }
    if names.len() > max_fields {
        return Err(PecrError::invalid_params(
            "params.fields exceeds max field count",
        ));
    }
    names
        .iter()
        .map(|name| {
            view.field(name).ok_or_else(|| {
                crate::errors::not_allowlisted("field not allowlisted", &[name], || {
                    (*name).to_owned()
                })
            })
        })
        .collect()
}

/// `{view_id}:{tenant_id}:{customer_id}`.
fn row_object_id(view: &SafeView, tenant_id: &str, customer_id: &str) -> String {
    format!("{}:{tenant_id}:{customer_id}", view.view_id)
}

/// A full-row snapshot: every selectable column as a string or null.
type Snapshot = Map<String, Value>;

fn snapshot_str<'a>(snapshot: &'a Snapshot, field: &str) -> Option<&'a str> {
    snapshot.get(field).and_then(Value::as_str)
}

fn matches_filters(snapshot: &Snapshot, filters: &[Filter]) -> bool {
    filters
        .iter()
        .all(|filter| snapshot_str(snapshot, filter.field) == Some(filter.value.as_str()))
}

fn decode_snapshot(bytes: &[u8]) -> Option<Snapshot> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(snapshot)) => Some(snapshot),
        _ => None,
    }
}

/// The row as a snapshot; a column that is not text is a schema mismatch.
fn decode_row(view: &SafeView, row: &Row) -> Result<Snapshot, PecrError> {
    let mut snapshot = Map::new();
    for (index, field) in view.fields().into_iter().enumerate() {
        let value: Option<String> = row.try_get(index).map_err(|_| schema_mismatch())?;
        snapshot.insert(field.to_owned(), value.map_or(Value::Null, Value::String));
    }
    Ok(snapshot)
}

/// The unit for `fields` of a row snapshot.
fn row_unit(
    view: &SafeView,
    fields: &[&'static str],
    snapshot: &Snapshot,
    version_id: String,
    scope: &SessionScope,
) -> Result<EvidenceUnit, PecrError> {
    let tenant_id = snapshot_str(snapshot, "tenant_id").ok_or_else(schema_mismatch)?;
    let customer_id = snapshot_str(snapshot, "customer_id").ok_or_else(schema_mismatch)?;
    let content: Map<String, Value> = fields
        .iter()
        .map(|field| {
            let value = snapshot.get(*field).cloned().unwrap_or(Value::Null);
            ((*field).to_owned(), value)
        })
        .collect();
    Ok(EvidenceUnit::new(EvidenceParts {
        source_system: SOURCE_SYSTEM.to_owned(),
        object_id: row_object_id(view, tenant_id, customer_id),
        version_id,
        span_or_row_spec: json!({
            "type": "db_row",
            "view_id": view.view_id,
            "primary_key": {"tenant_id": tenant_id, "customer_id": customer_id},
            "fields": fields,
        }),
        content: EvidenceContent::Json(Value::Object(content)),
        as_of_time: scope.as_of_time.clone(),
        policy_snapshot_id: scope.policy_snapshot_id.clone(),
        policy_snapshot_hash: scope.policy_snapshot_hash.clone(),
        transform_chain: Vec::new(),
    }))
}

fn finish(
    mut units: Vec<EvidenceUnit>,
    redaction: Option<&Redaction>,
) -> Result<OperatorOutput, PecrError> {
    if let Some(redaction) = redaction {
        for unit in &mut units {
            redaction.apply(unit)?;
        }
    }
    Ok(OperatorOutput {
        result: units_json(&units)?,
        evidence: units,
    })
}

pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
    redaction: Option<&Redaction>,
) -> Result<OperatorOutput, PecrError> {
    let view = parse_view(params)?;
    let fields = parse_fields(params, view, adapters.config.pg_max_fields)?;
    let filters = parse_filter_spec(params, &FILTER_FIELDS)?;
    let store = adapters.pg_versions.as_ref();

    // Snapshot path: a lookup by customer_id answered from the store.
    if let Some(customer) = filters.iter().find(|filter| filter.field == "customer_id") {
        let key = VersionKey::new(
            scope,
            &row_object_id(view, &scope.tenant_id, &customer.value),
        );
        if let Some(stored) = store.select(&key, &scope.as_of_time).await?
            && let Some(snapshot) = decode_snapshot(&stored.bytes)
            && matches_filters(&snapshot, &filters)
        {
            let unit = row_unit(view, &fields, &snapshot, stored.version_id, scope)?;
            return finish(vec![unit], redaction);
        }
    }

    // Database path.
    let columns: Vec<String> = view.fields().into_iter().map(text_column).collect();
    let mut sql = format!("SELECT {} FROM {}", columns.join(", "), view.view_id);
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(filters.len() + 1);
    crate::params::push_where(&mut sql, &filters, &mut values);
    let limit = i64::from(adapters.config.pg_max_rows);
    values.push(&limit);
    sql.push_str(&format!(
        " ORDER BY tenant_id, customer_id LIMIT ${}",
        values.len()
    ));
    let rows = adapters.db.query(&scope.tenant_id, &sql, &values).await?;

    // Every row offers its live snapshot in one call: the snapshot in force
    // at as_of_time replaces the live row (and drops it when it does not
    // match the filters); where none is, the live row is recorded.
    let mut live = Vec::with_capacity(rows.len());
    let mut requests = Vec::with_capacity(rows.len());
    for row in &rows {
        let snapshot = decode_row(view, row)?;
        let tenant_id = snapshot_str(&snapshot, "tenant_id").ok_or_else(schema_mismatch)?;
        let customer_id = snapshot_str(&snapshot, "customer_id").ok_or_else(schema_mismatch)?;
        let updated_at = snapshot_str(&snapshot, VERSION_FIELD).ok_or_else(schema_mismatch)?;
        let version_id = sha256_hex(updated_at);
        let bytes = serde_json::to_vec(&snapshot).map_err(|_| schema_mismatch())?;
        requests.push(ResolveRequest {
            key: VersionKey::new(scope, &row_object_id(view, tenant_id, customer_id)),
            as_of_time: scope.as_of_time.clone(),
            current: Some(NewVersion {
                version_id: version_id.clone(),
                bytes: Arc::new(bytes),
            }),
        });
        live.push((snapshot, version_id));
    }
    let in_force = store.resolve(&requests).await?;

    let mut units = Vec::with_capacity(rows.len());
    for ((snapshot, version_id), stored) in live.into_iter().zip(in_force) {
        if let Some(stored) = stored
            && let Some(old) = decode_snapshot(&stored.bytes)
        {
            if matches_filters(&old, &filters) {
                units.push(row_unit(view, &fields, &old, stored.version_id, scope)?);
            }
            continue;
        }
        units.push(row_unit(view, &fields, &snapshot, version_id, scope)?);
    }
    finish(units, redaction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: std::fmt::Debug>(result: Result<T, PecrError>) -> String {
        result.err().map(|err| err.message).unwrap_or_default()
    }

    #[test]
    fn field_rules() {
        let public = SafeView::find("safe_customer_view_public").expect("in catalogue");
        assert_eq!(
            parse_fields(
                &json!({"fields": ["status", " customer_id ", "", 1, "status"]}),
                public,
                50
            ),
            Ok(vec!["customer_id", "status"])
        );
        assert_eq!(
            message(parse_fields(&json!({}), public, 50)),
            "params.fields must be an array of strings"
        );
        assert_eq!(
            message(parse_fields(&json!({"fields": "status"}), public, 50)),
            "params.fields must be an array of strings"
        );
        assert_eq!(
            message(parse_fields(&json!({"fields": [1, " "]}), public, 50)),
            "params.fields must be a non-empty array"
        );
        assert_eq!(
            message(parse_fields(
                &json!({"fields": ["status", "plan_tier"]}),
                public,
                1
            )),
            "params.fields exceeds max field count"
        );
        assert_eq!(
            message(parse_fields(
                &json!({"fields": ["zzz", "admin_note"]}),
                public,
                50
            )),
            "field not allowlisted: admin_note"
        );
    }

    #[test]
    fn view_rules() {
        assert_eq!(
            message(parse_view(&json!({}))),
            "params.view_id is required"
        );
        assert_eq!(
            message(parse_view(&json!({"view_id": " "}))),
            "params.view_id is required"
        );
        assert_eq!(
            message(parse_view(&json!({"view_id": "safe_customer_view"}))),
            "view_id not allowlisted"
        );
        assert!(parse_view(&json!({"view_id": " safe_customer_view_admin "})).is_ok());
    }
}

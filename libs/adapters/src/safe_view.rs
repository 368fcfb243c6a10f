//! PostgreSQL safe views (`source_system = "pg_safeview"`, gateway spec
//! §5.6): the static catalogue, the start-up schema check, and query
//! execution.
//!
//! View and column names in SQL come only from the static catalogue below;
//! caller text is only ever a bound parameter. Each query runs in its own
//! transaction that first sets `statement_timeout` and `pecr.tenant_id`
//! transaction-locally through `set_config`, so the views' tenant filter
//! sees the session's tenant and a slow view is cancelled by the server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deadpool_postgres::Pool;
use pecr_config::StartupError;
use pecr_errors::PecrError;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::errors::{database_query_failed, database_unavailable};

/// The transaction-local statement timeout and tenant of one query.
const SET_QUERY_SETTINGS: &str =
    "SELECT set_config('statement_timeout', $1, true), set_config('pecr.tenant_id', $2, true)";

/// The `source_system` of safe-view evidence.
pub const SOURCE_SYSTEM: &str = "pg_safeview";

/// Columns every catalogue view exposes, in SELECT order.
pub const BASE_FIELDS: [&str; 5] = [
    "tenant_id",
    "customer_id",
    "status",
    "plan_tier",
    "updated_at",
];
/// Columns `filter_spec` may name.
pub const FILTER_FIELDS: [&str; 3] = ["customer_id", "plan_tier", "status"];
/// Columns `aggregate` may group by.
pub const GROUP_BY_FIELDS: [&str; 2] = ["plan_tier", "status"];
/// `(name, field)` pairs `aggregate` may compute.
pub const METRICS: [(&str, &str); 1] = [("count", "customer_id")];
/// The row's version source.
pub const VERSION_FIELD: &str = "updated_at";

/// One allowlisted view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeView {
    pub view_id: &'static str,
    /// The one column beyond [`BASE_FIELDS`], if any.
    pub extra_field: Option<&'static str>,
}

/// The five allowlisted views. `safe_customer_view` is deliberately absent.
pub const CATALOGUE: [SafeView; 5] = [
    SafeView {
        view_id: "safe_customer_view_public",
        extra_field: None,
    },
    SafeView {
        view_id: "safe_customer_view_public_slow",
        extra_field: None,
    },
    SafeView {
        view_id: "safe_customer_view_admin",
        extra_field: Some("admin_note"),
    },
    SafeView {
        view_id: "safe_customer_view_support",
        extra_field: Some("support_note"),
    },
    SafeView {
        view_id: "safe_customer_view_injection",
        extra_field: Some("injection_note"),
    },
];

impl SafeView {
    /// The catalogue entry named exactly `view_id`.
    pub fn find(view_id: &str) -> Option<&'static SafeView> {
        CATALOGUE.iter().find(|view| view.view_id == view_id)
    }

    /// Selectable columns: the base five, then the extra one.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = BASE_FIELDS.to_vec();
        fields.extend(self.extra_field);
        fields
    }

    /// The static name of a selectable column.
    pub fn field(&self, name: &str) -> Option<&'static str> {
        self.fields().into_iter().find(|field| *field == name)
    }
}

/// Catalogue columns of `view` that are not in `present` (scenario 11).
pub fn missing_columns(view: &SafeView, present: &BTreeSet<String>) -> Vec<&'static str> {
    view.fields()
        .into_iter()
        .filter(|field| !present.contains(*field))
        .collect()
}

/// A SELECT expression that reads `field` as text; `updated_at` is rendered
/// in UTC as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn text_column(field: &'static str) -> String {
    if field == VERSION_FIELD {
        format!("to_char({field} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS {field}")
    } else {
        format!("{field}::text AS {field}")
    }
}

const POOL_SIZE: usize = 16;
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the start-up connection and schema introspection.
const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// The safe-view connection pool.
#[derive(Debug, Clone)]
pub(crate) struct SafeViewDb {
    pool: Pool,
    query_timeout_ms: u64,
}

fn log_db_error(stage: &'static str, err: &tokio_postgres::Error) {
    // Only the SQLSTATE: server messages can quote values.
    tracing::warn!(
        stage,
        sqlstate = err.code().map(|code| code.code()).unwrap_or(""),
        "safe-view database error"
    );
}

impl SafeViewDb {
    /// Builds the pool; a malformed URL is `ERR_INVALID_CONFIG`, a pool that
    /// cannot be built `ERR_DB_UNAVAILABLE`.
    pub(crate) fn new(db_url: &str, query_timeout_ms: u64) -> Result<Self, StartupError> {
        let pool = pecr_pg::pool(
            db_url,
            pecr_pg::PoolSettings {
                url_key: "PECR_DB_URL",
                purpose: "safe-view",
                unavailable_code: "ERR_DB_UNAVAILABLE",
                max_size: POOL_SIZE,
                wait_timeout: POOL_TIMEOUT,
                connect_timeout: POOL_TIMEOUT,
                on_connect: None,
            },
        )?;
        Ok(Self {
            pool,
            query_timeout_ms,
        })
    }

    /// Checks that every catalogue view exists in the current schema with
    /// all its columns. Missing pieces are one `ERR_INVALID_CONFIG` naming
    /// each; a failed connection or introspection is `ERR_DB_UNAVAILABLE`.
    pub(crate) async fn check_schema(&self) -> Result<(), StartupError> {
        let unavailable = |what: String| StartupError::new("ERR_DB_UNAVAILABLE", what);
        let introspect = async {
            let client = self.pool.get().await.map_err(|err| {
                unavailable(format!("cannot connect to the safe-view database: {err}"))
            })?;
            let names: Vec<String> = CATALOGUE.iter().map(|v| v.view_id.to_owned()).collect();
            client
                .query(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
                    &[&names],
                )
                .await
                .map_err(|err| {
                    log_db_error("introspection", &err);
                    unavailable("cannot introspect the safe views".to_owned())
                })
        };
        let rows = tokio::time::timeout(INTROSPECTION_TIMEOUT, introspect)
            .await
            .map_err(|_| unavailable("safe-view introspection timed out".to_owned()))??;
        let mut present: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in rows {
            let table: String = row
                .try_get(0)
                .map_err(|_| unavailable("cannot introspect the safe views".to_owned()))?;
            let column: String = row
                .try_get(1)
                .map_err(|_| unavailable("cannot introspect the safe views".to_owned()))?;
            present.entry(table).or_default().insert(column);
        }
        let mut problems = Vec::new();
        for view in &CATALOGUE {
            match present.get(view.view_id) {
                None => problems.push(format!(
                    "safe view {} does not exist in the current schema",
                    view.view_id
                )),
                Some(columns) => {
                    for column in missing_columns(view, columns) {
                        problems.push(format!(
                            "safe view {} is missing column {column}",
                            view.view_id
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StartupError::invalid(problems.join("; ")))
        }
    }

    /// `SELECT 1` within `timeout`.
    pub(crate) async fn ping(&self, timeout: Duration) -> bool {
        let probe = async {
            let client = self.pool.get().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        };
        matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(_)))
    }

    /// Runs one query in its own transaction with the transaction-local
    /// statement timeout and tenant. Connection, begin and set failures are
    /// 503 "database unavailable"; query and commit failures (the statement
    /// timeout included) 503 "database query failed".
    pub(crate) async fn query(
        &self,
        tenant_id: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PecrError> {
        let timeout_setting = format!("{}ms", self.query_timeout_ms);
        let work = async {
            let mut client = self.pool.get().await.map_err(|err| {
                tracing::warn!(
                    timeout = matches!(err, deadpool_postgres::PoolError::Timeout(_)),
                    sqlstate = match &err {
                        deadpool_postgres::PoolError::Backend(err) => {
                            err.code().map_or("", |code| code.code())
                        }
                        _ => "",
                    },
                    "safe-view connection unavailable"
                );
                database_unavailable()
            })?;
            let tx = client.transaction().await.map_err(|err| {
                log_db_error("begin", &err);
                database_unavailable()
            })?;
            // Both statements are prepared once per connection, and sent
            // together: the server runs them in order, so the query sees the
            // settings, and the pair costs one round trip.
            let (settings, statement) = tokio::try_join!(
                tx.prepare_cached(SET_QUERY_SETTINGS),
                tx.prepare_cached(sql)
            )
            .map_err(|err| {
                log_db_error("prepare", &err);
                database_query_failed()
            })?;
            let setting_params: [&(dyn ToSql + Sync); 2] = [&timeout_setting, &tenant_id];
            let (set, rows) = tokio::join!(
                tx.execute(&settings, &setting_params),
                tx.query(&statement, params)
            );
            set.map_err(|err| {
                log_db_error("set_config", &err);
                database_unavailable()
            })?;
            let rows = rows.map_err(|err| {
                log_db_error("query", &err);
                database_query_failed()
            })?;
            tx.commit().await.map_err(|err| {
                log_db_error("commit", &err);
                database_query_failed()
            })?;
            Ok(rows)
        };
        // The server enforces the statement timeout; this only guards against
        // a connection that stops answering altogether.
        let guard = POOL_TIMEOUT
            + Duration::from_millis(self.query_timeout_ms.saturating_mul(2))
            + Duration::from_secs(5);
        tokio::time::timeout(guard, work).await.unwrap_or_else(|_| {
            tracing::warn!("safe-view query did not answer in time");
            Err(database_unavailable())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_lookup() {
        assert!(SafeView::find("safe_customer_view").is_none());
        let admin = SafeView::find("safe_customer_view_admin").expect("in catalogue");
        assert_eq!(admin.field("admin_note"), Some("admin_note"));
        assert_eq!(admin.field("support_note"), None);
        let public = SafeView::find("safe_customer_view_public").expect("in catalogue");
        assert_eq!(public.fields(), BASE_FIELDS.to_vec());
    }

    #[test]
    fn scenario_11_missing_columns() {
        let public = SafeView::find("safe_customer_view_public").expect("in catalogue");
        let without: BTreeSet<String> = ["tenant_id", "customer_id", "status", "plan_tier"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(missing_columns(public, &without), vec!["updated_at"]);
        let all: BTreeSet<String> = BASE_FIELDS.into_iter().map(str::to_owned).collect();
        assert!(missing_columns(public, &all).is_empty());
    }
}

//! Connections and migrations.

use std::time::Duration;

use pecr_config::StartupError;
use pecr_pg::Pool;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The newest migration version compiled into this binary.
pub const LAST_MIGRATION_VERSION: i64 = 20261211000100;

/// How many migrations this binary applies to an empty schema.
pub fn migration_count() -> usize {
    embedded::migrations::runner().get_migrations().len()
}

/// Bound on the whole connect-and-migrate step at start-up.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Any two migrators on the same database take turns on this lock.
const MIGRATION_LOCK_KEY: i64 = 0x5045_4352_4d49_4752; // "PECRMIGR"

/// The connection pool used by every RPC. Each connection's statements are
/// cancelled by the server after `statement_timeout`, set once when the
/// connection opens (not per transaction): a statement stuck on a lock then
/// fails cleanly and the connection goes back to the pool idle, not
/// mid-query.
pub fn pool(url: &str, max_size: usize, statement_timeout: Duration) -> Result<Pool, StartupError> {
    // No whole-table scans where an index serves: a connection prepares its
    // statements once and keeps their generic plans, and those made while
    // the tables were small join `unnest` against whole-table scans, for as
    // long as it lives (until an ANALYZE, which a server without autovacuum
    // never runs), so each write would read more as the ledger grows. Every
    // ledger-writer statement reaches its rows by key; forcing custom plans
    // instead cost a quarter of PostgreSQL's CPU in planning. Generic plans
    // always: for a statement over `unnest($1)` a custom plan knows the
    // array's length and looks cheaper, so PostgreSQL would otherwise plan
    // it again at every execution.
    let session = format!(
        "SET statement_timeout = '{}ms'; SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan",
        statement_timeout.as_millis().max(1)
    );
    pecr_pg::pool(
        url,
        pecr_pg::PoolSettings {
            url_key: "PECR_DB_URL",
            purpose: "ledger",
            unavailable_code: "ERR_LEDGER_UNAVAILABLE",
            max_size,
            wait_timeout: POOL_WAIT_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            on_connect: Some(session),
        },
    )
}

/// Connect through `url` (the value of the setting `key`) and migrate,
/// bounded; failure is the `ERR_LEDGER_UNAVAILABLE` start-up error.
pub async fn migrate_bounded(url: &str, key: &str) -> Result<(), StartupError> {
    let message = match tokio::time::timeout(MIGRATE_TIMEOUT, migrate(url)).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(message)) => message,
        Err(_) => "ledger migration timed out".to_owned(),
    };
    Err(StartupError::new(
        "ERR_LEDGER_UNAVAILABLE",
        format!("{message} (through {key})"),
    ))
}

/// Checks, bounded, that the runtime connection reaches the migrated ledger,
/// so a runtime role without its grants fails start-up instead of every
/// RPC. A superuser runtime role only earns a warning.
pub async fn check_runtime_bounded(pool: &Pool) -> Result<(), StartupError> {
    let unavailable = |message: String| {
        StartupError::new(
            "ERR_LEDGER_UNAVAILABLE",
            format!("the runtime connection ({}): {message}", crate::env::DB_URL),
        )
    };
    let check = async {
        let client = pool
            .get()
            .await
            .map_err(|err| format!("cannot connect: {err}"))?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::bigint, \
                        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                 FROM refinery_schema_history",
                &[],
            )
            .await
            .map_err(|err| format!("cannot read the migration history: {err}"))?;
        let (version, superuser): (i64, Option<bool>) = (row.get(0), row.get(1));
        if version < LAST_MIGRATION_VERSION {
            return Err(format!(
                "sees migration {version}, expected {LAST_MIGRATION_VERSION}: another schema or database?"
            ));
        }
        if superuser == Some(true) {
            tracing::warn!(
                "the runtime connection is a PostgreSQL superuser; give it a login role in pecr_ledger_rw (RUNBOOK.md, Database roles)"
            );
        }
        Ok(())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, check).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(unavailable("timed out".to_owned())),
    }
}

/// Applies the embedded migrations in the connection's current schema,
/// serialised against other migrators by a PostgreSQL advisory lock.
pub async fn migrate(url: &str) -> Result<(), String> {
    let connect = tokio_postgres::connect(url, NoTls);
    let (mut client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| "ledger database connect timed out".to_owned())?
        .map_err(|err| format!("cannot connect to the ledger database: {err}"))?;
    let driver = tokio::spawn(connection);

    let result = async {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(|err| format!("cannot take the migration lock: {err}"))?;
        let applied = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|err| format!("ledger migration failed: {err}"));
        // Unlocking also happens when the connection closes.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        applied.map(|_| ())
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_version_constant_matches_the_embedded_migrations() {
        let newest = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|migration| migration.version())
            .max();
        assert_eq!(newest, Some(LAST_MIGRATION_VERSION));
    }
}

//! Connections and migrations.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use pecr_config::StartupError;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The newest migration version compiled into this binary.
pub const LAST_MIGRATION_VERSION: i64 = 20261206000500;

/// Bound on the whole connect-and-migrate step at start-up.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Any two migrators on the same database take turns on this lock.
const MIGRATION_LOCK_KEY: i64 = 0x5045_4352_4d49_4752; // "PECRMIGR"

/// The connection pool used by every RPC.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, StartupError> {
    let config: tokio_postgres::Config = url.parse().map_err(|err| {
        StartupError::invalid(format!("PECR_DB_URL is not a PostgreSQL URL: {err}"))
    })?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| {
            StartupError::new(
                "ERR_LEDGER_UNAVAILABLE",
                format!("cannot build the connection pool: {err}"),
            )
        })
}

/// Connect and migrate, bounded; failure is the `ERR_LEDGER_UNAVAILABLE` start-up error.
pub async fn migrate_bounded(url: &str) -> Result<(), StartupError> {
    match tokio::time::timeout(MIGRATE_TIMEOUT, migrate(url)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(StartupError::new("ERR_LEDGER_UNAVAILABLE", message)),
        Err(_) => Err(StartupError::new(
            "ERR_LEDGER_UNAVAILABLE",
            "ledger migration timed out",
        )),
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

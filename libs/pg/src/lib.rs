//! `pecr-pg`: the PostgreSQL connection pool every PECR service that talks
//! to a database builds the same way: the URL parsed up front (a bad one is
//! `ERR_INVALID_CONFIG` naming its setting), every wait bounded (a pool
//! never hangs a request), connections recycled with a cheap check, and
//! optional session settings run once on each new connection.

use std::time::Duration;

pub use deadpool_postgres::Pool;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, RecyclingMethod, Runtime};
use pecr_config::StartupError;
use tokio_postgres::NoTls;

/// How one pool is built.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The setting the URL came from, named in errors (`PECR_DB_URL`).
    pub url_key: &'static str,
    /// What the pool serves, in errors ("safe-view", "ledger").
    pub purpose: &'static str,
    /// The start-up error code when the pool cannot be built.
    pub unavailable_code: &'static str,
    pub max_size: usize,
    /// Longest wait for a free connection.
    pub wait_timeout: Duration,
    /// Longest wait to open or recycle a connection.
    pub connect_timeout: Duration,
    /// SQL run once on every new connection (`SET …` statements).
    pub on_connect: Option<String>,
}

/// The pool for `url`, not yet connected: connections open on first use.
pub fn pool(url: &str, settings: PoolSettings) -> Result<Pool, StartupError> {
    let config: tokio_postgres::Config = url.parse().map_err(|err| {
        StartupError::invalid(format!(
            "{} is not a PostgreSQL URL: {err}",
            settings.url_key
        ))
    })?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let mut builder = Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1);
    if let Some(sql) = settings.on_connect {
        builder = builder.post_create(Hook::async_fn(move |client, _| {
            let sql = sql.clone();
            Box::pin(async move {
                client
                    .simple_query(&sql)
                    .await
                    .map(|_| ())
                    .map_err(HookError::Backend)
            })
        }));
    }
    builder.build().map_err(|err| {
        StartupError::new(
            settings.unavailable_code,
            format!(
                "cannot build the {} connection pool: {err}",
                settings.purpose
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PoolSettings {
        PoolSettings {
            url_key: "PECR_DB_URL",
            purpose: "test",
            unavailable_code: "ERR_DB_UNAVAILABLE",
            max_size: 2,
            wait_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            on_connect: None,
        }
    }

    #[test]
    fn a_bad_url_names_its_setting() {
        let err = pool("not a url", settings()).expect_err("refused");
        assert_eq!(err.code, "ERR_INVALID_CONFIG");
        assert!(err.message.contains("PECR_DB_URL"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_good_url_builds_a_pool_without_connecting() {
        let pool = pool("postgres://nobody@127.0.0.1:1/none", settings()).expect("pool");
        assert_eq!(pool.status().max_size, 2);
        assert_eq!(pool.status().size, 0);
    }
}

//! A fresh PostgreSQL schema per test, found through `search_path`.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

static NEXT_SCHEMA: AtomicU32 = AtomicU32::new(0);

/// The server tests use unless `PECR_TEST_DB_URL` says otherwise.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A schema of its own on the test PostgreSQL, dropped when the value is.
pub struct TestDatabase {
    base_url: String,
    schema: String,
    client: tokio_postgres::Client,
}

impl TestDatabase {
    /// Creates `pecr_test_<pid>_<n>`. Panics with a clear message when no
    /// PostgreSQL answers: a test that needs the database never skips.
    pub async fn create() -> Self {
        let base_url = std::env::var("PECR_TEST_DB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let (client, connection) = tokio_postgres::connect(&base_url, NoTls)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL is not reachable at {base_url} ({err}). Start it (for example \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) \
                 or point PECR_TEST_DB_URL at one."
                )
            });
        tokio::spawn(connection);
        let schema = format!(
            "pecr_test_{}_{}",
            std::process::id(),
            NEXT_SCHEMA.fetch_add(1, Ordering::Relaxed)
        );
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"))
            .await
            .unwrap_or_else(|err| panic!("cannot create test schema {schema}: {err}"));
        Self {
            base_url,
            schema,
            client,
        }
    }

    /// A URL whose connections use only this schema.
    pub fn url(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.base_url, self.schema
        )
    }

    /// The TCP address of the test PostgreSQL server.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let config = self.base_config();
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => panic!("the test database must be reached over TCP for fault tests"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = if host == "localhost" {
            "127.0.0.1".to_owned()
        } else {
            host
        };
        format!("{host}:{port}")
            .parse()
            .unwrap_or_else(|err| panic!("database address {host}:{port}: {err}"))
    }

    /// `url()` with the server address replaced, e.g. by a proxy's.
    pub fn url_through(&self, addr: std::net::SocketAddr) -> String {
        let config = self.base_config();
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        self.schema_url(&format!("{user}{password}"), &addr.to_string())
    }

    /// `url()` logging in as `user` (no password: the test server trusts
    /// local connections).
    pub fn url_as(&self, user: &str) -> String {
        self.schema_url(user, &self.server_addr().to_string())
    }

    /// Makes sure the NOLOGIN role `group` and the LOGIN role `login`, a
    /// member of it, exist, and returns [`Self::url_as`] `login`. Roles are
    /// global to the server: both are created once, race-safely, and kept.
    pub async fn login_role(&self, login: &str, group: &str) -> String {
        let create = |role: &str, options: String| {
            format!(
                "DO $$ BEGIN \
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
                     CREATE ROLE {role} {options}; \
                   END IF; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
                 END $$"
            )
        };
        for statement in [
            create(group, "NOLOGIN".to_owned()),
            create(login, format!("LOGIN IN ROLE {group}")),
        ] {
            self.client
                .batch_execute(&statement)
                .await
                .unwrap_or_else(|err| panic!("create role {login} in {group}: {err}"));
        }
        self.url_as(login)
    }

    fn base_config(&self) -> tokio_postgres::Config {
        self.base_url
            .parse()
            .unwrap_or_else(|err| panic!("PECR_TEST_DB_URL: {err}"))
    }

    fn schema_url(&self, credentials: &str, addr: &str) -> String {
        let config = self.base_config();
        let dbname = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres");
        format!(
            "postgres://{credentials}@{addr}/{dbname}?options=-csearch_path%3D{}",
            self.schema
        )
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A connection whose `search_path` is this schema.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// `SELECT count(*)` of a table in this schema.
    pub async fn count(&self, table: &str) -> i64 {
        self.client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap_or_else(|err| panic!("count {table}: {err}"))
            .get(0)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: the schema name is unique, so a leftover harms nothing.
        let url = self.base_url.clone();
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&statement).await;
                }
            });
        })
        .join();
    }
}

//! Gateway settings (spec 20 §10), read once at start-up; every bad value is
//! reported, then the process exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pecr_config::{ConfigReader, EnvSource, FrontDoor, StartupError, StartupErrors};
use pecr_contracts::is_sha256_hex;
use pecr_server::{AllowedClients, ClientTls, ServerTls};

use crate::env;

/// Remote OPA settings, present only when `PECR_OPA_URL` is set.
#[derive(Debug, Clone)]
pub struct RemoteOpa {
    pub url: String,
    pub timeout_ms: u64,
    pub retry_max_attempts: u32,
    pub retry_base_backoff_ms: u64,
    pub breaker_failure_threshold: u32,
    pub breaker_open_ms: u64,
}

/// Per-principal limits per window; 0 disables a limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub window: Duration,
    pub sessions: u32,
    pub operators: u32,
    pub finalize: u32,
    /// `SimulatePolicy`: each call is a policy evaluation (remote OPA included).
    pub simulate: u32,
}

/// Where the version store behind as_of_time lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStoreKind {
    /// In the ledger database through ledger-writer, shared by every replica.
    Ledger,
    /// In this process: lost on restart, and each replica has its own.
    Memory,
}

/// Filesystem and safe-view adapter limits.
#[derive(Debug, Clone)]
pub struct SourceLimits {
    pub fs_corpus_path: PathBuf,
    /// Keep the search index in memory, refreshed by a watch of the corpus;
    /// off for a filesystem that reports no changes (e.g. a network mount).
    pub fs_corpus_watch: bool,
    pub fs_version_cache_max_bytes: u64,
    pub fs_version_cache_max_total_bytes: u64,
    pub fs_version_cache_max_versions_per_object: u32,
    pub version_store: VersionStoreKind,
    pub fs_diff_max_bytes: u64,
    pub pg_query_timeout_ms: u64,
    pub pg_max_rows: u32,
    pub pg_max_fields: u32,
    pub pg_max_groups: u32,
}

pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub ledger_url: String,
    /// The service token presented to ledger-writer.
    pub ledger_token: Option<pecr_config::Secret>,
    pub db_url: String,
    pub front_door: FrontDoor,
    pub policy_bundle_dir: PathBuf,
    /// Required with remote OPA; with the embedded engine it defaults to the
    /// hash of the bundle actually loaded, and a mismatch stops start-up.
    pub policy_bundle_hash: Option<String>,
    pub remote_opa: Option<RemoteOpa>,
    pub cache_max_entries: u64,
    pub cache_ttl_ms: u64,
    pub ledger_write_timeout: Duration,
    pub session_token_ttl: Duration,
    pub store_evidence_content: bool,
    pub metrics_require_auth: bool,
    /// Browser origins granted CORS on the REST edge.
    pub cors: pecr_edge::CorsOrigins,
    /// The MCP server at `/mcp`: the budget of the PECR session each MCP
    /// session opens, and the `Host` values it answers (empty: any).
    pub mcp_budget: pecr_contracts::Budget,
    pub mcp_allowed_hosts: Vec<String>,
    pub sources: SourceLimits,
    pub rate_limits: RateLimits,
    pub admission: pecr_config::Admission,
    pub coverage_threshold: f64,
    pub as_of_time_default: String,
    /// TLS on the gRPC port (the REST edge stays on plain HTTP).
    pub server_tls: Option<ServerTls>,
    /// TLS towards ledger-writer when `PECR_LEDGER_URL` is https://.
    pub client_tls: ClientTls,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("ledger_url", &self.ledger_url)
            .field("db_url", &"<redacted>")
            .field("front_door", &self.front_door)
            .field("policy_bundle_dir", &self.policy_bundle_dir)
            .field("remote_opa", &self.remote_opa)
            .field("server_tls", &self.server_tls)
            .field("client_tls", &self.client_tls)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn from_source(source: &dyn EnvSource) -> Result<Self, StartupErrors> {
        let mut r = ConfigReader::new(source);
        let grpc_addr = r.socket_addr(env::GRPC_ADDR, env::DEFAULT_GRPC_ADDR);
        let http_addr = r.socket_addr(env::HTTP_ADDR, env::DEFAULT_HTTP_ADDR);
        // The bind rule is checked before required keys, as the spec orders it.
        let front_door = FrontDoor::read(
            &mut r,
            &[(env::GRPC_ADDR, grpc_addr), (env::HTTP_ADDR, http_addr)],
        );
        let server_tls =
            ServerTls::read(&mut r, AllowedClients::only(&env::DEFAULT_ALLOWED_CLIENTS));
        let client_tls = ClientTls::read(&mut r, &[(env::LEDGER_URL, env::LEDGER_TLS_SERVER_NAME)]);
        let ledger_url = r.string(env::LEDGER_URL, env::DEFAULT_LEDGER_URL);
        if let Err(err) = client_tls.endpoint(env::LEDGER_URL, &ledger_url) {
            r.push_error(err);
        }
        let ledger_token = pecr_server::read_upstream_token(
            &mut r,
            env::LEDGER_TOKEN,
            env::LEDGER_URL,
            &ledger_url,
            &client_tls,
        );
        let db_url = r.required(env::DB_URL);
        if !db_url.is_empty() && db_url.parse::<tokio_postgres::Config>().is_err() {
            r.push_error(StartupError::invalid(format!(
                "{} is not a PostgreSQL URL",
                env::DB_URL
            )));
        }

        let policy_bundle_hash = r.raw(env::POLICY_BUNDLE_HASH);
        if let Some(hash) = &policy_bundle_hash
            && !is_sha256_hex(hash)
        {
            r.push_error(StartupError::new(
                "ERR_INVALID_POLICY_BUNDLE_HASH",
                format!(
                    "{} must be 64 lowercase hex characters",
                    env::POLICY_BUNDLE_HASH
                ),
            ));
        }
        let remote_opa = r.raw(env::OPA_URL).map(|url| RemoteOpa {
            url,
            timeout_ms: 0,
            retry_max_attempts: 0,
            retry_base_backoff_ms: 0,
            breaker_failure_threshold: 0,
            breaker_open_ms: 0,
        });
        let remote_opa = remote_opa.map(|mut opa| {
            opa.timeout_ms = r.number(env::OPA_TIMEOUT_MS, 200, 1, 60_000);
            opa.retry_max_attempts = r.number(env::OPA_RETRY_MAX_ATTEMPTS, 2, 0, 10);
            opa.retry_base_backoff_ms = r.number(env::OPA_RETRY_BASE_BACKOFF_MS, 50, 0, 5_000);
            opa.breaker_failure_threshold = r.number(env::OPA_BREAKER_THRESHOLD, 8, 1, 1_000_000);
            opa.breaker_open_ms = r.number(env::OPA_BREAKER_OPEN_MS, 1000, 1, 3_600_000);
            opa
        });
        if remote_opa.is_some() && policy_bundle_hash.is_none() {
            r.push_error(StartupError::new(
                "ERR_MISSING_CONFIG",
                format!(
                    "{} is required with {} (the gateway cannot hash a remote bundle)",
                    env::POLICY_BUNDLE_HASH,
                    env::OPA_URL
                ),
            ));
        }

        let store_mode = r.string(env::EVIDENCE_PAYLOAD_STORE_MODE, "metadata-only");
        let store_evidence_content = match store_mode.as_str() {
            "metadata-only" => false,
            "payload-enabled" => true,
            other => {
                r.push_error(StartupError::invalid(format!(
                    "{} must be metadata-only or payload-enabled (got {other:?})",
                    env::EVIDENCE_PAYLOAD_STORE_MODE
                )));
                false
            }
        };
        let version_store = match r.string(env::VERSION_STORE, "ledger").as_str() {
            "ledger" => VersionStoreKind::Ledger,
            "memory" => VersionStoreKind::Memory,
            other => {
                r.push_error(StartupError::invalid(format!(
                    "{} must be ledger or memory (got {other:?})",
                    env::VERSION_STORE
                )));
                VersionStoreKind::Ledger
            }
        };
        let coverage_threshold = r.number(env::COVERAGE_THRESHOLD, 0.95_f64, 0.0, 1.0);
        let as_of_time_default = r.string(
            env::AS_OF_TIME_DEFAULT,
            pecr_contracts::time::AS_OF_TIME_DEFAULT,
        );
        if let Err(err) = pecr_contracts::time::validate_as_of_time(&as_of_time_default) {
            r.push_error(StartupError::invalid(format!(
                "{}: {err}",
                env::AS_OF_TIME_DEFAULT
            )));
        }
        let cors = pecr_server::read_cors_origins(&mut r);
        let mcp_budget = read_mcp_budget(&mut r);
        let mcp_allowed_hosts = pecr_mcp::read_allowed_hosts(&mut r);
        let metrics_require_auth =
            r.boolean(env::METRICS_REQUIRE_AUTH, !http_addr.ip().is_loopback());

        let config = Self {
            grpc_addr,
            http_addr,
            ledger_url,
            ledger_token,
            db_url,
            front_door,
            policy_bundle_dir: PathBuf::from(
                r.string(env::POLICY_BUNDLE_DIR, env::DEFAULT_POLICY_BUNDLE_DIR),
            ),
            policy_bundle_hash,
            remote_opa,
            cache_max_entries: r.number(env::CACHE_MAX_ENTRIES, 0, 0, 10_000_000),
            cache_ttl_ms: r.number(env::CACHE_TTL_MS, 0, 0, 86_400_000),
            ledger_write_timeout: Duration::from_millis(r.number(
                env::LEDGER_WRITE_TIMEOUT_MS,
                2000,
                1,
                600_000,
            )),
            session_token_ttl: Duration::from_secs(r.number(
                env::SESSION_TOKEN_TTL_SECS,
                900,
                1,
                31_536_000,
            )),
            store_evidence_content,
            metrics_require_auth,
            cors,
            mcp_budget,
            mcp_allowed_hosts,
            sources: SourceLimits {
                fs_corpus_path: PathBuf::from(
                    r.string(env::FS_CORPUS_PATH, env::DEFAULT_FS_CORPUS_PATH),
                ),
                fs_corpus_watch: r.boolean(env::FS_CORPUS_WATCH, true),
                fs_version_cache_max_bytes: r.number(
                    env::FS_VERSION_CACHE_MAX_BYTES,
                    2_097_152,
                    0,
                    u64::MAX,
                ),
                fs_version_cache_max_total_bytes: r.number(
                    env::FS_VERSION_CACHE_MAX_TOTAL_BYTES,
                    67_108_864,
                    1,
                    u64::MAX,
                ),
                fs_version_cache_max_versions_per_object: r.number(
                    env::FS_VERSION_CACHE_MAX_VERSIONS_PER_OBJECT,
                    16,
                    1,
                    1_000_000,
                ),
                version_store,
                fs_diff_max_bytes: r.number(env::FS_DIFF_MAX_BYTES, 32_768, 0, u64::MAX),
                pg_query_timeout_ms: r.number(env::PG_QUERY_TIMEOUT_MS, 200, 1, 600_000),
                pg_max_rows: r.number(env::PG_MAX_ROWS, 200, 1, 100_000),
                pg_max_fields: r.number(env::PG_MAX_FIELDS, 50, 1, 10_000),
                pg_max_groups: r.number(env::PG_MAX_GROUPS, 200, 1, 100_000),
            },
            admission: pecr_config::Admission::read(&mut r, 30_000),
            rate_limits: RateLimits {
                window: Duration::from_secs(r.number(env::RATE_LIMIT_WINDOW_SECS, 60, 1, 86_400)),
                sessions: r.number(env::RATE_LIMIT_SESSIONS, 60, 0, u32::MAX),
                operators: r.number(env::RATE_LIMIT_OPERATORS, 240, 0, u32::MAX),
                finalize: r.number(env::RATE_LIMIT_FINALIZE, 120, 0, u32::MAX),
                simulate: r.number(env::RATE_LIMIT_SIMULATE, 120, 0, u32::MAX),
            },
            coverage_threshold,
            as_of_time_default,
            server_tls,
            client_tls,
        };
        r.finish()?;
        Ok(config)
    }
}

/// `PECR_MCP_SESSION_BUDGET`: a Budget's JSON within the contract limits.
fn read_mcp_budget(reader: &mut ConfigReader<'_>) -> pecr_contracts::Budget {
    let text = reader.string(env::MCP_SESSION_BUDGET, env::DEFAULT_MCP_SESSION_BUDGET);
    let parsed = serde_json::from_str::<pecr_contracts::Budget>(&text)
        .map_err(|err| format!("not a Budget: {err}"))
        .and_then(|budget| {
            budget
                .validate()
                .map(|()| budget)
                .map_err(|err| err.to_string())
        });
    parsed.unwrap_or_else(|reason| {
        reader.push_error(StartupError::new(
            "ERR_INVALID_BUDGET",
            format!("{}: {reason}", env::MCP_SESSION_BUDGET),
        ));
        // Never served: the pushed error stops start-up.
        pecr_contracts::Budget {
            max_operator_calls: 0,
            max_bytes: 0,
            max_wallclock_ms: 0,
            max_recursion_depth: 0,
            max_parallelism: None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_config::MapSource;

    const LEDGER_TOKEN: &str = "gateway-token-for-the-config-tests-000";

    fn load(pairs: &[(&str, &str)]) -> Result<Config, Vec<&'static str>> {
        let mut all = vec![
            ("PECR_DB_URL", "postgres://postgres@127.0.0.1:5432/pecr"),
            ("PECR_LEDGER_TOKEN", LEDGER_TOKEN),
        ];
        all.extend_from_slice(pairs);
        Config::from_source(&MapSource::from_pairs(all.iter().copied()))
            .map_err(|errors| errors.0.into_iter().map(|e| e.code).collect())
    }

    #[test]
    fn defaults_load() {
        let config = load(&[]).expect("defaults are valid");
        assert_eq!(config.http_addr.port(), 8080);
        assert_eq!(config.coverage_threshold, 0.95);
        assert!(config.remote_opa.is_none());
        assert!(!config.metrics_require_auth);
    }

    #[test]
    fn cors_origins_default_to_none_and_bad_ones_are_refused() {
        assert_eq!(
            load(&[]).expect("defaults").cors,
            pecr_edge::CorsOrigins::None
        );
        let config = load(&[(
            "PECR_CORS_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )])
        .expect("two origins");
        assert_eq!(
            config.cors,
            pecr_edge::CorsOrigins::List(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:3000".to_owned()
            ])
        );
        for bad in [
            "*, https://a.example",
            "app.example.com",
            "https://a.example/",
        ] {
            assert_eq!(
                load(&[("PECR_CORS_ALLOWED_ORIGINS", bad)]).err(),
                Some(vec!["ERR_INVALID_CONFIG"]),
                "{bad}"
            );
        }
    }

    #[test]
    fn mcp_settings_default_to_a_bounded_budget_on_loopback_hosts() {
        let config = load(&[]).expect("defaults");
        assert_eq!(config.mcp_budget.max_operator_calls, 50);
        assert_eq!(config.mcp_allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
        let any = load(&[("PECR_MCP_ALLOWED_HOSTS", "*")]).expect("any host");
        assert!(any.mcp_allowed_hosts.is_empty());
        for (key, bad) in [
            ("PECR_MCP_SESSION_BUDGET", "{}"),
            (
                "PECR_MCP_SESSION_BUDGET",
                r#"{"max_operator_calls":10001,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
            ),
            ("PECR_MCP_ALLOWED_HOSTS", "http://gw"),
        ] {
            assert!(load(&[(key, bad)]).is_err(), "{key}={bad}");
        }
    }

    #[test]
    fn scenario_1_2_bind_rule() {
        assert_eq!(
            load(&[("PECR_BIND_ADDR", "0.0.0.0:8080")]).err(),
            Some(vec!["ERR_NONLOCAL_BIND_REQUIRES_AUTH"])
        );
        let config = load(&[
            ("PECR_BIND_ADDR", "0.0.0.0:8080"),
            ("PECR_GATEWAY_GRPC_ADDR", "0.0.0.0:50051"),
            ("PECR_DEV_ALLOW_NONLOCAL_BIND", "1"),
            ("PECR_LOCAL_AUTH_SHARED_SECRET", "dev-secret"),
        ])
        .expect("allowed with override and secret");
        assert_eq!(
            config.front_door.shared_secret.as_deref(),
            Some("dev-secret")
        );
        assert!(
            config.metrics_require_auth,
            "metrics need auth on a non-loopback bind"
        );
    }

    #[test]
    fn scenario_3_config_errors() {
        assert_eq!(
            load(&[("PECR_POLICY_BUNDLE_HASH", "not-a-hash")]).err(),
            Some(vec!["ERR_INVALID_POLICY_BUNDLE_HASH"])
        );
        let missing_db = Config::from_source(&MapSource::default())
            .err()
            .map(|e| e.0[0].code);
        assert_eq!(missing_db, Some("ERR_MISSING_CONFIG"));
        for (key, value) in [
            ("PECR_OPA_RETRY_MAX_ATTEMPTS", "11"),
            ("PECR_OPA_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0"),
        ] {
            let errors = load(&[
                ("PECR_OPA_URL", "http://127.0.0.1:8181"),
                ("PECR_POLICY_BUNDLE_HASH", &"a".repeat(64)),
                (key, value),
            ])
            .err();
            assert_eq!(errors, Some(vec!["ERR_INVALID_CONFIG"]), "{key}={value}");
        }
        assert_eq!(
            load(&[("PECR_COVERAGE_THRESHOLD", "1.5")]).err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
        assert_eq!(
            load(&[("PECR_AS_OF_TIME_DEFAULT", "2026-13-01T00:00:00Z")]).err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
    }

    #[test]
    fn ledger_writer_needs_a_credential() {
        let config = load(&[]).expect("defaults are valid");
        assert_eq!(
            config
                .ledger_token
                .as_ref()
                .map(pecr_config::Secret::expose),
            Some(LEDGER_TOKEN)
        );
        assert!(!format!("{config:?}").contains(LEDGER_TOKEN));
        let without = Config::from_source(&MapSource::from_pairs([(
            "PECR_DB_URL",
            "postgres://postgres@127.0.0.1:5432/pecr",
        )]))
        .err()
        .map(|errors| errors.0);
        let message = without
            .as_deref()
            .and_then(|errors| {
                errors
                    .iter()
                    .find(|e| e.message.contains("PECR_LEDGER_TOKEN"))
            })
            .map(|e| (e.code, e.message.clone()));
        assert!(
            matches!(&message, Some(("ERR_MISSING_CONFIG", m)) if m.contains("authenticates its callers")),
            "{message:?}"
        );
        assert_eq!(
            load(&[("PECR_LEDGER_TOKEN", "short")]).err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
    }

    #[test]
    fn remote_opa_needs_an_explicit_bundle_hash() {
        assert_eq!(
            load(&[("PECR_OPA_URL", "http://127.0.0.1:8181")]).err(),
            Some(vec!["ERR_MISSING_CONFIG"])
        );
    }
}

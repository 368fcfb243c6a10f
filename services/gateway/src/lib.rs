//! pecr-gateway: the privileged governance plane. Serves
//! `pecr.v1.GatewayService` over gRPC and, in-process, the REST edge built
//! from the same protos on `PECR_BIND_ADDR`.

mod config;
mod core;
mod env;
mod events;
mod ledger;
mod mcp;
mod metrics;
mod operators;
mod replay;
mod search_cache;
mod service;
mod session_access;
mod session_locks;
mod session_state;
mod validate;
mod version_store;

use std::sync::Arc;
use std::time::Duration;

use pecr_adapters::{Adapters, AdaptersConfig};
use pecr_config::{EnvSource, StartupError, StartupErrors};
use pecr_policy::{PolicyConfig, PolicyEngine, PolicyStartupError, RemoteOpaConfig};
use pecr_proto::v1::gateway_service_server::GatewayServiceServer;
use pecr_server::{BoundService, MetricsGuard, Readiness, ServeSpec, Service};
use tonic::transport::Channel;

pub use config::{Config, VersionStoreKind};
pub use ledger::Ledger;
pub use version_store::{Caps as VersionCaps, LedgerVersionStore, MAX_SENT_BYTES};

/// Sessions whose credentials a replica keeps at hand.
const SESSION_CREDENTIALS_CACHED: u64 = 100_000;
/// Open sessions whose last known state a replica keeps at hand.
const SESSION_STATES_CACHED: u64 = 10_000;

/// Floor of the per-session lock wait (spec 20 §3.3).
const MIN_LOCK_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest REST body accepted (spec 20 §1.5).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A bound gateway with its dependencies connected.
pub struct App {
    bound: BoundService,
    ledger_channel: Channel,
    core: Arc<core::Gateway>,
    api_parts: (
        pecr_auth::Authenticator,
        config::RateLimits,
        pecr_config::Admission,
    ),
    metrics_require_auth: bool,
    cors: pecr_edge::CorsOrigins,
    mcp: mcp::McpParts,
}

fn policy_config(config: &Config) -> PolicyConfig {
    PolicyConfig {
        bundle_dir: config.policy_bundle_dir.clone(),
        expected_bundle_hash: config.policy_bundle_hash.clone(),
        remote: config.remote_opa.as_ref().map(|opa| RemoteOpaConfig {
            url: opa.url.clone(),
            timeout_ms: opa.timeout_ms,
            retry_max_attempts: opa.retry_max_attempts,
            retry_base_backoff_ms: opa.retry_base_backoff_ms,
            breaker_failure_threshold: opa.breaker_failure_threshold,
            breaker_open_ms: opa.breaker_open_ms,
        }),
        cache_max_entries: config.cache_max_entries,
        cache_ttl_ms: config.cache_ttl_ms,
    }
}

fn adapters_config(config: &Config) -> AdaptersConfig {
    let sources = &config.sources;
    AdaptersConfig {
        fs_corpus_path: sources.fs_corpus_path.clone(),
        fs_version_cache_max_bytes: sources.fs_version_cache_max_bytes,
        fs_version_cache_max_total_bytes: sources.fs_version_cache_max_total_bytes,
        fs_version_cache_max_versions_per_object: sources.fs_version_cache_max_versions_per_object
            as usize,
        fs_diff_max_bytes: sources.fs_diff_max_bytes,
        pg_query_timeout_ms: sources.pg_query_timeout_ms,
        pg_max_rows: sources.pg_max_rows,
        pg_max_fields: sources.pg_max_fields as usize,
        pg_max_groups: sources.pg_max_groups,
        search_index_ttl_ms: config.cache_ttl_ms,
        search_index_watch: sources.fs_corpus_watch,
    }
}

/// The adapters with the configured version stores: files and row
/// snapshots, each its own store under the same caps.
async fn connect_adapters(
    config: &Config,
    ledger: &ledger::Ledger,
) -> Result<Adapters, StartupError> {
    let adapters = adapters_config(config);
    match config.sources.version_store {
        VersionStoreKind::Memory => Adapters::connect(adapters, &config.db_url).await,
        VersionStoreKind::Ledger => {
            let caps = VersionCaps {
                max_bytes: config.sources.fs_version_cache_max_bytes,
                max_total_bytes: config.sources.fs_version_cache_max_total_bytes,
                max_versions_per_object: config.sources.fs_version_cache_max_versions_per_object,
            };
            let store = |name: &str| -> Arc<dyn pecr_adapters::VersionStore> {
                Arc::new(LedgerVersionStore::new(ledger.clone(), name, caps))
            };
            Adapters::connect_with_stores(adapters, &config.db_url, store("files"), store("rows"))
                .await
        }
    }
}

/// Start-up codes for policy failures: a bundle that is not the one
/// configured is a bundle-hash error, an unusable OPA client is
/// `ERR_OPA_UNAVAILABLE`, anything else a configuration error.
fn policy_startup_error(err: PolicyStartupError) -> StartupError {
    let code = match &err {
        PolicyStartupError::BundleHashMismatch { .. } => "ERR_INVALID_POLICY_BUNDLE_HASH",
        PolicyStartupError::InvalidOpaUrl { .. } => "ERR_OPA_UNAVAILABLE",
        _ => "ERR_INVALID_CONFIG",
    };
    StartupError::new(code, err.to_string())
}

impl Service for App {
    type Config = Config;
    const BINARY: &'static str = "pecr-gateway";

    fn config(source: &dyn EnvSource) -> Result<Config, StartupErrors> {
        Config::from_source(source)
    }

    fn bound(&self) -> &BoundService {
        &self.bound
    }

    async fn bind(config: Config) -> Result<Self, StartupError> {
        // In OIDC mode this loads the JWKS; failing it stops start-up.
        let auth = pecr_auth::Authenticator::from_front_door(&config.front_door).await?;
        let policy = PolicyEngine::new(policy_config(&config)).map_err(policy_startup_error)?;
        let policy_bundle_hash = match (&config.policy_bundle_hash, policy.bundle_hash()) {
            (Some(configured), _) => configured.clone(),
            (None, Some(loaded)) => loaded.to_owned(),
            (None, None) => {
                return Err(StartupError::new(
                    "ERR_MISSING_CONFIG",
                    "PECR_POLICY_BUNDLE_HASH is required",
                ));
            }
        };
        let ledger_channel =
            pecr_server::lazy_channel(env::LEDGER_URL, &config.ledger_url, &config.client_tls)?;
        let ledger = ledger::Ledger::new(
            ledger_channel.clone(),
            config
                .ledger_token
                .as_ref()
                .map(pecr_config::Secret::expose),
            config.ledger_write_timeout,
        );
        let adapters = connect_adapters(&config, &ledger).await?;
        let metrics = metrics::GatewayMetrics::new()
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("metrics: {err}")))?;
        let core = Arc::new(core::Gateway {
            settings: core::Settings {
                policy_bundle_hash,
                as_of_time_default: config.as_of_time_default.clone(),
                session_token_ttl: config.session_token_ttl,
                lock_timeout: config.ledger_write_timeout.max(MIN_LOCK_TIMEOUT),
                coverage_threshold: config.coverage_threshold,
                store_evidence_content: config.store_evidence_content,
            },
            policy,
            adapters,
            ledger,
            metrics,
            locks: session_locks::SessionLocks::default(),
            credentials: session_access::CredentialCache::new(
                SESSION_CREDENTIALS_CACHED,
                config.session_token_ttl,
            ),
            sessions: session_state::SessionStates::new(SESSION_STATES_CACHED),
            search_cache: search_cache::SearchCache::new(
                config.cache_max_entries,
                config.cache_ttl_ms,
            ),
        });
        let bound = BoundService::bind(config.grpc_addr, config.http_addr)
            .await?
            .with_tls(config.server_tls);
        let mcp = mcp::McpParts {
            core: Arc::clone(&core),
            auth: auth.clone(),
            budget: config.mcp_budget,
            allowed_hosts: config.mcp_allowed_hosts,
        };
        Ok(Self {
            bound,
            ledger_channel,
            core,
            api_parts: (auth, config.rate_limits, config.admission),
            metrics_require_auth: config.metrics_require_auth,
            cors: config.cors,
            mcp,
        })
    }

    async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (auth, limits, admission) = self.api_parts;
        let in_process = mcp::routes(self.mcp)?;
        let core = Arc::clone(&self.core);
        let postgres_core = Arc::clone(&self.core);
        let policy_core = Arc::clone(&self.core);
        let readiness = Readiness::new()
            .with_upstream(
                "ledger",
                self.ledger_channel,
                pecr_proto::service_names::LEDGER,
            )
            .with_check("postgres", move || {
                let core = Arc::clone(&postgres_core);
                async move { core.adapters.ping_db(Duration::from_millis(200)).await }
            })
            .with_check("opa", move || {
                let core = Arc::clone(&policy_core);
                async move { core.policy.ready().await }
            });
        let metrics_guard: Option<MetricsGuard> = self
            .metrics_require_auth
            .then(|| pecr_server::metrics_guard(auth.clone()));
        let registry = core.metrics.registry();
        let limiter = Arc::new(pecr_server::RateLimiter::new(limits.window));
        let rate_limits =
            pecr_server::RateLimits::new(Arc::clone(&limiter), service::rate_rules(&limits));
        let api = service::GatewayApi {
            core,
            limiter,
            limits,
        };
        let spec = ServeSpec {
            service_name: pecr_proto::service_names::GATEWAY,
            routes: tonic::service::Routes::new(GatewayServiceServer::new(api)),
            readiness,
            registry,
            rest: Some(pecr_edge::EdgeConfig {
                max_body_bytes: MAX_BODY_BYTES,
                cors: self.cors,
                ..pecr_edge::EdgeConfig::default()
            }),
            pages: None,
            in_process: Some(in_process),
            metrics_guard,
            callers: None,
            principals: Some(auth),
            rate_limits,
            route_series: Some(pecr_server::RouteSeries {
                prefix: "pecr_gateway",
                terminal_mode_routes: &["/v1/operators", "/v1/finalize"],
            }),
            admission,
        };
        self.bound.serve(spec, shutdown).await
    }
}

//! pecr-controller: the non-privileged orchestrator. Serves
//! `pecr.v1.ControllerService` over gRPC and, in-process, the REST edge on
//! `PECR_CONTROLLER_BIND_ADDR`. Its only privileged paths are the gateway's
//! gRPC API and ledger-writer's replay/evaluation RPCs.

mod answer;
mod budget_gate;
mod config;
mod console;
mod convert;
mod engine;
mod env;
mod evaluation;
mod evidence;
mod fallback;
mod gateway_client;
mod mcp;
mod metrics;
mod plan;
mod progress;
mod replay_store;
mod run;
mod service;
mod validate;
mod verification;
mod view_rows;

use std::sync::Arc;
use std::time::Duration;

use pecr_config::{EnvSource, StartupError, StartupErrors};
use pecr_proto::v1::controller_service_server::ControllerServiceServer;
use pecr_server::{BoundService, MetricsGuard, Readiness, ServeSpec, Service};
use tonic::transport::Channel;
use tracing::warn;

pub use config::Config;

/// Largest REST body accepted (spec 30 §1.2).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// How often old replays and evaluations are pruned.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// A bound pecr-controller, ready to serve.
pub struct App {
    bound: BoundService,
    gateway: Channel,
    api: service::ControllerApi,
    retention_days: u32,
    metrics_require_auth: bool,
    cors: pecr_edge::CorsOrigins,
    rate_limits: pecr_server::RateLimits,
    admission: pecr_config::Admission,
    mcp: mcp::McpParts,
}

impl Service for App {
    type Config = Config;
    const BINARY: &'static str = "pecr-controller";

    fn config(source: &dyn EnvSource) -> Result<Config, StartupErrors> {
        Config::from_source(source)
    }

    fn bound(&self) -> &BoundService {
        &self.bound
    }

    async fn bind(config: Config) -> Result<Self, StartupError> {
        // In OIDC mode this loads the JWKS; failing it stops start-up (spec 30 §2.3).
        let auth = pecr_auth::Authenticator::from_front_door(&config.front_door).await?;
        let gateway =
            pecr_server::lazy_channel(env::GATEWAY_URL, &config.gateway_url, &config.client_tls)?;
        let ledger =
            pecr_server::lazy_channel(env::LEDGER_URL, &config.ledger_url, &config.client_tls)?;
        let store = replay_store::ReplayStore::new(
            &config.replay.backend,
            ledger,
            config
                .ledger_token
                .as_ref()
                .map(pecr_config::Secret::expose),
            config.gateway_timeout,
        );
        store.init().map_err(|err| {
            StartupError::new(
                "ERR_REPLAY_STORE_INIT",
                format!("cannot create the replay store: {err}"),
            )
        })?;
        let metrics = metrics::ControllerMetrics::new()
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("metrics: {err}")))?;
        let runner = Arc::new(run::Runner {
            settings: run::RunSettings {
                engine: config.engine,
                budget_defaults: config.budget_defaults,
                plan: config.plan,
                adaptive_parallelism: config.adaptive_parallelism,
                batch_mode: config.batch_mode,
                operator_policies: config.operator_policies,
                shared_secret: config.front_door.shared_secret.clone(),
            },
            fallback: fallback::EngineFallback::new(config.auto_fallback_after),
            gateway: gateway_client::GatewayClient::new(gateway.clone(), config.gateway_timeout),
            store,
            metrics,
        });
        let api = service::ControllerApi {
            runner,
            auth,
            list_limit: config.replay.list_limit,
        };
        let rate_limits = pecr_server::RateLimits::new(
            Arc::new(pecr_server::RateLimiter::new(config.rate_limits.window)),
            service::rate_rules(&config.rate_limits),
        );
        let bound = BoundService::bind(config.grpc_addr, config.http_addr)
            .await?
            .with_tls(config.server_tls);
        let mcp = mcp::McpParts {
            auth: api.auth.clone(),
            allowed_hosts: config.mcp_allowed_hosts,
            max_body_bytes: MAX_BODY_BYTES,
        };
        Ok(Self {
            bound,
            gateway,
            api,
            retention_days: config.replay.retention_days,
            metrics_require_auth: config.metrics_require_auth,
            cors: config.cors,
            rate_limits,
            admission: config.admission,
            mcp,
        })
    }

    /// Serves gRPC, the REST edge and the admin endpoints until `shutdown` resolves.
    async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let readiness = Readiness::new()
            .with_check("auth", || async { true })
            .with_upstream("gateway", self.gateway, pecr_proto::service_names::GATEWAY);
        let metrics_guard: Option<MetricsGuard> = self
            .metrics_require_auth
            .then(|| pecr_server::metrics_guard(self.api.auth.clone()));
        spawn_retention(self.api.runner.store.clone(), self.retention_days);
        let registry = self.api.runner.metrics.registry();
        let principals = self.api.auth.clone();
        let in_process = mcp::routes(self.mcp)?;
        let spec = ServeSpec {
            service_name: pecr_proto::service_names::CONTROLLER,
            routes: tonic::service::Routes::new(ControllerServiceServer::new(self.api)),
            readiness,
            registry,
            rest: Some(pecr_edge::EdgeConfig {
                max_body_bytes: MAX_BODY_BYTES,
                cors: self.cors,
                ..pecr_edge::EdgeConfig::default()
            }),
            pages: Some(console::router()),
            in_process: Some(in_process),
            metrics_guard,
            callers: None,
            principals: Some(principals),
            rate_limits: self.rate_limits,
            route_series: Some(pecr_server::RouteSeries {
                prefix: "pecr_controller",
                terminal_mode_routes: &["/v1/run"],
            }),
            admission: self.admission,
        };
        self.bound.serve(spec, shutdown).await
    }
}

/// Prunes expired replays and evaluations now and then every hour, off the
/// request path, so no run waits for a cleanup.
fn spawn_retention(store: replay_store::ReplayStore, retention_days: u32) {
    if retention_days == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RETENTION_INTERVAL);
        loop {
            ticks.tick().await;
            if let Err(err) = store.prune(retention_days).await {
                warn!(event = "controller.replay_prune_failed", error = %err.message, "replay retention failed");
            }
        }
    });
}

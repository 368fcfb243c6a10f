//! What every PECR service needs to be hosted, and nothing more:
//!
//! - **Hosting**: bound listeners for the gRPC and admin ports
//!   ([`ServeSpec`], [`BoundService`], [`run`]), gRPC health and reflection,
//!   the admin HTTP routes `/healthz`, `/readyz` and `/metrics` (optionally
//!   behind the API's credentials), the readiness both report, graceful
//!   shutdown.
//! - **TLS**: mesh TLS from PEM paths, for the served gRPC port and for the
//!   channels to other services ([`tls`], [`endpoint`], [`lazy_channel`]).
//! - **Telemetry**: JSON logs, OTLP span export and W3C trace context
//!   ([`telemetry`]).
//! - **Connection limits**: time limits that keep slow or silent clients
//!   from holding a connection ([`conn_limits`]).
//! - **The request stack** every call passes, gRPC and REST alike
//!   ([`stack`]): trace context, request id, metrics, admission,
//!   authentication, per-principal rate limits.
//! - **Rate limiting**: per-key sliding windows ([`RateLimiter`]).
//! - **Service callers**: which service is calling and which RPCs it may
//!   call ([`ServiceCallers`]), and the token a service presents to an
//!   upstream that knows its callers ([`credentialed`]).

mod admin;
pub mod conn_limits;
mod cors_config;
mod host;
mod http_serve;
mod metrics_guard;
mod rate_limit;
mod readiness;
mod run;
mod service_callers;
pub mod stack;
pub mod telemetry;
pub mod tls;
mod upstream;

pub use admin::{METRICS_CONTENT_TYPE, MetricsGuard, admin_router};
pub use cors_config::{CORS_ALLOWED_ORIGINS, read_cors_origins};
pub use host::{BoundService, InProcessGrpc, InProcessRoutes, ServeSpec, shutdown_signal};
pub use metrics_guard::metrics_guard;
pub use rate_limit::RateLimiter;
pub use readiness::{Readiness, ReadinessCheck, ReadinessReport};
pub use run::{Service, run};
pub use service_callers::{Methods, ServiceCallers};
pub use stack::{
    Authentication, RateLimits, RateRule, RequestId, RequestStack, RouteSeries, principal,
    rate_limited,
};
pub use telemetry::{TraceContextLayer, TracedChannel, server_traced, traced};
pub use tls::{AllowedClients, ClientTls, ServerTls};
pub use upstream::{
    Credentialed, credentialed, endpoint, lazy_channel, probe_health, read_upstream_token,
};

use pecr_config::StartupErrors;

/// JSON logs filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let _ = init_logging_for(None);
}

/// JSON logs as [`init_logging`], plus OTLP span export named after
/// `binary` when `PECR_OTEL_ENABLED` is true (see [`telemetry`]). Logs are
/// installed either way; an unusable export setting is returned for
/// start-up to report with the other configuration errors.
pub fn init_logging_for(binary: Option<&str>) -> Result<(), pecr_config::StartupError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let (tracer, error) = match binary.map(telemetry::init).transpose() {
        Ok(tracer) => (tracer.flatten(), None),
        Err(error) => (None, Some(error)),
    };
    let otel = tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        )
        .with(otel)
        .try_init();
    error.map_or(Ok(()), Err)
}

/// Prints each start-up error as `STARTUP_ERROR <CODE>: <message>` on
/// stderr and exits with status 1.
pub fn exit_with(errors: impl Into<StartupErrors>) -> ! {
    eprintln!("{}", errors.into());
    std::process::exit(1)
}

/// A metrics registry that already carries `pecr_build_info{service,version}`
/// and, on Linux, the process's own `process_*` metrics (CPU, memory, file
/// descriptors, start time).
pub fn new_registry(service: &str) -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    #[cfg(target_os = "linux")]
    let _ = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
    let opts = prometheus::Opts::new("pecr_build_info", "Build of the running PECR service")
        .const_label("service", service)
        .const_label("version", env!("CARGO_PKG_VERSION"));
    if let Ok(info) = prometheus::IntGauge::with_opts(opts) {
        info.set(1);
        let _ = registry.register(Box::new(info));
    }
    registry
}

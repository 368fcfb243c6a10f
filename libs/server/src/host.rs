//! Binding and serving one PECR service: its gRPC port (the service itself,
//! health, reflection v1 and v1alpha; TLS and client certificates when
//! configured) and its admin HTTP port (always plaintext).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pecr_config::{Admission, StartupError};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use tokio_stream::StreamExt as _;

use crate::conn_limits;
use crate::stack::{
    AdmissionLayer, Authentication, RateLimits, RequestStack, RouteSeries, RpcMetrics,
};
use crate::{AllowedClients, Methods, Readiness, ServerTls, ServiceCallers, admin_router};
use tower::Layer as _;

/// How often gRPC health follows readiness.
const HEALTH_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// What a service hands over to be served.
pub struct ServeSpec {
    /// Fully qualified gRPC service name, e.g. `pecr.v1.LedgerService`.
    pub service_name: &'static str,
    /// The service's own gRPC routes.
    pub routes: Routes,
    pub readiness: Readiness,
    pub registry: Registry,
    /// When set, the HTTP port also serves the service's REST routes (its
    /// `google.api.http` annotations) through the same request stack.
    pub rest: Option<pecr_edge::EdgeConfig>,
    /// Static pages the HTTP port serves beside the admin endpoints and the
    /// REST edge (the controller's browser console). Their paths must not
    /// overlap either; they pass no request stack, so they may only serve
    /// what anyone who reaches the port may read.
    pub pages: Option<axum::Router>,
    /// HTTP routes that call the service's own gRPC stack in-process (the
    /// MCP server at `/mcp`), built from the same stacked service the REST
    /// edge calls, so every call they make passes the same layers. Their
    /// paths must not overlap the other routes'.
    pub in_process: Option<InProcessRoutes>,
    /// When set, `/metrics` answers only requests this guard lets through.
    pub metrics_guard: Option<crate::MetricsGuard>,
    /// Which services may call the gRPC port, and what. None: anyone who
    /// reaches the port, or, with client certificates and an allowlist,
    /// the listed identities.
    pub callers: Option<ServiceCallers>,
    /// How the end users the service acts for are authenticated (gateway
    /// and controller); None for services only services call.
    pub principals: Option<pecr_auth::Authenticator>,
    pub rate_limits: RateLimits,
    /// The spec's REST-route metric series, for services with a REST edge.
    pub route_series: Option<RouteSeries>,
    pub admission: Admission,
}

/// The service's gRPC stack (every layer, then the service) as a client
/// channel, for HTTP routes that call it in-process.
pub type InProcessGrpc = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

/// Builds routes on the service's own gRPC stack; see [`ServeSpec::in_process`].
/// The receiver turns true when the service stops, so routes that hold
/// streams open (MCP sessions) can end them before the HTTP port drains.
pub type InProcessRoutes =
    Box<dyn FnOnce(InProcessGrpc, watch::Receiver<bool>) -> axum::Router + Send>;

/// Listeners bound before anything is served, so callers (and tests that
/// pass port 0) learn the real addresses first.
pub struct BoundService {
    grpc: TcpListener,
    http: TcpListener,
    tls: Option<ServerTls>,
}

impl BoundService {
    /// Binds both listeners; failure is `ERR_BIND_FAILED`.
    pub async fn bind(grpc_addr: SocketAddr, http_addr: SocketAddr) -> Result<Self, StartupError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|err| {
                StartupError::new("ERR_BIND_FAILED", format!("cannot bind {addr}: {err}"))
            })
        };
        Ok(Self {
            grpc: bind(grpc_addr).await?,
            http: bind(http_addr).await?,
            tls: None,
        })
    }

    /// Serves the gRPC port over TLS when `tls` is set (see [`ServerTls`]);
    /// None keeps it plaintext.
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The line a launcher (dev-up, tests) reads to learn the addresses.
    pub fn listening_line(&self, binary: &str) -> String {
        format!(
            "PECR_LISTENING {binary} grpc={} http={}",
            self.grpc_addr(),
            self.http_addr()
        )
    }

    /// Serves until `shutdown` resolves; failure is `ERR_SERVER_FAILED`.
    pub async fn serve(
        self,
        spec: ServeSpec,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(spec.service_name, ServingStatus::NotServing)
            .await;
        tokio::spawn(sync_health(
            reporter,
            spec.readiness.clone(),
            spec.service_name,
            stop_rx.clone(),
        ));

        let reflection_v1 = reflection(spec.service_name, "grpc.reflection.v1.ServerReflection")
            .build_v1()
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("reflection: {err}")))?;
        // Older grpcurl and ghz builds only speak v1alpha.
        let reflection_v1alpha = reflection(
            spec.service_name,
            "grpc.reflection.v1alpha.ServerReflection",
        )
        .build_v1alpha()
        .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("reflection: {err}")))?;

        let mut callers = spec.callers;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.tonic_config()).map_err(|err| {
                StartupError::invalid(format!("gRPC TLS: {}", crate::tls::error_chain(&err)))
            })?;
            if callers.is_none()
                && let Some(AllowedClients::Only(names)) = tls.allowed_clients()
            {
                let allowed: Vec<(String, Methods)> = names
                    .iter()
                    .map(|name| (name.clone(), Methods::All))
                    .collect();
                callers = Some(ServiceCallers::by_certificate(spec.service_name, &allowed));
            }
            tracing::info!(
                client_certificates = tls.allowed_clients().is_some(),
                allowed_clients = %tls.allowed_clients().map(ToString::to_string).unwrap_or_default(),
                "gRPC serves TLS"
            );
        }
        // One decoding of the descriptor set labels the metrics and routes the edge.
        let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).map_err(
            |err| StartupError::new("ERR_SERVER_FAILED", format!("descriptor set: {err}")),
        )?;
        let metrics = RpcMetrics::new(&spec.registry, &pool, spec.service_name, spec.route_series)
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("metrics: {err}")))?;
        let stack = RequestStack {
            metrics,
            admission: AdmissionLayer::new(spec.admission),
            authentication: Authentication {
                services: callers,
                principals: spec.principals,
            },
            rate_limits: spec.rate_limits,
        };
        let in_process = spec.in_process.map(|build| {
            let stacked = InProcessGrpc::new(stack.layer(spec.routes.clone()));
            build(stacked, stop_rx.clone())
        });
        let rest = spec
            .rest
            .map(|config| {
                let stacked = stack.layer(spec.routes.clone());
                pecr_edge::router(&pool, &[spec.service_name], stacked, config).map_err(|err| {
                    StartupError::new("ERR_SERVER_FAILED", format!("REST edge: {err}"))
                })
            })
            .transpose()?;
        let routes = spec
            .routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        // Peers that stop answering pings are dropped (conn_limits).
        builder = builder
            .http2_keepalive_interval(Some(conn_limits::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(conn_limits::KEEPALIVE_TIMEOUT));
        // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms per hop; a
        // connection must send its preface within HANDSHAKE_TIMEOUT.
        let incoming = TcpIncoming::from(self.grpc)
            .with_nodelay(Some(true))
            .map(|accepted| accepted.map(conn_limits::HandshakeDeadline::new));
        let grpc = builder
            // A request body must arrive within BODY_READ_TIMEOUT.
            .layer(conn_limits::BodyDeadlineLayer)
            // Everything else: the request stack (see `stack`).
            .layer(stack)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));
        let mut http_router = admin_router(spec.readiness, spec.registry, spec.metrics_guard);
        if let Some(rest) = rest {
            http_router = http_router.merge(rest);
        }
        for (what, routes) in [
            ("HTTP pages", spec.pages),
            ("in-process routes", in_process),
        ] {
            let Some(routes) = routes else { continue };
            // axum panics on a path both routers serve; that is a bug in the
            // service, reported as a start-up error rather than a crash.
            let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                http_router.merge(routes)
            }));
            http_router = merged.map_err(|_| {
                StartupError::new(
                    "ERR_SERVER_FAILED",
                    format!("{what}: a path is also served by another router of the HTTP port"),
                )
            })?;
        }
        // TCP_NODELAY and the head, body and idle limits of conn_limits.
        let http = crate::http_serve::serve(self.http, http_router, stopped(stop_rx));

        let (grpc_result, http_result) = tokio::join!(grpc, http);
        grpc_result
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("gRPC server: {err}")))?;
        http_result
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("HTTP server: {err}")))?;
        Ok(())
    }
}

/// Reflection that describes every PECR type but lists only what this
/// port serves: the service itself, health, and the reflection protocol the
/// client speaks (each protocol can describe only its own descriptor).
fn reflection(
    service_name: &'static str,
    reflection_name: &'static str,
) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pecr_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(service_name)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name(reflection_name)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Keeps `grpc.health.v1` SERVING exactly while readiness passes.
async fn sync_health(
    reporter: HealthReporter,
    readiness: Readiness,
    service_name: &'static str,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let status = if readiness.evaluate().await.ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter.set_service_status(service_name, status).await;
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_SYNC_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are registered when
/// this is called, so call it before announcing the service: a signal that
/// arrives early is then still a clean shutdown, not the default kill.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let interrupted = async {
            match interrupt.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = terminated => {}
            _ = interrupted => {}
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! Layer 3: metrics. Every call that reaches a port is counted when it
//! ends, whoever refuses it, in two families:
//!
//! - `grpc_server_started_total`, `grpc_server_handled_total` (with
//!   `grpc_code`) and `grpc_server_handling_seconds`, labelled by
//!   `grpc_type`, `grpc_service` and `grpc_method`: the gRPC convention
//!   dashboards and alerts expect;
//! - for services with a REST edge, the spec's `<prefix>_http_*` series,
//!   labelled by the REST route the RPC is annotated with, so gRPC and REST
//!   callers show up in the same series.
//!
//! Label values are closed sets: the methods of the descriptor set, or
//! `unknown`. A handler says which terminal mode it answered by putting a
//! [`TerminalMode`] in its response's extensions.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pecr_errors::PecrError;
use pecr_proto::v1::TerminalMode;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use prost_reflect::DescriptorPool;
use tonic::Code;

use super::ResponseFuture;
use super::paths::service_and_method;

const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which REST-route series a service keeps, and for which routes it counts
/// terminal modes.
#[derive(Debug, Clone, Copy)]
pub struct RouteSeries {
    /// e.g. `pecr_gateway`, giving `pecr_gateway_http_requests_total`.
    pub prefix: &'static str,
    pub terminal_mode_routes: &'static [&'static str],
}

/// The labels of one RPC.
#[derive(Debug)]
struct MethodLabels {
    kind: &'static str,
    service: String,
    method: String,
    route: Option<RouteLabels>,
}

#[derive(Debug)]
struct RouteLabels {
    /// The annotated path without its trailing variables: `/v1/operators`.
    route: String,
    verb: String,
    terminal_modes: bool,
}

struct RouteFamily {
    requests: IntCounterVec,
    durations: HistogramVec,
    terminal_modes: IntCounterVec,
}

struct Families {
    started: IntCounterVec,
    handled: IntCounterVec,
    handling: HistogramVec,
    routes: Option<RouteFamily>,
}

/// The metrics layer of one service.
#[derive(Clone)]
pub struct RpcMetrics {
    families: Arc<Families>,
    methods: Arc<HashMap<String, Arc<MethodLabels>>>,
    unknown: Arc<MethodLabels>,
}

impl RpcMetrics {
    /// Registers the families in `registry`, labelled from the methods of
    /// `service_name` in `pool` (and health and reflection).
    pub fn new(
        registry: &Registry,
        pool: &DescriptorPool,
        service_name: &str,
        routes: Option<RouteSeries>,
    ) -> Result<Self, prometheus::Error> {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let started = IntCounterVec::new(
            Opts::new("grpc_server_started_total", "RPCs started on the server"),
            &labels,
        )?;
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "RPCs completed on the server, by status code",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Time from the start of an RPC to its status",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &labels,
        )?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(handled.clone()))?;
        registry.register(Box::new(handling.clone()))?;
        let route_family = routes
            .map(|series| route_family(registry, series))
            .transpose()?;
        let methods = method_table(pool, service_name, routes)
            .into_iter()
            .map(|(path, labels)| (path, Arc::new(labels)))
            .collect();
        Ok(Self {
            families: Arc::new(Families {
                started,
                handled,
                handling,
                routes: route_family,
            }),
            methods: Arc::new(methods),
            unknown: Arc::new(MethodLabels {
                kind: "unary",
                service: "unknown".to_owned(),
                method: "unknown".to_owned(),
                route: None,
            }),
        })
    }

    fn labels(&self, path: &str) -> Arc<MethodLabels> {
        self.methods
            .get(path)
            .map_or_else(|| Arc::clone(&self.unknown), Arc::clone)
    }
}

fn route_family(
    registry: &Registry,
    series: RouteSeries,
) -> Result<RouteFamily, prometheus::Error> {
    let prefix = series.prefix;
    let requests = IntCounterVec::new(
        Opts::new(
            format!("{prefix}_http_requests_total"),
            "Requests by REST route, method and HTTP status (gRPC calls under their route)",
        ),
        &["route", "method", "status"],
    )?;
    let durations = HistogramVec::new(
        HistogramOpts::new(
            format!("{prefix}_http_request_duration_seconds"),
            "Request latency by REST route",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &["route", "method", "outcome"],
    )?;
    let terminal_modes = IntCounterVec::new(
        Opts::new(
            format!("{prefix}_terminal_modes_total"),
            "Terminal modes answered (or the error's hint)",
        ),
        &["route", "terminal_mode"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(durations.clone()))?;
    registry.register(Box::new(terminal_modes.clone()))?;
    Ok(RouteFamily {
        requests,
        durations,
        terminal_modes,
    })
}

/// Every RPC of `service_name` by path, with its REST route when annotated.
fn method_table(
    pool: &DescriptorPool,
    service_name: &str,
    routes: Option<RouteSeries>,
) -> HashMap<String, MethodLabels> {
    let mut table = HashMap::new();
    // The first binding of an RPC is its route; additional bindings share it.
    let mut rest: HashMap<String, (String, String)> = HashMap::new();
    let bindings = pecr_edge_json::bindings(pool, &[service_name]).unwrap_or_default();
    for binding in bindings {
        rest.entry(binding.grpc_path())
            .or_insert_with(|| (binding.verb.to_string(), binding.template.clone()));
    }
    if let Some(service) = pool.get_service_by_name(service_name) {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let route = routes
                .zip(rest.get(&path))
                .map(|(series, (verb, template))| {
                    let route = route_label(template);
                    RouteLabels {
                        terminal_modes: series.terminal_mode_routes.contains(&route.as_str()),
                        route,
                        verb: verb.clone(),
                    }
                });
            let kind = match (method.is_client_streaming(), method.is_server_streaming()) {
                (false, false) => "unary",
                (false, true) => "server_stream",
                (true, false) => "client_stream",
                (true, true) => "bidi_stream",
            };
            let labels = MethodLabels {
                kind,
                service: service.full_name().to_owned(),
                method: method.name().to_owned(),
                route,
            };
            table.insert(path, labels);
        }
    }
    let open = [
        ("grpc.health.v1.Health", "Check", "unary"),
        ("grpc.health.v1.Health", "Watch", "server_stream"),
        (
            "grpc.reflection.v1.ServerReflection",
            "ServerReflectionInfo",
            "bidi_stream",
        ),
        (
            "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionInfo",
            "bidi_stream",
        ),
    ];
    for (service, method, kind) in open {
        let labels = MethodLabels {
            kind,
            service: service.to_owned(),
            method: method.to_owned(),
            route: None,
        };
        table.insert(format!("/{service}/{method}"), labels);
    }
    table
}

/// `/v1/operators/{op_name}` → `/v1/operators`: one series per route, not
/// per operator name or id.
fn route_label(template: &str) -> String {
    let mut route = template;
    while let Some((head, last)) = route.rsplit_once('/') {
        if !last.starts_with('{') {
            break;
        }
        route = head;
    }
    route.to_owned()
}

/// The code's name as the gRPC convention spells it.
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// One call between its start and its status.
struct Observation {
    metrics: RpcMetrics,
    labels: Arc<MethodLabels>,
    started: Instant,
    terminal_mode: Option<TerminalMode>,
}

impl Observation {
    fn finish(self, status: Option<tonic::Status>, code: Code) {
        let labels = &self.labels;
        let families = &self.metrics.families;
        let names = [labels.kind, labels.service.as_str(), labels.method.as_str()];
        let elapsed = self.started.elapsed().as_secs_f64();
        families
            .handled
            .with_label_values(&[names[0], names[1], names[2], code_label(code)])
            .inc();
        families.handling.with_label_values(&names).observe(elapsed);
        let (Some(family), Some(route)) = (&families.routes, &labels.route) else {
            return;
        };
        let error = status
            .filter(|_| code != Code::Ok)
            .map(|status| PecrError::from_status(&status));
        // What the REST edge answers: the error's own status, 500 for a
        // status without a PECR error.
        let http_status = match &error {
            None => 200,
            Some(error) => error.as_ref().map_or(500, |error| error.http_status),
        };
        family
            .requests
            .with_label_values(&[&route.route, &route.verb, &http_status.to_string()])
            .inc();
        let outcome = if (200..400).contains(&http_status) {
            "success"
        } else {
            "error"
        };
        family
            .durations
            .with_label_values(&[&route.route, &route.verb, outcome])
            .observe(elapsed);
        let mode = match &error {
            None => self.terminal_mode,
            Some(error) => error.as_ref().map(|error| error.hint),
        };
        if let Some(mode) = mode.filter(|_| route.terminal_modes) {
            family
                .terminal_modes
                .with_label_values(&[&route.route, mode.as_str_name()])
                .inc();
        }
    }
}

impl<S> tower::Layer<S> for RpcMetrics {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, B> tower::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let labels = match service_and_method(path) {
            Some(_) => self.metrics.labels(path),
            None => Arc::clone(&self.metrics.unknown),
        };
        self.metrics
            .families
            .started
            .with_label_values(&[labels.kind, &labels.service, &labels.method])
            .inc();
        let mut observation = Observation {
            metrics: self.metrics.clone(),
            labels,
            started: Instant::now(),
            terminal_mode: None,
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            observation.terminal_mode = response.extensions().get::<TerminalMode>().copied();
            // A trailers-only response carries its status in the headers.
            if let Some(status) = tonic::Status::from_header_map(response.headers()) {
                let code = status.code();
                observation.finish(Some(status), code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(ObservedBody {
                    inner: body,
                    observation: Some(observation),
                })
            }))
        })
    }
}

/// A response body that reports the call's status when its trailers pass,
/// or `Canceled` when it is dropped before them (the client went away).
struct ObservedBody {
    inner: tonic::body::Body,
    observation: Option<Observation>,
}

impl ObservedBody {
    fn finish(&mut self, status: Option<tonic::Status>, code: Code) {
        if let Some(observation) = self.observation.take() {
            observation.finish(status, code);
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let status = tonic::Status::from_header_map(trailers);
                    let code = status.as_ref().map_or(Code::Unknown, tonic::Status::code);
                    self.finish(status, code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code();
                self.finish(Some(status.clone()), code);
            }
            Poll::Ready(None) => self.finish(None, Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.finish(None, Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_drop_their_trailing_variables() {
        assert_eq!(route_label("/v1/operators/{op_name}"), "/v1/operators");
        assert_eq!(
            route_label("/v1/evaluations/scorecards"),
            "/v1/evaluations/scorecards"
        );
        assert_eq!(route_label("/v1/run"), "/v1/run");
    }

    #[test]
    fn every_gateway_rpc_has_labels_and_a_route() {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let table = method_table(
            &pool,
            "pecr.v1.GatewayService",
            Some(RouteSeries {
                prefix: "pecr_gateway",
                terminal_mode_routes: &["/v1/operators", "/v1/finalize"],
            }),
        );
        let operator = &table["/pecr.v1.GatewayService/CallOperator"];
        let route = operator.route.as_ref().expect("CallOperator has a route");
        assert_eq!(
            (route.route.as_str(), route.verb.as_str()),
            ("/v1/operators", "POST")
        );
        assert!(route.terminal_modes);
        let sessions = &table["/pecr.v1.GatewayService/CreateSession"];
        assert!(!sessions.route.as_ref().expect("route").terminal_modes);
        assert_eq!(table["/grpc.health.v1.Health/Check"].kind, "unary");
    }
}

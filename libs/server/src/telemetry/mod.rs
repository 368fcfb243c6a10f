//! OTLP trace export and W3C trace context (spec 40 §7.5). Export is off
//! unless `PECR_OTEL_ENABLED` is true; trace context travels either way.
//!
//! When enabled, `tracing` spans are bridged to OpenTelemetry and exported
//! in batches over OTLP/HTTP protobuf or OTLP/gRPC (see [`export`]),
//! configured by the standard variables (`OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, their `_TRACES_` forms,
//! `OTEL_SERVICE_NAME`, `OTEL_BSP_*`). A PECR trace id (a ULID, 128 bits)
//! *is* the OpenTelemetry trace id: the ULID's 16 bytes.
//!
//! Server side, [`TraceContextLayer`] opens one `rpc.server` span per gRPC
//! call (health and reflection excepted) in the run's trace:
//! - a valid `x-pecr-trace-id` names the trace; a `traceparent` in the same
//!   trace becomes the parent;
//! - otherwise a valid `traceparent` names it, and its trace id is written
//!   into `x-pecr-trace-id` (as a ULID) for the service to use;
//! - otherwise a fresh ULID is minted and written into `x-pecr-trace-id`.
//!
//! Client side, [`TracedChannel`] injects `traceparent` into every outgoing
//! call: the current span's when exporting; with export off, the call's
//! remote parent unchanged (see [`carried`]), so a caller's trace still
//! reaches the next hop and the response's trace id.

mod carried;
pub mod export;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The switch, parsed with [`pecr_config::parse_bool`].
pub const OTEL_ENABLED_ENV: &str = "PECR_OTEL_ENABLED";
const TRACE_ID_HEADER: &str = "x-pecr-trace-id";

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// True once [`init`] installed the exporter.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// True when `PECR_OTEL_ENABLED` asks for tracing.
pub fn requested() -> bool {
    std::env::var(OTEL_ENABLED_ENV)
        .ok()
        .and_then(|raw| pecr_config::parse_bool(&raw))
        .unwrap_or(false)
}

/// Builds the exporter and returns the tracer for the bridging layer, or
/// None (disabled, or the exporter could not be built: reported as
/// `STARTUP_ERROR ERR_OTEL_INIT`, and the service runs without export). An
/// unsupported protocol is a configuration error, returned to stop start-up.
pub(crate) fn init(
    binary: &str,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracer>, pecr_config::StartupError> {
    if !requested() {
        return Ok(None);
    }
    let transport = export::transport(|key| std::env::var(key).ok())?;
    let exporter = match export::build(transport) {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("STARTUP_ERROR ERR_OTEL_INIT {err}");
            return Ok(None);
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(binary.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(binary.to_owned());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(tracer))
}

/// Exports what is still queued; called when the service stops.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(err) = provider.shutdown()
    {
        eprintln!("otel shutdown: {err}");
    }
}

/// The span name of an operator call (`operator.unknown` for other names).
pub fn operator_span_name(op_name: &str) -> &'static str {
    match op_name {
        "search" => "operator.search",
        "fetch_span" => "operator.fetch_span",
        "fetch_rows" => "operator.fetch_rows",
        "aggregate" => "operator.aggregate",
        "list_versions" => "operator.list_versions",
        "diff" => "operator.diff",
        "redact" => "operator.redact",
        _ => "operator.unknown",
    }
}

/// The OpenTelemetry trace id of a PECR trace id (a ULID).
pub fn otel_trace_id(ulid: &str) -> Option<TraceId> {
    parse_ulid(ulid).map(|id| TraceId::from_bytes(id.to_bytes()))
}

/// A client's trace id in either accepted spelling (ULID or W3C hex).
fn parse_ulid(raw: &str) -> Option<ulid::Ulid> {
    pecr_contracts::ids::parse_trace_id(raw).and_then(|id| ulid::Ulid::from_string(&id).ok())
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The parent context of a server call, fixing `x-pecr-trace-id` in
/// `headers` so that the service's trace id is the OpenTelemetry one.
fn server_parent(headers: &mut http::HeaderMap) -> Context {
    let remote = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let remote_span = remote.span().span_context().clone();
    let pecr = headers
        .get(TRACE_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_ulid);
    let trace = match pecr {
        Some(id) => {
            // The service reads the canonical spelling.
            if let Ok(value) = http::HeaderValue::from_str(&id.to_string()) {
                headers.insert(TRACE_ID_HEADER, value);
            }
            id
        }
        None => {
            let id = if remote_span.is_valid() {
                ulid::Ulid::from_bytes(remote_span.trace_id().to_bytes())
            } else {
                ulid::Ulid::new()
            };
            if let Ok(value) = http::HeaderValue::from_str(&id.to_string()) {
                headers.insert(TRACE_ID_HEADER, value);
            }
            id
        }
    };
    let trace_id = TraceId::from_bytes(trace.to_bytes());
    if remote_span.is_valid() && remote_span.trace_id() == trace_id {
        return remote;
    }
    // No caller span in this trace: a remote parent that only carries the
    // trace id (its span id is derived from the ULID, never exported).
    let mut span_bytes = [0u8; 8];
    span_bytes.copy_from_slice(&trace.to_bytes()[8..]);
    if span_bytes == [0; 8] {
        span_bytes[7] = 1;
    }
    Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        SpanId::from_bytes(span_bytes),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// Server side: an `rpc.server` span per gRPC call, see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContextService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct TraceContextService<S> {
    inner: S,
}

/// [`TraceContextLayer`] around `inner`, for the in-process routes the REST
/// edge calls, so REST `traceparent` headers are honoured too.
pub fn server_traced<S>(inner: S) -> TraceContextService<S> {
    TraceContextService { inner }
}

impl<S, B, R> tower::Service<http::Request<B>> for TraceContextService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", ""));
        if service.is_empty() || service.starts_with("grpc.") {
            return Box::pin(self.inner.call(request));
        }
        let parent = server_parent(request.headers_mut());
        let span = tracing::info_span!(
            "rpc.server",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        if enabled() {
            let _ = span.set_parent(parent);
        } else {
            carried::keep(&span, parent.span().span_context().clone());
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let response = future.await;
                if let Ok(response) = &response {
                    // Trailers-only errors carry the status in the headers.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse::<i64>().ok())
                        .unwrap_or(0);
                    tracing::Span::current().record("rpc.grpc.status_code", code);
                }
                response
            }
            .instrument(span),
        )
    }
}

/// Client side: `traceparent` on every call (see the module docs).
#[derive(Clone, Debug)]
pub struct TracedChannel<S = tonic::transport::Channel> {
    inner: S,
}

/// Wraps an upstream channel (see [`crate::lazy_channel`]) so that calls
/// carry the caller's trace context.
pub fn traced<S>(inner: S) -> TracedChannel<S> {
    TracedChannel { inner }
}

impl<S, B> tower::Service<http::Request<B>> for TracedChannel<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let context = if enabled() {
            Some(tracing::Span::current().context())
        } else {
            carried::current().map(|remote| Context::new().with_remote_span_context(remote))
        };
        if let Some(context) = context {
            TraceContextPropagator::new()
                .inject_context(&context, &mut HeaderInjector(request.headers_mut()));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ulid_is_the_trace_id_and_back() {
        let id = ulid::Ulid::new();
        let trace = otel_trace_id(&id.to_string()).expect("ulid");
        assert_eq!(ulid::Ulid::from_bytes(trace.to_bytes()), id);
    }

    #[test]
    fn traceparent_names_the_trace_without_a_pecr_trace_id() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        let parent = server_parent(&mut headers);
        let trace = parent.span().span_context().trace_id();
        assert_eq!(format!("{trace}"), "0af7651916cd43dd8448eb211c80319c");
        let written = headers
            .get(TRACE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .expect("x-pecr-trace-id written");
        assert_eq!(otel_trace_id(written), Some(trace));
    }

    #[test]
    fn a_valid_pecr_trace_id_wins() {
        let id = ulid::Ulid::new();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TRACE_ID_HEADER,
            http::HeaderValue::from_str(&id.to_string()).expect("ascii"),
        );
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        let parent = server_parent(&mut headers);
        assert_eq!(
            parent.span().span_context().trace_id().to_bytes(),
            id.to_bytes()
        );
    }
}

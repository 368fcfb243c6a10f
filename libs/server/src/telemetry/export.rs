//! The OTLP span exporter: OTLP/HTTP protobuf or OTLP/gRPC, chosen by the
//! standard `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (default `http/protobuf`). Endpoints,
//! headers, timeouts and compression stay with the exporter's own
//! `OTEL_EXPORTER_OTLP_*` handling (gRPC default `http://localhost:4317`,
//! no path; HTTP default `http://localhost:4318`, plus `/v1/traces`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use pecr_config::StartupError;

pub const TRACES_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

/// The transports PECR exports spans with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    HttpProtobuf,
    Grpc,
}

/// The transport the variables ask for. The per-signal variable wins; an
/// empty value counts as unset (OTel spec); `http/json` and anything else
/// is a start-up error naming the variable.
pub fn transport(lookup: impl Fn(&str) -> Option<String>) -> Result<Transport, StartupError> {
    for var in [TRACES_PROTOCOL_ENV, PROTOCOL_ENV] {
        let Some(raw) = lookup(var) else { continue };
        return match raw.trim() {
            "" => continue,
            "http/protobuf" => Ok(Transport::HttpProtobuf),
            "grpc" => Ok(Transport::Grpc),
            other => Err(StartupError::invalid(format!(
                "{var}={other:?} is not supported: use grpc or http/protobuf"
            ))),
        };
    }
    Ok(Transport::HttpProtobuf)
}

/// Either exporter behind one type, for the batch processor.
#[derive(Debug)]
pub enum Exporter {
    Http(opentelemetry_otlp::SpanExporter),
    Grpc(GrpcExporter),
}

/// Builds the exporter for `transport`; errors are the exporter's own
/// (a bad endpoint URL, a runtime that cannot start).
pub fn build(transport: Transport) -> Result<Exporter, String> {
    match transport {
        Transport::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map(Exporter::Http)
            .map_err(|err| err.to_string()),
        Transport::Grpc => GrpcExporter::build(),
    }
}

type ExportFuture<'a> = Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

impl SpanExporter for Exporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        match self {
            Self::Http(inner) => Box::pin(inner.export(batch)) as ExportFuture<'_>,
            Self::Grpc(inner) => Box::pin(inner.export(batch)),
        }
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Http(inner) => inner.shutdown_with_timeout(timeout),
            Self::Grpc(inner) => inner.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        match self {
            Self::Http(inner) => inner.force_flush(),
            Self::Grpc(inner) => inner.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        match self {
            Self::Http(inner) => inner.set_resource(resource),
            Self::Grpc(inner) => inner.set_resource(resource),
        }
    }
}

/// The tonic exporter with a Tokio runtime of its own. The SDK's batch
/// processor exports from a plain thread, where tonic's channel (hyper I/O,
/// timers, its buffer task) finds no reactor; one worker thread drives them,
/// and each export is polled inside that runtime's context. Its own runtime,
/// not the service's, so that a flush at shutdown never waits on a runtime
/// that is stopping.
pub struct GrpcExporter {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for GrpcExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcExporter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl GrpcExporter {
    fn build() -> Result<Exporter, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pecr-otlp-grpc")
            .enable_all()
            .build()
            .map_err(|err| format!("OTLP/gRPC exporter runtime: {err}"))?;
        // The channel spawns its buffer task where it is built.
        let inner = {
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .build()
                .map_err(|err| err.to_string())?
        };
        Ok(Exporter::Grpc(Self {
            inner,
            runtime: Some(runtime),
        }))
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime
            .as_ref()
            .map(|runtime| runtime.handle().clone())
    }

    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send + '_ {
        InRuntime {
            handle: self.handle(),
            future: Box::pin(self.inner.export(batch)),
        }
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        let handle = self.handle();
        let _entered = handle.as_ref().map(tokio::runtime::Handle::enter);
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

impl Drop for GrpcExporter {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Polls `future` with the exporter runtime as the current Tokio context.
struct InRuntime<F> {
    handle: Option<tokio::runtime::Handle>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.handle.as_ref().map(tokio::runtime::Handle::enter);
        this.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn http_protobuf_is_the_default() {
        assert_eq!(transport(lookup(&[])), Ok(Transport::HttpProtobuf));
        assert_eq!(
            transport(lookup(&[(PROTOCOL_ENV, " ")])),
            Ok(Transport::HttpProtobuf)
        );
    }

    #[test]
    fn the_per_signal_variable_wins() {
        let pairs = [
            (TRACES_PROTOCOL_ENV, "grpc"),
            (PROTOCOL_ENV, "http/protobuf"),
        ];
        assert_eq!(transport(lookup(&pairs)), Ok(Transport::Grpc));
        let pairs = [(TRACES_PROTOCOL_ENV, ""), (PROTOCOL_ENV, "grpc")];
        assert_eq!(transport(lookup(&pairs)), Ok(Transport::Grpc));
        let pairs = [
            (TRACES_PROTOCOL_ENV, "http/protobuf"),
            (PROTOCOL_ENV, "grpc"),
        ];
        assert_eq!(transport(lookup(&pairs)), Ok(Transport::HttpProtobuf));
    }

    #[test]
    fn other_protocols_name_their_variable() {
        for (var, value) in [
            (PROTOCOL_ENV, "http/json"),
            (TRACES_PROTOCOL_ENV, "GRPC"),
            (TRACES_PROTOCOL_ENV, "udp"),
        ] {
            let error = transport(lookup(&[(var, value)])).expect_err(value);
            assert_eq!(error.code, "ERR_INVALID_CONFIG");
            assert!(error.message.starts_with(var), "{}", error.message);
            assert!(error.message.contains(value), "{}", error.message);
        }
        // A bad generic value is not consulted when the per-signal one is set.
        let pairs = [(TRACES_PROTOCOL_ENV, "grpc"), (PROTOCOL_ENV, "http/json")];
        assert_eq!(transport(lookup(&pairs)), Ok(Transport::Grpc));
    }
}

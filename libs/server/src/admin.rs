//! The plain-HTTP admin surface: `/healthz`, `/readyz`, `/metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::Readiness;

pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Decides whether a `/metrics` request may see the metrics: `Some` is the
/// response to send instead (e.g. the auth layer's 401). Async, because
/// OIDC authentication may refetch the issuer's keys.
pub type MetricsGuard =
    Arc<dyn Fn(HeaderMap) -> Pin<Box<dyn Future<Output = Option<Response>> + Send>> + Send + Sync>;

/// Routes for liveness, readiness and Prometheus metrics.
pub fn admin_router(
    readiness: Readiness,
    registry: Registry,
    metrics_guard: Option<MetricsGuard>,
) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "ok") }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move { readyz(&readiness).await }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| async move {
                if let Some(guard) = &metrics_guard
                    && let Some(denied) = guard(headers).await
                {
                    return denied;
                }
                metrics(&registry)
            }),
        )
}

async fn readyz(readiness: &Readiness) -> Response {
    let report = readiness.evaluate().await;
    let status = if report.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(report.to_json()),
    )
        .into_response()
}

fn metrics(registry: &Registry) -> Response {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

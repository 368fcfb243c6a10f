//! `pecr-edge`: the grpc-gateway-style REST edge of a PECR service.
//!
//! Routes come from the `google.api.http` annotations in a descriptor pool,
//! never from a hand-written table. Each REST request is transcoded to the
//! RPC's protobuf request (JSON body, path variables, query parameters),
//! sent through the service's own gRPC stack in-process (so auth, metrics
//! and every other layer run once for both protocols), and the response or
//! error status is transcoded back: the contract JSON, or the exact
//! `ErrorResponse` and HTTP status carried in the status's
//! `pecr.v1.ErrorDetail`. The JSON mapping, the bindings and the OpenAPI
//! document come from `pecr-edge-json`, which has no server, so gRPC
//! clients can share the codec without compiling this router.
//!
//! Statuses the edge answers itself, all with an `ErrorResponse` body
//! (`ERR_INVALID_PARAMS`, hint `INSUFFICIENT_EVIDENCE`, not retryable):
//! 400 `invalid JSON body` (malformed JSON, wrong types, unknown, missing or
//! duplicate members, no body), 415 `invalid JSON body` (content type not
//! `application/json` or `application/*+json`), 413 `invalid JSON body`
//! (over `max_body_bytes`), 400 `invalid path parameter`, 400 `invalid
//! query string`; each 400 names the refused field and why in `detail`
//! (`{"field":"budget.max_bytes","reason":"expected an integer"}`, no
//! `field` when the body as a whole is refused). Bodies are read as proto3
//! JSON (either field name, 64-bit integers as strings, enum numbers);
//! answers are written as the contract spells them. A gRPC status without a PECR detail, or a response that
//! does not fit the JSON contract, is 500 `ERR_INTERNAL` with a generic
//! message (the cause is logged). Unknown paths are 404 and known paths
//! with another method 405, both with empty bodies.
//!
//! A server-streaming RPC is answered as Server-Sent Events
//! (`text/event-stream`, see the `sse` module): one event per message, a
//! last `error` event when the stream fails; a call refused before its
//! first message gets the unary error answer above.
//!
//! Beside the routes: `OPTIONS` on every route (CORS preflight, see
//! [`CorsOrigins`]), and the served contract (`/openapi.yaml`,
//! `/openapi.json`, the Redoc page `/docs`).
//!
//! Serve the router with `into_make_service_with_connect_info::<SocketAddr>()`
//! to hand the REST client's address to the gRPC stack (`remote_addr()`).
//!
//! ```no_run
//! # fn example(routes: tonic::service::Routes) -> Result<(), pecr_edge::EdgeError> {
//! let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
//!     .map_err(|err| pecr_edge::EdgeError::MissingDescriptor(err.to_string()))?;
//! let rest = pecr_edge::router(
//!     &pool,
//!     &[pecr_proto::service_names::GATEWAY],
//!     routes,
//!     pecr_edge::EdgeConfig::default(),
//! )?;
//! # let _ = rest; Ok(()) }
//! ```

mod call;
mod cors;
mod docs;
mod error_response;
mod handler;
mod metadata;
mod sse;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::{MethodFilter, MethodRouter};
use http::uri::PathAndQuery;
use pecr_edge_json::{JsonMapping, OPEN_MESSAGES};
use pecr_errors::PecrError;
use prost_reflect::DescriptorPool;

use crate::error_response::ErrorRenderer;
use crate::handler::{Route, Shared};

pub use crate::cors::{ALLOWED_REQUEST_HEADERS, CorsOrigins, EXPOSED_RESPONSE_HEADERS};
pub use crate::docs::{REDOC_STANDALONE_JS, REDOC_VERSION};
pub use crate::metadata::forwarded_metadata;
pub use pecr_edge_json::{
    EdgeError, FieldRules, field_rules, message_json, openapi_document, openapi_json,
};

/// The default request body limit: 2 MiB, as in the spec.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Knobs of the REST edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Largest accepted request body in bytes; a larger one is refused with
    /// 413 `ERR_INVALID_PARAMS` before anything is parsed.
    pub max_body_bytes: usize,
    /// Browser origins granted CORS; none by default.
    pub cors: CorsOrigins,
    /// A streamed (SSE) response silent this long sends a comment line, so
    /// proxies and load balancers with idle timeouts keep it open.
    pub sse_keep_alive: Duration,
}

/// The default [`EdgeConfig::sse_keep_alive`]: under the common 30–60 s
/// proxy idle timeouts.
pub const DEFAULT_SSE_KEEP_ALIVE: Duration =
    Duration::from_secs(pecr_edge_json::SSE_KEEP_ALIVE_SECS);

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cors: CorsOrigins::None,
            sse_keep_alive: DEFAULT_SSE_KEEP_ALIVE,
        }
    }
}

/// The service stack the edge calls in-process: typically the service's
/// `tonic::service::Routes` wrapped in the layers of its gRPC port.
pub trait GrpcStack:
    tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Future: Send,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcStack for S where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Future: Send,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Marks, in its extensions, a call made in-process from the service's own
/// HTTP port (the REST edge, the MCP server): the service's stack then
/// knows the call did not come from a service on the gRPC port. Only
/// in-process code can set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestCall;

/// The extensions of an in-process call: the [`RestCall`] marker, and the
/// HTTP client's address so loopback rules in the gRPC stack see it.
pub fn in_process_extensions(peer: Option<std::net::SocketAddr>) -> tonic::Extensions {
    let mut extensions = tonic::Extensions::new();
    extensions.insert(RestCall);
    if let Some(peer) = peer {
        extensions.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer),
        });
    }
    extensions
}

/// The REST router for `services` (fully qualified names), answering every
/// route with an in-process call into `grpc`, typically the service's
/// `tonic::service::Routes` wrapped in the same layers as its gRPC port.
///
/// Unknown paths answer 404 and known paths with another method 405, both
/// with empty bodies.
pub fn router<S>(
    pool: &DescriptorPool,
    services: &[&str],
    grpc: S,
    config: EdgeConfig,
) -> Result<Router, EdgeError>
where
    S: GrpcStack,
{
    let bindings = pecr_edge_json::bindings(pool, services)?;
    let mapping = Arc::new(JsonMapping::new(pool, OPEN_MESSAGES));
    let errors = ErrorRenderer::new(pool, mapping.clone())?;
    let shared = Arc::new(Shared {
        mapping,
        errors,
        max_body_bytes: config.max_body_bytes,
        sse_keep_alive: config.sse_keep_alive,
    });

    let mut by_path: BTreeMap<String, Vec<Arc<Route<S>>>> = BTreeMap::new();
    for binding in bindings {
        let grpc_path = PathAndQuery::try_from(binding.grpc_path()).map_err(|err| {
            EdgeError::InvalidHttpRule {
                method: binding.method.full_name().to_owned(),
                reason: format!("gRPC path: {err}"),
            }
        })?;
        let routes = by_path.entry(binding.router_path()).or_default();
        if routes.iter().any(|r| r.binding.verb == binding.verb) {
            return Err(EdgeError::RouteConflict {
                method: binding.verb.to_string(),
                path: binding.template.clone(),
            });
        }
        routes.push(Arc::new(Route::new(
            binding,
            grpc_path,
            shared.clone(),
            grpc.clone(),
        )));
    }

    let cors = Arc::new(config.cors);
    let mut router = Router::new();
    for (path, routes) in by_path {
        let mut methods = MethodRouter::new();
        let verbs: Arc<[http::Method]> = routes.iter().map(|r| r.binding.verb.clone()).collect();
        let origins = cors.clone();
        methods = methods.options(move |request: Request| {
            let (origins, verbs) = (origins.clone(), verbs.clone());
            async move { cors::preflight(&origins, &verbs, request.headers()) }
        });
        for route in routes {
            let filter =
                method_filter(&route.binding.verb).ok_or_else(|| EdgeError::InvalidHttpRule {
                    method: route.binding.method.full_name().to_owned(),
                    reason: format!("HTTP method {}", route.binding.verb),
                })?;
            methods = methods.on(filter, move |request: Request| {
                let route = route.clone();
                async move { route.handle(request).await }
            });
        }
        // Templates are validated and variables are named by position, so
        // no two paths conflict; a panic here would be a bug, reported as
        // an error instead of taking the process down.
        let added = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            router.route(&path, methods)
        }));
        router = added.map_err(|_| EdgeError::RouteConflict {
            method: "*".to_owned(),
            path: "(router refused a path)".to_owned(),
        })?;
    }
    let router = router.merge(docs::router(pool, services)?);
    Ok(
        router.layer(axum::middleware::from_fn(move |request, next| {
            cors::cors_headers(cors.clone(), request, next)
        })),
    )
}

fn method_filter(method: &http::Method) -> Option<MethodFilter> {
    Some(match *method {
        http::Method::GET => MethodFilter::GET,
        http::Method::PUT => MethodFilter::PUT,
        http::Method::POST => MethodFilter::POST,
        http::Method::DELETE => MethodFilter::DELETE,
        http::Method::PATCH => MethodFilter::PATCH,
        _ => return None,
    })
}

/// A PECR error as the edge renders it: its HTTP status and the exact
/// `ErrorResponse` JSON body. For REST endpoints served beside the edge
/// (e.g. an authenticated `/metrics`), so every error body has one shape.
pub fn error_response(error: PecrError) -> axum::response::Response {
    error_response::render_pecr(&error)
}

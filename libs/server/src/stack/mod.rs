//! The request stack: every call a PECR service serves, over gRPC or
//! through its REST edge (which calls the same stack in-process), passes
//! these layers in this order before the service sees it:
//!
//! | # | layer | what it does |
//! |---|-------|--------------|
//! | 1 | trace context | an `rpc.server` span continuing the caller's W3C trace |
//! | 2 | [request id](RequestId) | `x-pecr-request-id` sanitised, or a new id, in the extensions |
//! | 3 | [metrics](RpcMetrics) | `grpc_server_*` per service, method and code; the REST-route series |
//! | 4 | [admission](AdmissionLayer) | a cap on calls in flight (the rest shed as `ERR_OVERLOADED`) and on deadlines |
//! | 5 | [authentication](Authentication) | the calling service and the principal; the principal in the extensions |
//! | 6 | [rate limit](RateLimits) | per principal, per RPC |
//!
//! Health and reflection pass layers 4 to 6 untouched, so probes and
//! grpcurl work on an overloaded or locked-down port. A new RPC gets every
//! layer by being added to the service: nothing in a handler can forget one.

mod admission;
mod authentication;
mod paths;
mod rate_limit;
mod request_id;
mod rpc_metrics;

use std::future::Future;
use std::pin::Pin;

use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

pub use admission::{AdmissionLayer, AdmissionService};
pub use authentication::{Authentication, AuthenticationService, principal};
pub(crate) use paths::is_open;
pub use rate_limit::{RateLimitService, RateLimits, RateRule, rate_limited};
pub use request_id::{RequestId, RequestIdLayer, RequestIdService};
pub use rpc_metrics::{RouteSeries, RpcMetrics, RpcMetricsService};

use crate::TraceContextLayer;

/// What a layer that may answer by itself returns.
type ResponseFuture<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

/// The layers of one service, built once and applied to its gRPC port and
/// its REST edge alike.
#[derive(Clone)]
pub struct RequestStack {
    pub metrics: RpcMetrics,
    pub admission: AdmissionLayer,
    pub authentication: Authentication,
    pub rate_limits: RateLimits,
}

/// The layers in their declared order, outermost first.
type Layers = Stack<
    RateLimits,
    Stack<
        Authentication,
        Stack<
            AdmissionLayer,
            Stack<RpcMetrics, Stack<RequestIdLayer, Stack<TraceContextLayer, Identity>>>,
        >,
    >,
>;

impl RequestStack {
    fn layers(&self) -> ServiceBuilder<Layers> {
        ServiceBuilder::new()
            .layer(TraceContextLayer)
            .layer(RequestIdLayer)
            .layer(self.metrics.clone())
            .layer(self.admission.clone())
            .layer(self.authentication.clone())
            .layer(self.rate_limits.clone())
    }
}

impl<S> tower::Layer<S> for RequestStack {
    type Service = <Layers as tower::Layer<S>>::Service;

    fn layer(&self, service: S) -> Self::Service {
        self.layers().service(service)
    }
}

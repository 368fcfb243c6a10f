//! Layer 2: every call gets a request id, the caller's `x-pecr-request-id`
//! when it is a usable id, a new one otherwise, in the request's extensions.

use std::task::{Context, Poll};

use pecr_contracts::ids::sanitize_request_id;

/// The id that correlates a call's logs, events and downstream calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of a request that passed the stack; a new one otherwise
    /// (a handler called directly, as in unit tests).
    pub fn of<T>(request: &tonic::Request<T>) -> String {
        request
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| sanitize_request_id(None), |id| id.0.clone())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RequestIdService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let offered = request
            .headers()
            .get("x-pecr-request-id")
            .and_then(|value| value.to_str().ok());
        let id = RequestId(sanitize_request_id(offered));
        request.extensions_mut().insert(id);
        self.inner.call(request)
    }
}

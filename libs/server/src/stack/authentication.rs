//! Layer 5: authentication. A call must name its caller before anything of
//! the service runs: the calling service (by client certificate or service
//! token) where the port knows its callers, and the principal (local
//! headers or an OIDC bearer token) where the service acts for end users.
//! The principal is placed in the request's extensions for the handlers.
//! Health and reflection are exempt; REST calls come from the service's own
//! edge in-process, so only their principal is checked.

use std::task::{Context, Poll};

use pecr_auth::{Authenticator, Principal};
use pecr_errors::{PecrError, PecrResult};
use tonic::metadata::MetadataMap;

use super::ResponseFuture;
use super::paths::is_open;
use crate::ServiceCallers;

/// Who must be known for a call to reach the service.
#[derive(Clone, Default)]
pub struct Authentication {
    /// The services that may call this port, and their RPCs.
    pub services: Option<ServiceCallers>,
    /// How end users are authenticated, for services that act for them.
    pub principals: Option<Authenticator>,
}

/// The principal a call was authenticated as; a handler of a service
/// that authenticates principals answers `ERR_INTERNAL` when it is missing
/// (a call that bypassed the stack), never serves it anonymously.
pub fn principal<T>(request: &tonic::Request<T>) -> PecrResult<Principal> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| PecrError::internal("the call reached the service unauthenticated"))
}

impl<S> tower::Layer<S> for Authentication {
    type Service = AuthenticationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticationService {
            inner,
            authentication: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthenticationService<S> {
    inner: S,
    authentication: Authentication,
}

impl<S, B> tower::Service<http::Request<B>> for AuthenticationService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if is_open(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let from_edge = request.extensions().get::<pecr_edge::RestCall>().is_some();
        if let Some(services) = &self.authentication.services
            && !from_edge
            && let Err(error) = services.check(&request)
        {
            return Box::pin(std::future::ready(Ok(refusal(error))));
        }
        let Some(principals) = self.authentication.principals.clone() else {
            return Box::pin(self.inner.call(request));
        };
        // The ready service goes into the future; a fresh clone waits for
        // the next call (the tower idiom for services called after an await).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let metadata = MetadataMap::from_headers(request.headers().clone());
            match principals.authenticate(&metadata).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(error) => Ok(refusal(error)),
            }
        })
    }
}

fn refusal(error: PecrError) -> http::Response<tonic::body::Body> {
    tonic::Status::from(error).into_http()
}

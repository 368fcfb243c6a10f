//! Layer 6: per-principal rate limits. Each limited RPC spends one attempt
//! of its bucket per call; a call over the limit is refused with 429
//! `ERR_RATE_LIMITED` before the service runs. Work whose size only the
//! request body says (a batch of operator calls) is charged by the handler,
//! on the same limiter.

use std::sync::Arc;
use std::task::{Context, Poll};

use pecr_auth::Principal;
use pecr_errors::{ErrorCode, PecrError};

use super::paths::service_and_method;
use crate::RateLimiter;

/// One RPC's quota: `limit` calls per window per principal in `bucket`
/// (0 is unlimited); `what` names it in the refusal.
#[derive(Debug, Clone, Copy)]
pub struct RateRule {
    pub method: &'static str,
    pub bucket: &'static str,
    pub limit: u32,
    pub what: &'static str,
}

/// The quotas of a service's RPCs, on one limiter.
#[derive(Clone)]
pub struct RateLimits {
    limiter: Arc<RateLimiter>,
    rules: Arc<[RateRule]>,
}

impl RateLimits {
    pub fn new(limiter: Arc<RateLimiter>, rules: Vec<RateRule>) -> Self {
        Self {
            limiter,
            rules: rules.into(),
        }
    }

    /// No quotas (services called only by other services).
    pub fn none() -> Self {
        Self::new(
            Arc::new(RateLimiter::new(std::time::Duration::ZERO)),
            Vec::new(),
        )
    }

    fn rule(&self, path: &str) -> Option<&RateRule> {
        let (_, method) = service_and_method(path)?;
        self.rules.iter().find(|rule| rule.method == method)
    }
}

/// The refusal of a call over its quota.
pub fn rate_limited(what: &str) -> PecrError {
    PecrError::new(
        ErrorCode::RateLimited,
        format!("rate limit exceeded for {what}"),
    )
}

impl<S> tower::Layer<S> for RateLimits {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limits: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limits: RateLimits,
}

impl<S, B> tower::Service<http::Request<B>> for RateLimitService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        std::future::Ready<Result<http::Response<tonic::body::Body>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let over = self.limits.rule(request.uri().path()).filter(|rule| {
            request
                .extensions()
                .get::<Principal>()
                .is_some_and(|principal| {
                    !self
                        .limits
                        .limiter
                        .allow(&principal.rate_key(rule.bucket), rule.limit)
                })
        });
        match over {
            None => futures_util::future::Either::Left(self.inner.call(request)),
            Some(rule) => {
                let status = tonic::Status::from(rate_limited(rule.what));
                futures_util::future::Either::Right(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

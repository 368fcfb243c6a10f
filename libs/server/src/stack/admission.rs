//! Layer 4: admission. At most `max_in_flight` calls run at once; a call
//! beyond that is refused at once with `ERR_OVERLOADED` (gRPC
//! RESOURCE_EXHAUSTED, REST 503) and `retry-after: 1`, so overload turns
//! into fast refusals instead of a queue of calls that time out. Every
//! admitted call ends by the earlier of its client's `grpc-timeout` and the
//! service's deadline cap. Health and reflection are neither counted nor shed.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pecr_config::Admission;
use pecr_errors::{ErrorCode, PecrError};
use tokio::sync::Semaphore;

use super::ResponseFuture;
use super::paths::is_open;

/// Seconds a refused client should wait before trying again.
const RETRY_AFTER_SECS: &str = "1";

#[derive(Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
    deadline_cap: Duration,
}

impl AdmissionLayer {
    pub fn new(admission: Admission) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(admission.max_in_flight)),
            deadline_cap: admission.deadline_cap,
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            permits: Arc::clone(&self.permits),
            deadline_cap: self.deadline_cap,
        }
    }
}

#[derive(Clone)]
pub struct AdmissionService<S> {
    inner: S,
    permits: Arc<Semaphore>,
    deadline_cap: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for AdmissionService<S>
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
        if is_open(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(
                event = "server.overloaded",
                path = request.uri().path(),
                "call shed: too many calls in flight"
            );
            return Box::pin(std::future::ready(Ok(overloaded())));
        };
        let deadline = client_deadline(request.headers())
            .map_or(self.deadline_cap, |client| client.min(self.deadline_cap));
        let call = self.inner.call(request);
        Box::pin(async move {
            let answer = tokio::time::timeout(deadline, call).await;
            drop(permit);
            answer.unwrap_or_else(|_| Ok(deadline_exceeded()))
        })
    }
}

fn overloaded() -> http::Response<tonic::body::Body> {
    let status: tonic::Status = PecrError::new(
        ErrorCode::Overloaded,
        "the service is overloaded; retry later",
    )
    .into();
    let mut response = status.into_http();
    response.headers_mut().insert(
        "retry-after",
        http::HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    response
}

fn deadline_exceeded() -> http::Response<tonic::body::Body> {
    let status: tonic::Status =
        PecrError::new(ErrorCode::SourceTimeout, "request deadline exceeded").into();
    status.into_http()
}

/// The client's `grpc-timeout` (`<digits><unit>`, at most 8 digits).
fn client_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &'static str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", http::HeaderValue::from_static(value));
        client_deadline(&headers)
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(timeout("S"), None);
        assert_eq!(timeout("123456789S"), None);
        assert_eq!(timeout("12x"), None);
    }
}

//! One HTTP exchange with OPA: the decision POST and the health GET.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::decision::Decision;
use crate::error::PolicyStartupError;

/// OPA's decision answers are tiny; anything bigger is not one of them.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Idle keep-alive connections are reused so a decision skips the handshake.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptError {
    #[error("timed out")]
    Timeout,
    #[error("transport error: {0}")]
    Transport(String),
    #[error("HTTP status {0}")]
    Status(StatusCode),
    #[error("undecodable 2xx response: {0}")]
    Undecodable(String),
}

impl AttemptError {
    /// Timeouts, transport errors and 5xx may succeed on another attempt.
    /// An undecodable 2xx is not retried: the same OPA would likely give the
    /// same answer, and a retry only spends the caller's latency budget.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Transport(_) => true,
            Self::Status(status) => status.is_server_error(),
            Self::Undecodable(_) => false,
        }
    }
}

pub(crate) struct OpaHttp {
    client: Client<HttpConnector, Full<Bytes>>,
    decision_uri: Uri,
    health_uri: Uri,
    timeout: Duration,
}

impl OpaHttp {
    /// Validates the URL and builds the client; no connection is made.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, PolicyStartupError> {
        let base = url.trim().trim_end_matches('/');
        let decision_uri = parse_http_uri(url, &format!("{base}/v1/data/pecr/authz/decision"))?;
        let health_uri = parse_http_uri(url, &format!("{base}/health"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            client,
            decision_uri,
            health_uri,
            timeout,
        })
    }

    /// POSTs `body` (`{"input": …}`) and reads the decision.
    pub async fn decide(&self, body: Bytes) -> Result<Decision, AttemptError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.decision_uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|error| AttemptError::Transport(error.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| AttemptError::Transport(error_chain(&error)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(AttemptError::Status(status));
            }
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|error| AttemptError::Transport(error.to_string()))?
                .to_bytes();
            Decision::from_response_body(&body)
                .map_err(|error| AttemptError::Undecodable(error.to_string()))
        };
        // The per-attempt timeout covers connect, headers and the whole body.
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| AttemptError::Timeout)?
    }

    /// True when `GET /health` answers 2xx within the timeout.
    pub async fn healthy(&self) -> bool {
        let Ok(request) = Request::builder()
            .method(Method::GET)
            .uri(self.health_uri.clone())
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        matches!(
            tokio::time::timeout(self.timeout, self.client.request(request)).await,
            Ok(Ok(response)) if response.status().is_success()
        )
    }
}

fn parse_http_uri(url: &str, full: &str) -> Result<Uri, PolicyStartupError> {
    let invalid = |reason: &str| PolicyStartupError::InvalidOpaUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = full.parse().map_err(|_| invalid("not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(invalid("https is not supported; use http")),
        _ => return Err(invalid("the scheme must be http")),
    }
    if uri.authority().is_none() {
        return Err(invalid("missing host"));
    }
    Ok(uri)
}

/// The error with its causes: hyper's top-level message alone ("client
/// error (Connect)") hides the reason.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_at_start_up() {
        let ok =
            OpaHttp::new("http://127.0.0.1:8181/", Duration::from_millis(10)).expect("valid url");
        assert_eq!(
            ok.decision_uri.to_string(),
            "http://127.0.0.1:8181/v1/data/pecr/authz/decision"
        );
        assert_eq!(ok.health_uri.to_string(), "http://127.0.0.1:8181/health");
        for bad in [
            "",
            "127.0.0.1:8181",
            "https://opa:8181",
            "ftp://opa",
            "http://",
        ] {
            assert!(
                OpaHttp::new(bad, Duration::from_millis(10)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(AttemptError::Timeout.retryable());
        assert!(AttemptError::Transport("x".into()).retryable());
        assert!(AttemptError::Status(StatusCode::SERVICE_UNAVAILABLE).retryable());
        assert!(!AttemptError::Status(StatusCode::BAD_REQUEST).retryable());
        assert!(!AttemptError::Status(StatusCode::NOT_FOUND).retryable());
        assert!(!AttemptError::Undecodable("x".into()).retryable());
    }
}

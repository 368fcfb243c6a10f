//! Client side of the mesh: lazily connected channels to other PECR
//! services (TLS for https:// URLs, see [`ClientTls`]), the service token
//! presented to an upstream that knows its callers, and the gRPC health
//! probe used by readiness, which goes over the same channel.

use std::task::{Context, Poll};
use std::time::Duration;

use pecr_config::{ConfigReader, Secret, StartupError};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::ClientTls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that `url` (the value of `key`) is an http:// or https:// endpoint.
pub fn endpoint(key: &str, url: &str) -> Result<Endpoint, StartupError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|err| StartupError::invalid(format!("{key} is not a valid URL ({url}): {err}")))?;
    if !matches!(endpoint.uri().scheme_str(), Some("http" | "https")) {
        return Err(StartupError::invalid(format!(
            "{key} must be an http:// or https:// URL (got {url})"
        )));
    }
    Ok(endpoint)
}

/// A channel that connects on first use, so a service starts even while the
/// service it depends on is still coming up. Needs a Tokio runtime. An
/// https:// URL is called with `tls`; http:// stays plaintext.
pub fn lazy_channel(key: &str, url: &str, tls: &ClientTls) -> Result<Channel, StartupError> {
    let endpoint = tls.endpoint(key, url)?;
    if tls.is_configured() && endpoint.uri().scheme_str() != Some("https") {
        tracing::warn!(
            upstream = key,
            url,
            "client TLS settings are present but {key} is http://; calling it in plaintext"
        );
    }
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// True when the service behind `channel` reports SERVING for `service`
/// within `timeout`.
pub async fn probe_health(channel: Channel, service: &str, timeout: Duration) -> bool {
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    matches!(
        tokio::time::timeout(timeout, client.check(request)).await,
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
    )
}

/// The service token `token_key` names, presented to the upstream at
/// `url` (the value of `url_key`). The upstream authenticates every caller,
/// so the token is required unless calls go over https:// with a client
/// certificate.
pub fn read_upstream_token(
    reader: &mut ConfigReader<'_>,
    token_key: &str,
    url_key: &str,
    url: &str,
    tls: &ClientTls,
) -> Option<Secret> {
    let token = reader.service_token(token_key);
    if token.is_none() && reader.raw(token_key).is_none() && !tls.presents_certificate(url) {
        reader.push_error(StartupError::new(
            "ERR_MISSING_CONFIG",
            format!(
                "{token_key} is required: the service at {url_key} authenticates its callers \
                 (or call it over https:// with PECR_TLS_CLIENT_CERT and PECR_TLS_CLIENT_KEY)"
            ),
        ));
    }
    token
}

/// Calls that carry a service token as `authorization: Bearer …` (marked
/// sensitive, so it is never logged by the HTTP stack).
#[derive(Clone, Debug)]
pub struct Credentialed<S> {
    inner: S,
    authorization: Option<http::HeaderValue>,
}

/// Wraps an upstream channel so every call presents `token`, if any.
pub fn credentialed<S>(inner: S, token: Option<&str>) -> Credentialed<S> {
    let authorization = token
        .and_then(|token| http::HeaderValue::from_str(&format!("Bearer {token}")).ok())
        .map(|mut value| {
            value.set_sensitive(true);
            value
        });
    Credentialed {
        inner,
        authorization,
    }
}

impl<S, B> tower::Service<http::Request<B>> for Credentialed<S>
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
        if let Some(value) = &self.authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        self.inner.call(request)
    }
}

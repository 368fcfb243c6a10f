//! Client side of the mesh: lazily connected channels to other PECR
//! services (TLS for https:// URLs, see [`ClientTls`]) and the gRPC health
//! probe used by readiness, which goes over the same channel.

use std::time::Duration;

use pecr_config::StartupError;
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

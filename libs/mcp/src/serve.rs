//! `/mcp` on a service's HTTP port: the gate (authentication, session
//! owners), then the SDK's Streamable HTTP transport in session mode; the
//! protected-resource document beside it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use pecr_auth::Authenticator;
use rmcp::ServerHandler;
use rmcp::model::ProtocolVersion;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::caller::{Gate, gate};
use crate::discovery;
use crate::owners::SessionOwners;

/// The protocol revisions both servers speak: those with an `initialize`
/// handshake, since an MCP session is what a PECR session maps to.
pub fn session_protocol_versions() -> Cow<'static, [ProtocolVersion]> {
    Cow::Borrowed(ProtocolVersion::known_up_to(
        &ProtocolVersion::LATEST_WITH_INITIALIZE,
    ))
}

/// How long an unused MCP session lives, on both servers.
pub const SESSION_IDLE: Duration = Duration::from_secs(300);

/// The path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// How `/mcp` is served.
#[derive(Clone, Debug)]
pub struct McpSettings {
    /// `Host` header values (`name` or `name:port`) a request may carry;
    /// empty admits any (DNS-rebinding protection off).
    pub allowed_hosts: Vec<String>,
    /// The name the protected-resource document gives the service.
    pub resource_name: &'static str,
    /// A session unused this long is closed.
    pub session_idle: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

/// The `/mcp` router: one `handler()` per MCP session. Sessions end when
/// `stopping` turns true, so open event streams do not hold up shutdown.
pub fn router<H>(
    settings: McpSettings,
    auth: Authenticator,
    stopping: watch::Receiver<bool>,
    handler: impl Fn() -> H + Send + Sync + 'static,
) -> Router
where
    H: ServerHandler + Send + 'static,
{
    let cancel = CancellationToken::new();
    let on_stop = cancel.clone();
    let mut stop = stopping;
    tokio::spawn(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        on_stop.cancel();
    });

    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(settings.session_idle);
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(settings.max_body_bytes)
        .with_cancellation_token(cancel);
    config = if settings.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(settings.allowed_hosts.clone())
    };
    let transport = StreamableHttpService::new(move || Ok(handler()), Arc::new(sessions), config);

    let issuer = auth.oidc_issuer().map(str::to_owned);
    let gate_state = Arc::new(Gate {
        auth,
        // Twice the idle time: an owner is never forgotten before its session.
        owners: SessionOwners::new(settings.session_idle.saturating_mul(2)),
    });
    let mcp = Router::new()
        .route_service(MCP_PATH, transport)
        // route_layer: only `/mcp` passes the gate; the port's other
        // unknown paths keep their plain 404.
        .route_layer(axum::middleware::from_fn_with_state(gate_state, gate));
    // The protected-resource document names the issuer: OIDC mode only.
    match issuer {
        Some(issuer) => mcp.merge(discovery::routes(issuer, settings.resource_name)),
        None => mcp,
    }
}

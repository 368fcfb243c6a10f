//! Who is calling `/mcp`: authentication before the transport sees the
//! request, and the MCP session's owner checked on every later request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use pecr_auth::{Authenticator, Principal};
use pecr_errors::{ErrorCode, PecrError};
use rmcp::ErrorData as McpError;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use tonic::metadata::MetadataMap;

use crate::discovery;
use crate::owners::{Owner, SessionOwners};

/// The header the Streamable HTTP transport names its sessions by.
const SESSION_HEADER: &str = "mcp-session-id";

/// Most MCP sessions one caller holds at once. A session lives until its
/// idle time runs out even when its `initialize` was refused, so opening
/// sessions must be bounded apart from the PECR session rate limit.
pub const MAX_SESSIONS_PER_CALLER: usize = 32;

/// An authenticated `/mcp` request: its principal and the metadata the
/// in-process gRPC calls forward (identity headers, trace context).
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub metadata: MetadataMap,
    /// The HTTP client's address, for loopback rules in the gRPC stack.
    pub peer: Option<SocketAddr>,
}

/// The caller of an MCP request, as the gate left it in the HTTP parts the
/// transport hands to the handler. Missing only when the gate was bypassed,
/// which is refused rather than served anonymously.
pub fn caller_of(context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("the request reached MCP unauthenticated", None))
}

/// What the gate needs.
pub(crate) struct Gate {
    pub auth: Authenticator,
    pub owners: SessionOwners,
}

/// The PECR refusal of a session used by someone else: the gateway's own.
pub fn invalid_session_credentials() -> PecrError {
    PecrError::new(ErrorCode::PolicyDenied, "invalid session credentials").with_http(401)
}

/// Authenticates, checks the session's owner, records who opened a new
/// session, forgets a deleted one.
pub(crate) async fn gate(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let metadata = pecr_edge::forwarded_metadata(request.headers());
    let principal = match gate.auth.authenticate(&metadata).await {
        Ok(principal) => principal,
        Err(error) => return refusal(&gate.auth, error, &request),
    };
    let owner = Owner::of(&principal);
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && !gate.owners.admits(id, &owner)
    {
        tracing::warn!(
            principal_id = %principal.principal_id,
            "mcp.session_refused: an MCP session used by another caller"
        );
        return unread(pecr_edge::error_response(invalid_session_credentials()));
    }
    if session.is_none()
        && request.method() == Method::POST
        && gate.owners.held_by(&owner) >= MAX_SESSIONS_PER_CALLER
    {
        return unread(pecr_edge::error_response(
            PecrError::new(ErrorCode::RateLimited, "too many open MCP sessions")
                .with_retryable(true),
        ));
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let deleting = request.method() == Method::DELETE;
    request.extensions_mut().insert(Caller {
        principal,
        metadata,
        peer,
    });
    let mut response = next.run(request).await;
    if deleting && response.status() == StatusCode::ACCEPTED {
        // The transport accepts a DELETE with 202; the session is gone,
        // which clients expect said as 200 or 204.
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    match &session {
        None => {
            if let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|value| value.to_str().ok())
            {
                gate.owners.record(id, owner);
            }
        }
        Some(id) if deleting && response.status().is_success() => gate.owners.forget(id),
        Some(_) => {}
    }
    response
}

/// A refusal sent before the request body was read: the connection
/// closes after it, so a client must not send its next request on it.
fn unread(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The `ErrorResponse` of a refused authentication; a 401 challenges the
/// client as the MCP authorization spec asks: in OIDC mode a Bearer
/// challenge naming the protected-resource document.
fn refusal(auth: &Authenticator, error: PecrError, request: &Request) -> Response {
    let mut response = unread(pecr_edge::error_response(error));
    if response.status() != StatusCode::UNAUTHORIZED {
        return response;
    }
    let challenge = if auth.is_oidc() {
        let document = discovery::document_url(request.headers());
        format!("Bearer resource_metadata=\"{document}\"")
    } else {
        // Local mode has no token to ask for: the challenge names the
        // development header instead.
        "PecrLocal realm=\"pecr\", header=\"x-pecr-principal-id\"".to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

//! The gateway's MCP server at `/mcp` of its HTTP port.
//!
//! One MCP session is one PECR session: `initialize` opens it for the
//! authenticated caller with the server's MCP budget (and the client's
//! `as_of_time` from `_meta["pecr/as_of_time"]`, when given). Each tool
//! is an operator (or `finalize`), called through the gateway's own gRPC
//! stack in-process with the caller's identity metadata and the session
//! token, exactly as `CallOperator` and `Finalize` are called over gRPC or
//! REST. `tools/list` shows the tools the policy lets the caller use;
//! resources are the evidence units the session received.

mod catalogue;
mod evidence;
mod handler;

use std::sync::Arc;

use pecr_mcp::McpSettings;
use pecr_server::InProcessRoutes;

use crate::core::Gateway;

/// Largest MCP request body (as the REST edge's).
const MAX_BODY_BYTES: usize = crate::MAX_BODY_BYTES;

/// What the MCP server is built from.
pub(crate) struct McpParts {
    pub core: Arc<Gateway>,
    pub auth: pecr_auth::Authenticator,
    pub budget: pecr_contracts::Budget,
    pub allowed_hosts: Vec<String>,
}

/// `/mcp` (and the protected-resource document in OIDC mode), built on the
/// gateway's own gRPC stack.
pub(crate) fn routes(parts: McpParts) -> Result<InProcessRoutes, pecr_config::StartupError> {
    let catalogue = catalogue::Catalogue::new().map_err(|err| {
        pecr_config::StartupError::new("ERR_SERVER_FAILED", format!("MCP tools: {err}"))
    })?;
    let settings = McpSettings {
        allowed_hosts: parts.allowed_hosts,
        resource_name: "PECR gateway",
        session_idle: pecr_mcp::SESSION_IDLE,
        max_body_bytes: MAX_BODY_BYTES,
    };
    let auth = parts.auth;
    let core = parts.core;
    let budget = pecr_proto::v1::Budget::from(&parts.budget);
    Ok(Box::new(move |grpc, stopping| {
        let shared = Arc::new(handler::Shared {
            core,
            grpc,
            catalogue,
            budget,
        });
        pecr_mcp::router(settings, auth, stopping, move || {
            handler::GatewayMcp::new(Arc::clone(&shared))
        })
    }))
}

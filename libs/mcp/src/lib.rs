//! `pecr-mcp`: what the gateway's and the controller's MCP servers share.
//!
//! - [`router`]: `/mcp` on the service's HTTP port, the Streamable HTTP
//!   transport of the official SDK (`rmcp`) in its session mode: one
//!   handler per MCP session, made by the service's factory.
//! - [`Caller`]: every `/mcp` request is authenticated first, by the same
//!   [`pecr_auth::Authenticator`] as the gRPC stack (local headers or an
//!   OIDC bearer token). A refusal is the REST edge's `ErrorResponse` with
//!   its status; a 401 carries a `WWW-Authenticate` challenge naming the
//!   OAuth protected-resource document in OIDC mode. An MCP session
//!   belongs to the tenant, principal and attribute set that opened it;
//!   anyone else gets the gateway's own 401 "invalid session credentials".
//! - [`discovery`]: the OAuth protected-resource metadata (RFC 9728).
//! - [`in_process`]: requests into the service's own gRPC stack with the
//!   MCP caller's identity metadata, as the REST edge makes them.
//! - [`arguments`]: tool input read and described by the contract (the
//!   REST edge's decoder, the OpenAPI document's renderer).
//! - [`tool_result`]: PECR errors as MCP tool errors (`isError: true`,
//!   the `ErrorDetail` as structured content), and contract messages as
//!   the REST contract's JSON.

pub mod arguments;
mod caller;
pub mod discovery;
pub mod in_process;
mod owners;
mod serve;
mod settings;
pub mod tool_result;

pub use caller::{Caller, MAX_SESSIONS_PER_CALLER, caller_of, invalid_session_credentials};
pub use owners::Owner;
pub use rmcp;
pub use serve::{MCP_PATH, McpSettings, SESSION_IDLE, router, session_protocol_versions};
pub use settings::{DEFAULT_ALLOWED_HOSTS, MCP_ALLOWED_HOSTS, read_allowed_hosts};

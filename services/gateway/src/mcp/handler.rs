//! One MCP session of the gateway: its PECR session, the tools the policy
//! lets its caller use, the evidence it received.

use std::sync::{Arc, Mutex};

use pecr_errors::{PecrError, PecrResult};
use pecr_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    InitializeRequestParams, InitializeResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use pecr_mcp::rmcp::service::RequestContext;
use pecr_mcp::rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use pecr_mcp::tool_result::{contract_json, pecr_error_of, reply_json, success};
use pecr_mcp::{Caller, Owner, caller_of, in_process, invalid_session_credentials};
use pecr_proto::v1;
use pecr_proto::v1::gateway_service_client::GatewayServiceClient;
use pecr_server::InProcessGrpc;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::catalogue::{Catalogue, FINALIZE};
use super::evidence::{self, Shelf};
use crate::core::{Gateway, PrincipalRequest};

/// The `_meta` key of `initialize` that names the session's `as_of_time`.
pub(crate) const AS_OF_TIME_META: &str = "pecr/as_of_time";
const SESSION_TOKEN: &str = "x-pecr-session-token";

/// What every session of the server shares.
pub(crate) struct Shared {
    pub core: Arc<Gateway>,
    pub grpc: InProcessGrpc,
    pub catalogue: Catalogue,
    pub budget: v1::Budget,
}

/// The PECR session an MCP session opened, and who opened it.
struct PecrSession {
    session_id: String,
    token: String,
    owner: Owner,
}

pub(crate) struct GatewayMcp {
    shared: Arc<Shared>,
    session: OnceCell<PecrSession>,
    tools: OnceCell<Vec<pecr_mcp::rmcp::model::Tool>>,
    shelf: Mutex<Shelf>,
}

/// A PECR refusal where MCP needs a protocol error (initialize, lists,
/// resources): the error's `ErrorDetail` rides in `data`.
fn protocol_error(error: &PecrError) -> McpError {
    let data = contract_json("pecr.v1.ErrorDetail", &error.to_error_detail()).ok();
    let message = format!("{}: {}", error.code.as_str(), error.message);
    if error.http_status >= 500 {
        McpError::internal_error(message, data)
    } else {
        McpError::invalid_request(message, data)
    }
}

fn status_protocol_error(status: &tonic::Status) -> McpError {
    protocol_error(&pecr_error_of(status))
}

impl GatewayMcp {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            session: OnceCell::new(),
            tools: OnceCell::new(),
            shelf: Mutex::new(Shelf::default()),
        }
    }

    fn client(&self) -> GatewayServiceClient<InProcessGrpc> {
        GatewayServiceClient::new(self.shared.grpc.clone())
    }

    /// The session, for its owner only: its evidence is the owner's.
    fn session(&self, caller: &Caller) -> Result<&PecrSession, McpError> {
        let session = self
            .session
            .get()
            .ok_or_else(|| McpError::invalid_request("the MCP session is not initialized", None))?;
        if session.owner != Owner::of(&caller.principal) {
            return Err(protocol_error(&invalid_session_credentials()));
        }
        Ok(session)
    }

    /// CreateSession for the caller, as a REST client would send it.
    async fn open(
        &self,
        caller: &Caller,
        as_of_time: Option<String>,
    ) -> Result<PecrSession, McpError> {
        let request = v1::CreateSessionRequest {
            budget: Some(self.shared.budget),
            as_of_time,
            calls: Vec::new(),
        };
        let response = self
            .client()
            .create_session(in_process::request(caller, request, &[]))
            .await
            .map_err(|status| status_protocol_error(&status))?;
        let token = response
            .metadata()
            .get(SESSION_TOKEN)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| protocol_error(&PecrError::internal("no session token issued")))?;
        Ok(PecrSession {
            session_id: response.into_inner().session_id,
            token,
            owner: Owner::of(&caller.principal),
        })
    }

    /// The tools this session's caller may use, decided once per session.
    async fn visible_tools(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> PecrResult<&Vec<pecr_mcp::rmcp::model::Tool>> {
        self.tools
            .get_or_try_init(|| async {
                let core = &self.shared.core;
                let record = core.sessions.open(&core.ledger, session_id).await?;
                let principal = PrincipalRequest {
                    principal: caller.principal.clone(),
                    request_id: pecr_contracts::ids::new_ulid(),
                };
                let usable = core.usable_operators(&principal, &record).await?;
                Ok(self.shared.catalogue.tools(&usable))
            })
            .await
    }

    async fn call_operator(
        &self,
        caller: &Caller,
        op_name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, McpError> {
        let session = self.session(caller)?;
        let request = v1::CallOperatorRequest {
            op_name: op_name.to_owned(),
            session_id: session.session_id.clone(),
            params: arguments.to_string(),
        };
        let request = in_process::request(caller, request, &[(SESSION_TOKEN, &session.token)]);
        let reply = self.client().call_operator(request).await;
        let structured = match reply_json("pecr.v1.CallOperatorResponse", reply) {
            Ok(value) => value,
            Err(refused) => return Ok(refused),
        };
        let result = structured.get("result").cloned().unwrap_or(Value::Null);
        if let Ok(mut shelf) = self.shelf.lock() {
            shelf.keep(&result);
        }
        Ok(success(structured, evidence::render(&result)))
    }

    async fn finalize(
        &self,
        caller: &Caller,
        arguments: &pecr_mcp::rmcp::model::JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let session = self.session(caller)?;
        let request = match self
            .shared
            .catalogue
            .finalize_arguments()
            .read::<v1::FinalizeRequest>(arguments)
        {
            Ok(request) => v1::FinalizeRequest {
                session_id: session.session_id.clone(),
                ..request
            },
            Err(refused) => {
                return Ok(pecr_mcp::tool_result::invalid_arguments(&refused));
            }
        };
        let request = in_process::request(caller, request, &[(SESSION_TOKEN, &session.token)]);
        let reply = self.client().finalize(request).await;
        let structured = match reply_json("pecr.v1.FinalizeResponse", reply) {
            Ok(value) => value,
            Err(refused) => return Ok(refused),
        };
        let text = finalize_text(&structured);
        Ok(success(structured, text))
    }
}

/// The terminal mode, then each claim's status and text.
fn finalize_text(response: &Value) -> String {
    let mode = response["terminal_mode"].as_str().unwrap_or("?");
    let mut lines = vec![format!("terminal mode: {mode}")];
    if let Some(claims) = response["claim_map"]["claims"].as_array() {
        for claim in claims {
            lines.push(format!(
                "{}: {}",
                claim["status"].as_str().unwrap_or("?"),
                claim["claim_text"].as_str().unwrap_or("")
            ));
        }
    }
    lines.join("\n")
}

impl ServerHandler for GatewayMcp {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            "pecr-gateway",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Governed context: each tool is a PECR operator, decided by policy, redacted and \
             recorded. Cite the evidence_unit_id of units you received when you finalize.",
        )
    }

    /// Sessions are what PECR sessions map to, so only the revisions with
    /// an initialize handshake are spoken.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        pecr_mcp::session_protocol_versions()
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        let caller = caller_of(&context)?;
        // The SDK lifts `_meta` out of the params into the context.
        let as_of_time = request
            .meta
            .as_ref()
            .and_then(|meta| meta.get(AS_OF_TIME_META))
            .or_else(|| context.meta.get(AS_OF_TIME_META))
            .map(|value| {
                value.as_str().map(str::to_owned).ok_or_else(|| {
                    protocol_error(&PecrError::invalid_params(format!(
                        "_meta.{AS_OF_TIME_META} must be a string"
                    )))
                })
            })
            .transpose()?;
        // Every refusal comes before the PECR session is opened, so none
        // leaves an orphan session on the ledger.
        let negotiated = self.negotiate_initialize(&request)?;
        let already = || McpError::invalid_request("the session is already initialized", None);
        if self.session.initialized() {
            return Err(already());
        }
        let opened = self.open(&caller, as_of_time).await?;
        self.session.set(opened).map_err(|_| already())?;
        context.peer.set_peer_info(request);
        Ok(negotiated)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = caller_of(&context)?;
        let session = self.session(&caller)?;
        let tools = self
            .visible_tools(&caller, &session.session_id)
            .await
            .map_err(|error| protocol_error(&error))?;
        Ok(ListToolsResult::with_all_items(tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = caller_of(&context)?;
        let arguments = request.arguments.unwrap_or_default();
        let result = if request.name == FINALIZE {
            self.finalize(&caller, &arguments).await?
        } else if pecr_adapters::Operator::parse(&request.name).is_some() {
            self.call_operator(&caller, &request.name, Value::Object(arguments))
                .await?
        } else {
            return Err(McpError::invalid_params(
                format!("unknown tool {}", request.name),
                None,
            ));
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.session(&caller_of(&context)?)?;
        let shelf = self
            .shelf
            .lock()
            .map_err(|_| McpError::internal_error("evidence shelf unavailable", None))?;
        let resources = shelf
            .all()
            .map(|(uri, unit)| {
                let mut resource = Resource::new(uri, pecr_mcp::tool_result::evidence_label(unit));
                resource.mime_type = Some("application/json".to_owned());
                resource
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.session(&caller_of(&context)?)?;
        let unit = {
            let shelf = self
                .shelf
                .lock()
                .map_err(|_| McpError::internal_error("evidence shelf unavailable", None))?;
            shelf.get(&request.uri).cloned()
        };
        // Another session's id and one never received look the same.
        let unit = unit.ok_or_else(|| {
            McpError::resource_not_found("no such evidence in this session", None)
        })?;
        let mut contents = ResourceContents::text(unit.to_string(), request.uri);
        if let ResourceContents::TextResourceContents { mime_type, .. } = &mut contents {
            *mime_type = Some("application/json".to_owned());
        }
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

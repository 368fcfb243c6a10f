//! The controller's MCP server at `/mcp` of its HTTP port: one tool,
//! `ask`, that runs a whole governed run through `RunStream`, in-process
//! through the controller's own gRPC stack with the caller's identity
//! metadata (so authentication, the `run` rate limit and the metrics are
//! those of any run). When the client gave a `progressToken`, each event of
//! the run stream is sent on as a progress notification, with the event as
//! the run stream writes it; the tool's result is the run's answer.

use std::sync::Arc;

use pecr_errors::PecrError;
use pecr_mcp::arguments::ContractArguments;
use pecr_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ProtocolVersion, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use pecr_mcp::rmcp::service::RequestContext;
use pecr_mcp::rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use pecr_mcp::tool_result::{
    contract_json, evidence_label, invalid_arguments, status_error, success, tool_error,
};
use pecr_mcp::{Caller, McpSettings, caller_of, in_process};
use pecr_proto::v1;
use pecr_proto::v1::controller_service_client::ControllerServiceClient;
use pecr_proto::v1::run_stream_response::Event;
use pecr_server::{InProcessGrpc, InProcessRoutes};
use serde_json::Value;

const ASK: &str = "ask";
const ASK_DESCRIPTION: &str = "Ask PECR a question: the controller runs a governed run (every \
data access decided by policy, redacted, recorded) and answers with the response text, the \
claims with their status, the evidence each cites (identities only) and the terminal mode. \
Send a progressToken to follow the run's steps as progress notifications.";

/// What the MCP server is built from.
pub(crate) struct McpParts {
    pub auth: pecr_auth::Authenticator,
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
}

struct Shared {
    grpc: InProcessGrpc,
    ask: Tool,
    arguments: ContractArguments,
}

/// `/mcp` (and the protected-resource document in OIDC mode), built on the
/// controller's own gRPC stack.
pub(crate) fn routes(parts: McpParts) -> Result<InProcessRoutes, pecr_config::StartupError> {
    let failed =
        |err: String| pecr_config::StartupError::new("ERR_SERVER_FAILED", format!("MCP: {err}"));
    let arguments = ContractArguments::new("pecr.v1.RunStreamRequest", &[]).map_err(failed)?;
    let mut ask = Tool::new(ASK, ASK_DESCRIPTION, arguments.schema());
    ask.annotations = Some(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    );
    let settings = McpSettings {
        allowed_hosts: parts.allowed_hosts,
        resource_name: "PECR controller",
        session_idle: pecr_mcp::SESSION_IDLE,
        max_body_bytes: parts.max_body_bytes,
    };
    let auth = parts.auth;
    Ok(Box::new(move |grpc, stopping| {
        let shared = Arc::new(Shared {
            grpc,
            ask,
            arguments,
        });
        pecr_mcp::router(settings, auth, stopping, move || ControllerMcp {
            shared: Arc::clone(&shared),
        })
    }))
}

struct ControllerMcp {
    shared: Arc<Shared>,
}

/// Where progress goes, when the client asked for it.
struct Progress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    sent: u32,
}

impl Progress {
    /// Sends one run event; a client that went away does not stop the run.
    async fn event(&mut self, event: &v1::RunStreamResponse) {
        let Ok(json) = contract_json("pecr.v1.RunStreamResponse", event) else {
            return;
        };
        self.sent += 1;
        let mut notification =
            ProgressNotificationParam::new(self.token.clone(), f64::from(self.sent));
        notification.message = Some(json.to_string());
        if let Err(err) = self.peer.notify_progress(notification).await {
            tracing::debug!(error = %err, "mcp.progress_not_sent");
        }
    }
}

impl ControllerMcp {
    async fn ask(
        &self,
        caller: &Caller,
        request: v1::RunStreamRequest,
        mut progress: Option<Progress>,
    ) -> CallToolResult {
        let mut client = ControllerServiceClient::new(self.shared.grpc.clone());
        let mut stream = match client
            .run_stream(in_process::request(caller, request, &[]))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => return status_error(&status),
        };
        loop {
            let event = match stream.message().await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return tool_error(&PecrError::internal("the run ended without an answer"));
                }
                Err(status) => return status_error(&status),
            };
            if let Some(progress) = progress.as_mut() {
                progress.event(&event).await;
            }
            if let Some(Event::Result(answer)) = event.event {
                return match contract_json("pecr.v1.RunResponse", &answer) {
                    Ok(structured) => {
                        let text = answer_text(&structured);
                        success(structured, text)
                    }
                    Err(error) => tool_error(&error),
                };
            }
        }
    }
}

/// The answer, its terminal mode, each claim's status and what it cites.
fn answer_text(answer: &Value) -> String {
    let mut lines = vec![
        answer["response_text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        format!(
            "terminal mode: {}",
            answer["terminal_mode"].as_str().unwrap_or("?")
        ),
    ];
    if let Some(claims) = answer["claim_map"]["claims"].as_array() {
        for claim in claims {
            let cited: Vec<&str> = claim["evidence_unit_ids"]
                .as_array()
                .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            lines.push(format!(
                "{}: {} [{}]",
                claim["status"].as_str().unwrap_or("?"),
                claim["claim_text"].as_str().unwrap_or_default(),
                cited.join(", ")
            ));
        }
    }
    if let Some(units) = answer["cited_evidence"].as_array() {
        lines.extend(units.iter().map(evidence_label));
    }
    lines.join("\n")
}

impl ServerHandler for ControllerMcp {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "pecr-controller",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Ask questions with the ask tool; each is one governed run whose answer cites \
                 the evidence it rests on.",
            )
    }

    /// The same revisions as the gateway's server, so one client
    /// configuration fits both.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        pecr_mcp::session_protocol_versions()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        caller_of(&context)?;
        Ok(ListToolsResult::with_all_items(vec![
            self.shared.ask.clone(),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = caller_of(&context)?;
        if request.name != ASK {
            return Err(McpError::invalid_params(
                format!("unknown tool {}", request.name),
                None,
            ));
        }
        let arguments = request.arguments.unwrap_or_default();
        let run = match self
            .shared
            .arguments
            .read::<v1::RunStreamRequest>(&arguments)
        {
            Ok(run) => run,
            Err(refused) => {
                return Ok(invalid_arguments(&refused).into());
            }
        };
        let progress = context.meta.get_progress_token().map(|token| Progress {
            peer: context.peer.clone(),
            token,
            sent: 0,
        });
        Ok(self.ask(&caller, run, progress).await.into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ask_takes_the_run_request_and_nothing_else() {
        let arguments = ContractArguments::new("pecr.v1.RunStreamRequest", &[]).expect("arguments");
        let schema = arguments.schema();
        assert_eq!(schema["required"], json!(["query"]));
        assert_eq!(
            schema["properties"]["budget"]["anyOf"][1],
            json!({"type": "null"})
        );
        let object = |value: Value| match value {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        let run: v1::RunStreamRequest = arguments
            .read(&object(json!({"query": "status?"})))
            .expect("a query");
        assert_eq!(run.query, "status?");
        let refused = arguments
            .read::<v1::RunStreamRequest>(&object(json!({"query": "q", "engine": "rlm"})))
            .err()
            .and_then(|err| err.field);
        assert_eq!(refused.as_deref(), Some("engine"));
    }

    #[test]
    fn the_answer_text_names_mode_claims_and_cited_evidence() {
        let text = answer_text(&json!({
            "response_text": "Active, gold.",
            "terminal_mode": "SUPPORTED",
            "claim_map": {"claims": [{"status": "SUPPORTED", "claim_text": "active",
                                      "evidence_unit_ids": ["e1"]}]},
            "cited_evidence": [{"evidence_unit_id": "e1", "source_system": "pg_safeview",
                                "object_id": "safe_customer_view_public", "version_id": "v"}]
        }));
        assert_eq!(
            text,
            "Active, gold.\nterminal mode: SUPPORTED\nSUPPORTED: active [e1]\n\
             evidence e1 (pg_safeview safe_customer_view_public @ v)"
        );
    }
}

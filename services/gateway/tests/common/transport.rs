//! The gateway's two front doors, gRPC and the REST edge, behind one set of
//! calls, so a scenario that must hold for both is written once and run
//! through each (`for transport in TRANSPORTS`). Every refusal is checked on
//! the way against its door's own rule: over gRPC the status code is the one
//! the error's HTTP status maps to, over REST the body is exactly the
//! error's `ErrorResponse`, as JSON.

use pecr_errors::{ErrorCode, PecrError, TerminalMode, grpc_code_for_http};
use pecr_proto::v1;
use pecr_testkit::HttpAnswer;
use serde_json::{Value, json};

use super::{Mesh, call, error, error_body, outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Rest,
}

pub const TRANSPORTS: [Transport; 2] = [Transport::Grpc, Transport::Rest];

/// A refused call: its PECR error, and the bytes that carried it (the gRPC
/// status details or the REST body), so a repeat can be compared byte for
/// byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub error: PecrError,
    pub wire: Vec<u8>,
}

/// An answer as JSON (a gRPC response in the REST edge's shape, `json_text`
/// fields parsed), and over REST also the body exactly as sent.
#[derive(Debug)]
pub struct Reply {
    pub json: Value,
    pub rest_body: Option<String>,
}

/// A session opened through one door; its calls go through the same door,
/// as its `principal` with its `token` (each header left out when empty).
#[derive(Clone)]
pub struct DoorSession {
    pub transport: Transport,
    pub principal: String,
    pub token: String,
    pub session_id: String,
    pub trace_id: String,
    /// The outcomes of the calls the session was opened with.
    pub outcomes: Vec<Result<Value, PecrError>>,
}

impl Transport {
    /// Opens a session for `principal` with its first `calls`.
    pub async fn open(
        self,
        mesh: &Mesh,
        principal: &str,
        budget: v1::Budget,
        calls: &[(&str, Value)],
    ) -> Result<DoorSession, Refusal> {
        match self {
            Self::Grpc => {
                let request = grpc_request(
                    principal,
                    None,
                    v1::CreateSessionRequest {
                        budget: Some(budget),
                        as_of_time: None,
                        calls: calls
                            .iter()
                            .map(|(op_name, params)| v1::OperatorCall {
                                op_name: (*op_name).to_owned(),
                                params: params.to_string(),
                            })
                            .collect(),
                    },
                );
                let reply = mesh
                    .client()
                    .create_session(request)
                    .await
                    .map_err(grpc_refusal)?;
                let token = reply
                    .metadata()
                    .get("x-pecr-session-token")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let session = reply.into_inner();
                Ok(DoorSession {
                    transport: self,
                    principal: principal.to_owned(),
                    token,
                    session_id: session.session_id,
                    trace_id: session.trace_id,
                    outcomes: session.outcomes.iter().map(outcome).collect(),
                })
            }
            Self::Rest => {
                let mut body = json!({"budget": {
                    "max_operator_calls": budget.max_operator_calls,
                    "max_bytes": budget.max_bytes,
                    "max_wallclock_ms": budget.max_wallclock_ms,
                    "max_recursion_depth": budget.max_recursion_depth,
                }});
                if !calls.is_empty() {
                    body["calls"] = calls
                        .iter()
                        .map(|(op_name, params)| json!({"op_name": op_name, "params": params}))
                        .collect();
                }
                let answer = mesh.post("/v1/sessions", principal, None, &body).await;
                let reply = rest_reply(answer)?;
                let text = |key: &str| reply.json[key].as_str().unwrap_or_default().to_owned();
                let outcomes = reply.json["outcomes"]
                    .as_array()
                    .map(|outcomes| outcomes.iter().map(rest_outcome).collect())
                    .unwrap_or_default();
                Ok(DoorSession {
                    transport: self,
                    principal: principal.to_owned(),
                    token: reply.token.unwrap_or_default(),
                    session_id: text("session_id"),
                    trace_id: text("trace_id"),
                    outcomes,
                })
            }
        }
    }

    /// `SimulatePolicy` as `principal` (no principal when empty).
    pub async fn simulate(
        self,
        mesh: &Mesh,
        principal: &str,
        action: &str,
        params: Value,
        policy_snapshot_hash: Option<&str>,
    ) -> Result<Reply, Refusal> {
        match self {
            Self::Grpc => {
                let request = grpc_request(
                    principal,
                    None,
                    v1::SimulatePolicyRequest {
                        action: action.into(),
                        params: params.to_string(),
                        policy_snapshot_hash: policy_snapshot_hash.map(str::to_owned),
                        policy_bundle_hash: None,
                        as_of_time: None,
                    },
                );
                let answer = mesh
                    .client()
                    .simulate_policy(request)
                    .await
                    .map_err(grpc_refusal)?
                    .into_inner();
                let mut json = json!({"allow": answer.allow, "cacheable": answer.cacheable});
                if let Some(reason) = answer.reason {
                    json["reason"] = json!(reason);
                }
                if let Some(redaction) = answer.redaction {
                    json["redaction"] = parsed(&redaction);
                }
                Ok(Reply {
                    json,
                    rest_body: None,
                })
            }
            Self::Rest => {
                let mut body = json!({"action": action, "params": params});
                if let Some(hash) = policy_snapshot_hash {
                    body["policy_snapshot_hash"] = json!(hash);
                }
                let answer = mesh
                    .post("/v1/policies/simulate", principal, None, &body)
                    .await;
                rest_reply(answer).map(RestReply::into_reply)
            }
        }
    }
}

impl DoorSession {
    /// Calls an operator in the session; Ok is its `result`.
    pub async fn op(&self, mesh: &Mesh, op_name: &str, params: Value) -> Result<Value, Refusal> {
        match self.transport {
            Transport::Grpc => {
                let request = self.request(v1::CallOperatorRequest {
                    op_name: op_name.into(),
                    session_id: self.session_id.clone(),
                    params: params.to_string(),
                });
                let answer = mesh
                    .client()
                    .call_operator(request)
                    .await
                    .map_err(grpc_refusal)?
                    .into_inner();
                Ok(parsed(&answer.result))
            }
            Transport::Rest => {
                let body = json!({"session_id": self.session_id, "params": params});
                let answer = mesh
                    .post(
                        &format!("/v1/operators/{op_name}"),
                        &self.principal,
                        self.token(),
                        &body,
                    )
                    .await;
                Ok(rest_reply(answer)?.json["result"].clone())
            }
        }
    }

    /// Finalizes the session with an answer and no claims.
    pub async fn finalize(&self, mesh: &Mesh) -> Result<Value, Refusal> {
        let claim_map_id = format!("cm-{}", self.session_id);
        match self.transport {
            Transport::Grpc => {
                let request = self.request(v1::FinalizeRequest {
                    session_id: self.session_id.clone(),
                    response_text: "answer".into(),
                    claim_map: Some(v1::ClaimMap {
                        claim_map_id,
                        terminal_mode: v1::TerminalMode::InsufficientEvidence as i32,
                        claims: Vec::new(),
                        coverage_threshold: 0.0,
                        coverage_observed: 0.0,
                        notes: None,
                    }),
                    run: None,
                });
                let answer = mesh
                    .client()
                    .finalize(request)
                    .await
                    .map_err(grpc_refusal)?
                    .into_inner();
                Ok(json!({"terminal_mode": answer.terminal_mode().as_str_name()}))
            }
            Transport::Rest => {
                let body = json!({
                    "session_id": self.session_id,
                    "response_text": "answer",
                    "claim_map": {
                        "claim_map_id": claim_map_id,
                        "terminal_mode": "INSUFFICIENT_EVIDENCE",
                        "claims": [],
                        "coverage_threshold": 0.0,
                        "coverage_observed": 0.0,
                    },
                });
                let answer = mesh
                    .post("/v1/finalize", &self.principal, self.token(), &body)
                    .await;
                Ok(rest_reply(answer)?.json)
            }
        }
    }

    fn token(&self) -> Option<&str> {
        Some(self.token.as_str()).filter(|token| !token.is_empty())
    }

    /// A gRPC request with the session's caller metadata.
    fn request<T>(&self, body: T) -> tonic::Request<T> {
        grpc_request(&self.principal, self.token(), body)
    }
}

/// A gRPC request as `principal` (no principal header when empty).
fn grpc_request<T>(principal: &str, token: Option<&str>, body: T) -> tonic::Request<T> {
    let mut request = call(principal, token, body);
    if principal.is_empty() {
        request.metadata_mut().remove("x-pecr-principal-id");
    }
    request
}

fn parsed(json_text: &str) -> Value {
    serde_json::from_str(json_text).unwrap_or_else(|err| panic!("not JSON ({err}): {json_text}"))
}

fn grpc_refusal(status: tonic::Status) -> Refusal {
    let refused = error(&status);
    assert_eq!(
        status.code(),
        grpc_code_for_http(refused.http_status),
        "the gRPC code of {refused}"
    );
    Refusal {
        error: refused,
        wire: status.details().to_vec(),
    }
}

/// A REST success, with the session token header when one came.
struct RestReply {
    json: Value,
    body: String,
    token: Option<String>,
}

impl RestReply {
    fn into_reply(self) -> Reply {
        Reply {
            json: self.json,
            rest_body: Some(self.body),
        }
    }
}

fn rest_reply(answer: HttpAnswer) -> Result<RestReply, Refusal> {
    assert!(
        answer.content_type.starts_with("application/json"),
        "{}: {}",
        answer.content_type,
        answer.body
    );
    if answer.status != 200 {
        let refused = rest_error(&answer.json(), answer.status);
        let (code, hint) = (refused.code.as_str(), refused.hint.as_str_name());
        assert_eq!(
            answer.body,
            error_body(code, &refused.message, hint, refused.retryable),
            "the REST body of {refused}"
        );
        return Err(Refusal {
            error: refused,
            wire: answer.body.into_bytes(),
        });
    }
    Ok(RestReply {
        json: answer.json(),
        token: answer.header("x-pecr-session-token"),
        body: answer.body,
    })
}

/// The error an `ErrorResponse` body describes, at `http_status`.
fn rest_error(body: &Value, http_status: u16) -> PecrError {
    let code = body["code"]
        .as_str()
        .and_then(ErrorCode::parse)
        .unwrap_or_else(|| panic!("no PECR code in {body}"));
    let hint = body["terminal_mode_hint"]
        .as_str()
        .and_then(TerminalMode::from_str_name)
        .unwrap_or_else(|| panic!("no terminal mode hint in {body}"));
    PecrError::new(code, body["message"].as_str().unwrap_or_default())
        .with_http(http_status)
        .with_hint(hint)
        .with_retryable(body["retryable"] == json!(true))
}

/// One outcome of a REST batch: `{"ok": response}` or `{"error": detail}`.
fn rest_outcome(outcome: &Value) -> Result<Value, PecrError> {
    if let Some(ok) = outcome.get("ok") {
        return Ok(ok["result"].clone());
    }
    let detail = &outcome["error"];
    let http_status = detail["http_status"]
        .as_u64()
        .and_then(|status| u16::try_from(status).ok())
        .unwrap_or_else(|| panic!("no http_status in {outcome}"));
    Err(rest_error(&detail["error"], http_status))
}

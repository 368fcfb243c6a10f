//! The REST edge end to end: a real HTTP client (hyper-util) against the
//! edge router served on 127.0.0.1:0, in front of real tonic services
//! called in-process.
//!
//! `HarnessGateway` and `HarnessController` below are a TEST HARNESS for the
//! edge, not the real gateway or controller: they record what reached them
//! (metadata, peer address) and answer with fixed responses chosen from the
//! request, so every transcoding rule can be checked byte for byte.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pecr_edge::EdgeConfig;
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::service_names::{CONTROLLER, GATEWAY};
use pecr_proto::v1::controller_service_server::{ControllerService, ControllerServiceServer};
use pecr_proto::v1::gateway_service_server::{GatewayService, GatewayServiceServer};
use pecr_proto::v1::*;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::metadata::{AsciiMetadataValue, KeyAndValueRef, MetadataMap};
use tonic::{Request, Response, Status};

// ---------------------------------------------------------------------------
// Test harness services
// ---------------------------------------------------------------------------

/// What the last call to a harness service saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    rpc: String,
    metadata: HashMap<String, Vec<String>>,
    remote: Option<SocketAddr>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Option<Seen>>>);

impl Recorder {
    fn record<T>(&self, rpc: &str, request: &Request<T>) {
        let mut metadata: HashMap<String, Vec<String>> = HashMap::new();
        for entry in request.metadata().iter() {
            if let KeyAndValueRef::Ascii(key, value) = entry {
                metadata
                    .entry(key.as_str().to_owned())
                    .or_default()
                    .push(value.to_str().unwrap_or("<opaque>").to_owned());
            }
        }
        let seen = Seen {
            rpc: rpc.to_owned(),
            metadata,
            remote: request.remote_addr(),
        };
        *self.0.lock().expect("recorder lock") = Some(seen);
    }

    fn last(&self) -> Seen {
        self.0
            .lock()
            .expect("recorder lock")
            .clone()
            .expect("a call was recorded")
    }
}

fn metadata_text(metadata: &MetadataMap, key: &str) -> Option<String> {
    metadata
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The errors the harness gateway answers for `POST /v1/operators/err_*`.
fn harness_error(op_name: &str) -> Option<PecrError> {
    Some(match op_name {
        "err_400" => PecrError::invalid_params("operator not allowlisted"),
        "err_401" => PecrError::new(ErrorCode::PolicyDenied, "missing or invalid session token")
            .with_http(401),
        "err_403" => PecrError::new(ErrorCode::PolicyDenied, "policy denied"),
        "err_404" => PecrError::invalid_params("unknown session_id").with_http(404),
        "err_409" => PecrError::invalid_params("session already finalized").with_http(409),
        "err_429" => PecrError::new(
            ErrorCode::RateLimited,
            "rate limit exceeded for operator calls",
        ),
        "err_502" => {
            PecrError::new(ErrorCode::SourceUnavailable, "gateway request failed").with_http(502)
        }
        "err_503" => PecrError::new(ErrorCode::SourceUnavailable, "policy engine unavailable"),
        "err_504" => PecrError::new(ErrorCode::SourceTimeout, "policy engine timed out"),
        _ => return None,
    })
}

/// A status whose ErrorDetail carries a `detail` JSON value.
fn status_with_detail() -> Status {
    let detail = ErrorDetail {
        error: Some(ErrorResponse {
            code: "ERR_INVALID_PARAMS".into(),
            message: "claim_map_id already exists".into(),
            terminal_mode_hint: TerminalMode::InsufficientEvidence as i32,
            retryable: false,
            detail: Some(r#"{"k":1,"f":1.0}"#.into()),
        }),
        http_status: 409,
    };
    let details = pecr_proto::google::rpc::Status {
        code: tonic::Code::FailedPrecondition as i32,
        message: "claim_map_id already exists".into(),
        details: vec![prost_types::Any {
            type_url: pecr_errors::ERROR_DETAIL_TYPE_URL.into(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(
        tonic::Code::FailedPrecondition,
        "claim_map_id already exists",
        details.encode_to_vec().into(),
    )
}

struct HarnessGateway {
    recorder: Recorder,
}

#[tonic::async_trait]
impl GatewayService for HarnessGateway {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        self.recorder.record("CreateSession", &request);
        if request.metadata().get("x-pecr-principal-id").is_none() {
            return Err(PecrError::new(
                ErrorCode::PolicyDenied,
                "missing x-pecr-principal-id header",
            )
            .with_http(401)
            .into());
        }
        let trace_id =
            metadata_text(request.metadata(), "x-pecr-trace-id").unwrap_or_else(|| "T-1".into());
        let body = request.into_inner();
        let mut response = Response::new(CreateSessionResponse {
            session_id: "S-1".into(),
            trace_id,
            policy_snapshot_id: format!("P-{}", body.as_of_time.as_deref().unwrap_or("default")),
            budget: body.budget,
            outcomes: Vec::new(),
        });
        response.metadata_mut().insert(
            "x-pecr-session-token",
            AsciiMetadataValue::from_static("tok-1"),
        );
        response
            .metadata_mut()
            .insert("x-internal", AsciiMetadataValue::from_static("hidden"));
        Ok(response)
    }

    async fn simulate_policy(
        &self,
        request: Request<SimulatePolicyRequest>,
    ) -> Result<Response<SimulatePolicyResponse>, Status> {
        self.recorder.record("SimulatePolicy", &request);
        let body = request.into_inner();
        Ok(Response::new(SimulatePolicyResponse {
            allow: body.action == "read",
            cacheable: false,
            reason: None,
            redaction: (body.action == "redact").then_some(body.params),
        }))
    }

    async fn call_operator(
        &self,
        request: Request<CallOperatorRequest>,
    ) -> Result<Response<CallOperatorResponse>, Status> {
        self.recorder.record("CallOperator", &request);
        let body = request.into_inner();
        if let Some(error) = harness_error(&body.op_name) {
            return Err(error.into());
        }
        match body.op_name.as_str() {
            "echo" => Ok(Response::new(CallOperatorResponse {
                terminal_mode: TerminalMode::Supported as i32,
                // The stored text comes back both embedded and as a string.
                result: body.params.clone(),
                policy_decision: Some(PolicyDecision {
                    allow: true,
                    cacheable: true,
                    reason: Some(body.params),
                    redaction: Some("{}".into()),
                }),
            })),
            "no_detail" => Err(Status::internal("connection to 10.0.0.7 refused")),
            "with_detail" => Err(status_with_detail()),
            "unspecified" => Ok(Response::new(CallOperatorResponse {
                terminal_mode: TerminalMode::Unspecified as i32,
                result: "{}".into(),
                policy_decision: None,
            })),
            "not_json" => Ok(Response::new(CallOperatorResponse {
                terminal_mode: TerminalMode::Supported as i32,
                result: "{not json".into(),
                policy_decision: None,
            })),
            _ => Err(PecrError::invalid_params("operator not allowlisted").into()),
        }
    }

    async fn call_operators(
        &self,
        request: Request<CallOperatorsRequest>,
    ) -> Result<Response<CallOperatorsResponse>, Status> {
        self.recorder.record("CallOperators", &request);
        let outcomes = request
            .into_inner()
            .calls
            .into_iter()
            .map(|call| {
                let outcome = match call.op_name.as_str() {
                    "echo" => operator_outcome::Outcome::Ok(CallOperatorResponse {
                        terminal_mode: TerminalMode::Supported as i32,
                        result: call.params,
                        policy_decision: None,
                    }),
                    _ => operator_outcome::Outcome::Error(
                        PecrError::invalid_params("operator not allowlisted").to_error_detail(),
                    ),
                };
                OperatorOutcome {
                    outcome: Some(outcome),
                }
            })
            .collect();
        Ok(Response::new(CallOperatorsResponse { outcomes }))
    }

    async fn finalize(
        &self,
        request: Request<FinalizeRequest>,
    ) -> Result<Response<FinalizeResponse>, Status> {
        self.recorder.record("Finalize", &request);
        let body = request.into_inner();
        let mut claim_map = body.claim_map.unwrap_or_default();
        claim_map.terminal_mode = TerminalMode::Supported as i32;
        Ok(Response::new(FinalizeResponse {
            terminal_mode: TerminalMode::Supported as i32,
            trace_id: "T-1".into(),
            claim_map: Some(claim_map),
            response_text: body.response_text,
            run_id: None,
        }))
    }
}

struct HarnessController {
    recorder: Recorder,
}

fn harness_metadata(run_id: &str, request_id: String) -> ReplayBundleMetadata {
    ReplayBundleMetadata {
        schema_version: 1,
        run_id: run_id.into(),
        trace_id: "T-1".into(),
        request_id,
        principal_id_hash: "h".into(),
        engine_mode: "baseline".into(),
        recorded_at_unix_ms: u64::MAX,
        terminal_mode: TerminalMode::Supported as i32,
        quality_score: 87.5,
        bundle_hash: "b".into(),
    }
}

fn harness_evaluation(evaluation_id: &str, name: String, echo: String) -> ReplayEvaluationResult {
    ReplayEvaluationResult {
        evaluation_id: evaluation_id.into(),
        evaluation_name: name,
        principal_id_hash: echo,
        created_at_unix_ms: 1_700_000_000_000,
        replay_ids: vec![],
        missing_replay_ids: vec![],
        run_results: vec![],
        scorecards: vec![],
        overall_pass: true,
    }
}

#[tonic::async_trait]
impl ControllerService for HarnessController {
    async fn run(&self, request: Request<RunRequest>) -> Result<Response<RunResponse>, Status> {
        self.recorder.record("Run", &request);
        let body = request.into_inner();
        Ok(Response::new(RunResponse {
            terminal_mode: TerminalMode::InsufficientEvidence as i32,
            trace_id: "T-1".into(),
            claim_map: Some(ClaimMap {
                claim_map_id: "C-1".into(),
                terminal_mode: TerminalMode::InsufficientEvidence as i32,
                claims: vec![],
                coverage_threshold: 0.95,
                coverage_observed: 0.0,
                notes: None,
            }),
            response_text: body.query,
            run_id: "R-1".into(),
            stop_reason: format!("budget={:?}", body.budget.map(|b| b.max_operator_calls)),
            cited_evidence: vec![],
        }))
    }

    async fn list_replays(
        &self,
        request: Request<ListReplaysRequest>,
    ) -> Result<Response<ListReplaysResponse>, Status> {
        self.recorder.record("ListReplays", &request);
        let body = request.into_inner();
        let echo = format!("limit={:?};engine={:?}", body.limit, body.engine_mode);
        Ok(Response::new(ListReplaysResponse {
            replays: vec![harness_metadata("R-1", echo)],
        }))
    }

    async fn get_replay(
        &self,
        request: Request<GetReplayRequest>,
    ) -> Result<Response<GetReplayResponse>, Status> {
        self.recorder.record("GetReplay", &request);
        let run_id = request.into_inner().run_id;
        if run_id == "missing" {
            return Err(PecrError::new(ErrorCode::ReplayNotFound, "replay not found").into());
        }
        Ok(Response::new(GetReplayResponse {
            bundle: Some(ReplayBundle {
                metadata: Some(harness_metadata(&run_id, "Q-1".into())),
                query: "what".into(),
                budget: Some(Budget {
                    max_operator_calls: 10,
                    max_bytes: 67_108_864,
                    max_wallclock_ms: 1000,
                    max_recursion_depth: 0,
                    max_parallelism: None,
                }),
                session_id: "S-1".into(),
                policy_snapshot_id: "P-1".into(),
                loop_terminal_mode: TerminalMode::InsufficientEvidence as i32,
                loop_response_text: None,
                response_text: String::new(),
                claim_map: Some(ClaimMap {
                    claim_map_id: "C-1".into(),
                    terminal_mode: TerminalMode::InsufficientEvidence as i32,
                    claims: vec![],
                    coverage_threshold: 0.95,
                    coverage_observed: 0.0,
                    notes: None,
                }),
                operator_calls_used: 0,
                bytes_used: 0,
                depth_used: 0,
                evidence_ref_count: 0,
                evidence_unit_ids: vec![],
            }),
        }))
    }

    async fn submit_evaluation(
        &self,
        request: Request<SubmitEvaluationRequest>,
    ) -> Result<Response<SubmitEvaluationResponse>, Status> {
        self.recorder.record("SubmitEvaluation", &request);
        let submission = request.into_inner().submission.unwrap_or_default();
        let echo = format!(
            "ids={:?};engine={:?};min={:?};max={:?}",
            submission.replay_ids,
            submission.engine_mode,
            submission.min_quality_score,
            submission.max_source_unavailable_rate
        );
        let mut evaluation = harness_evaluation("E-1", submission.evaluation_name, echo);
        evaluation.replay_ids = submission.replay_ids;
        Ok(Response::new(SubmitEvaluationResponse {
            evaluation: Some(evaluation),
        }))
    }

    async fn get_scorecards(
        &self,
        request: Request<GetScorecardsRequest>,
    ) -> Result<Response<GetScorecardsResponse>, Status> {
        self.recorder.record("GetScorecards", &request);
        let body = request.into_inner();
        Ok(Response::new(GetScorecardsResponse {
            scorecards: vec![RunQualityScorecard {
                engine_mode: body.engine_mode.unwrap_or_else(|| "all".into()),
                run_count: u64::from(body.limit.unwrap_or(0)),
                average_quality_score: 50.0,
                minimum_quality_score: 0.0,
                maximum_quality_score: 100.0,
                supported_rate: 0.5,
                source_unavailable_rate: 0.0,
                average_coverage_observed: 0.1234,
            }],
        }))
    }

    async fn get_evaluation(
        &self,
        request: Request<GetEvaluationRequest>,
    ) -> Result<Response<GetEvaluationResponse>, Status> {
        self.recorder.record("GetEvaluation", &request);
        let id = request.into_inner().evaluation_id;
        Ok(Response::new(GetEvaluationResponse {
            evaluation: Some(harness_evaluation(&id, "stored".into(), String::new())),
        }))
    }
}

/// A layer stand-in: counts every call that passes through the gRPC stack.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

// ---------------------------------------------------------------------------
// Serving and the client
// ---------------------------------------------------------------------------

struct Edge {
    addr: SocketAddr,
    recorder: Recorder,
    calls: Arc<AtomicUsize>,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }
}

async fn start(config: EdgeConfig) -> Edge {
    let recorder = Recorder::default();
    let routes = tonic::service::Routes::new(GatewayServiceServer::new(HarnessGateway {
        recorder: recorder.clone(),
    }))
    .add_service(ControllerServiceServer::new(HarnessController {
        recorder: recorder.clone(),
    }));
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = Counted {
        inner: routes,
        calls: calls.clone(),
    };
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let router = pecr_edge::router(&pool, &[GATEWAY, CONTROLLER], stack, config).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    Edge {
        addr,
        recorder,
        calls,
        client,
    }
}

async fn edge() -> Edge {
    start(EdgeConfig::default()).await
}

impl Edge {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        let request = builder.body(body).expect("request");
        let response = self.client.request(request).await.expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        }
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("x-pecr-principal-id", "dev"),
            ],
            Some(body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[("x-pecr-principal-id", "dev")], None)
            .await
    }

    /// Sends raw bytes (for bodies a client library would not produce).
    async fn raw(&self, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.write_all(request).await.expect("write");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("read");
        String::from_utf8_lossy(&out).into_owned()
    }
}

const BUDGET: &str =
    r#"{"max_operator_calls":10,"max_bytes":1024,"max_wallclock_ms":1000,"max_recursion_depth":2}"#;

fn invalid(message: &str) -> String {
    format!(
        r#"{{"code":"ERR_INVALID_PARAMS","message":"{message}","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}}"#
    )
}

const INTERNAL: &str = r#"{"code":"ERR_INTERNAL","message":"internal error","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":false}"#;

fn claim_map(claims: &str) -> String {
    format!(
        r#"{{"claim_map_id":"C-1","terminal_mode":"SUPPORTED","claims":{claims},"coverage_threshold":1,"coverage_observed":0.5}}"#
    )
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_annotated_route_answers_its_method_through_the_grpc_stack() {
    let edge = edge().await;
    let finalize = format!(
        r#"{{"session_id":"S-1","response_text":"r","claim_map":{}}}"#,
        claim_map("[]")
    );
    let session = format!(r#"{{"budget":{BUDGET}}}"#);
    let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
        (
            "POST",
            "/v1/sessions",
            Some(session.as_str()),
            "CreateSession",
        ),
        (
            "POST",
            "/v1/policies/simulate",
            Some(r#"{"action":"read","params":{}}"#),
            "SimulatePolicy",
        ),
        (
            "POST",
            "/v1/operators/echo",
            Some(r#"{"session_id":"S-1","params":{}}"#),
            "CallOperator",
        ),
        (
            "POST",
            "/v1/operator-batches",
            Some(r#"{"session_id":"S-1","calls":[{"op_name":"echo","params":{}}]}"#),
            "CallOperators",
        ),
        ("POST", "/v1/finalize", Some(finalize.as_str()), "Finalize"),
        ("POST", "/v1/run", Some(r#"{"query":"q"}"#), "Run"),
        ("GET", "/v1/replays", None, "ListReplays"),
        ("GET", "/v1/replays/R-1", None, "GetReplay"),
        (
            "POST",
            "/v1/evaluations",
            Some(r#"{"evaluation_name":"e"}"#),
            "SubmitEvaluation",
        ),
        ("GET", "/v1/evaluations/scorecards", None, "GetScorecards"),
        ("GET", "/v1/evaluations/E-1", None, "GetEvaluation"),
    ];
    for (index, (method, path, body, rpc)) in cases.iter().enumerate() {
        let reply = match body {
            Some(body) => edge.post(path, body).await,
            None => edge.send(method, path, &[], None).await,
        };
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
        assert_eq!(
            reply.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        assert_eq!(edge.recorder.last().rpc, *rpc, "{method} {path}");
        // One pass through the gRPC stack per REST request.
        assert_eq!(edge.calls.load(Ordering::SeqCst), index + 1);
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_empty_bodies() {
    let edge = edge().await;
    for (method, path, status) in [
        ("GET", "/v1/nope", 404),
        ("POST", "/v1/sessions/extra", 404),
        ("GET", "/", 404),
        ("GET", "/v1/run/", 404),
        ("GET", "/v1/run", 405),
        ("PUT", "/v1/sessions", 405),
        ("DELETE", "/v1/operators/search", 405),
        ("POST", "/v1/replays", 405),
        ("POST", "/v1/replays/R-1", 405),
        ("POST", "/v1/evaluations/scorecards", 405),
    ] {
        let reply = edge.send(method, path, &[], None).await;
        assert_eq!(reply.status, status, "{method} {path}");
        assert_eq!(reply.body, "", "{method} {path}");
    }
    assert_eq!(edge.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn static_segments_win_over_templates() {
    let edge = edge().await;
    let scorecards = edge.get("/v1/evaluations/scorecards").await.json();
    assert!(scorecards.get("scorecards").is_some(), "{scorecards}");
    let evaluation = edge.get("/v1/evaluations/E-9").await.json();
    assert_eq!(evaluation["evaluation_id"], "E-9");
}

#[tokio::test]
async fn path_variables_bind_request_fields_and_are_percent_decoded() {
    let edge = edge().await;
    let reply = edge
        .post(
            "/v1/operators/echo",
            r#"{"session_id":"S-1","params":{"q":"x"}}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = edge
        .post(
            "/v1/operators/err%5F404",
            r#"{"session_id":"S-1","params":{}}"#,
        )
        .await;
    assert_eq!(reply.status, 404, "op_name decoded to err_404");
    let evaluation = edge.get("/v1/evaluations/a%20b").await.json();
    assert_eq!(evaluation["evaluation_id"], "a b");
    // A path-bound field may not also come in a `*` body.
    let reply = edge
        .post(
            "/v1/operators/echo",
            r#"{"op_name":"err_400","session_id":"S-1","params":{}}"#,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body),
        (400, invalid("invalid JSON body"))
    );
    // Percent-encoded bytes that are not UTF-8.
    let raw = edge
        .raw(b"GET /v1/replays/%FF HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.ends_with(&invalid("invalid path parameter")), "{raw}");
}

#[tokio::test]
async fn get_query_parameters_fill_scalar_fields() {
    let edge = edge().await;
    let replays = edge.get("/v1/replays?limit=5&engine_mode=rlm").await.json();
    assert_eq!(
        replays["replays"][0]["request_id"],
        r#"limit=Some(5);engine=Some("rlm")"#
    );
    let replays = edge.get("/v1/replays").await.json();
    assert_eq!(
        replays["replays"][0]["request_id"],
        "limit=None;engine=None"
    );
    // Unknown parameters are ignored; empty strings are strings.
    let replays = edge
        .get("/v1/replays?engine_mode=&cache=1&limit=0")
        .await
        .json();
    assert_eq!(
        replays["replays"][0]["request_id"],
        r#"limit=Some(0);engine=Some("")"#
    );
    let scorecards = edge
        .get("/v1/evaluations/scorecards?limit=3&engine_mode=baseline")
        .await
        .json();
    assert_eq!(scorecards["scorecards"][0]["engine_mode"], "baseline");
    assert_eq!(scorecards["scorecards"][0]["run_count"], 3);
    for bad in [
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=",
        "limit=1&limit=2",
        "limit=4294967296",
    ] {
        let reply = edge.get(&format!("/v1/replays?{bad}")).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, invalid("invalid query string").as_str()),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------
// Bodies and JSON mapping
// ---------------------------------------------------------------------------

#[tokio::test]
async fn response_body_and_body_fields_select_the_bare_contract_objects() {
    let edge = edge().await;
    let reply = edge.get("/v1/replays/R-7").await;
    assert_eq!(reply.status, 200);
    // GetReplay answers the bare ReplayBundle, with every non-optional
    // field present (zeros, empty lists) and optional ones omitted.
    assert_eq!(
        reply.body,
        concat!(
            r#"{"metadata":{"schema_version":1,"run_id":"R-7","trace_id":"T-1","request_id":"Q-1","#,
            r#""principal_id_hash":"h","engine_mode":"baseline","recorded_at_unix_ms":18446744073709551615,"#,
            r#""terminal_mode":"SUPPORTED","quality_score":87.5,"bundle_hash":"b"},"query":"what","#,
            r#""budget":{"max_operator_calls":10,"max_bytes":67108864,"max_wallclock_ms":1000,"max_recursion_depth":0},"#,
            r#""session_id":"S-1","policy_snapshot_id":"P-1","loop_terminal_mode":"INSUFFICIENT_EVIDENCE","#,
            r#""response_text":"","claim_map":{"claim_map_id":"C-1","terminal_mode":"INSUFFICIENT_EVIDENCE","#,
            r#""claims":[],"coverage_threshold":0.95,"coverage_observed":0.0},"operator_calls_used":0,"#,
            r#""bytes_used":0,"depth_used":0,"evidence_ref_count":0,"evidence_unit_ids":[]}"#
        )
    );

    // SubmitEvaluation takes the bare submission and answers the bare result.
    let reply = edge
        .post(
            "/v1/evaluations",
            r#"{"evaluation_name":"nightly","replay_ids":["R-1","R-2"],"engine_mode":"rlm","min_quality_score":50,"max_source_unavailable_rate":0.25}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        concat!(
            r#"{"evaluation_id":"E-1","evaluation_name":"nightly","#,
            r#""principal_id_hash":"ids=[\"R-1\", \"R-2\"];engine=Some(\"rlm\");min=Some(50.0);max=Some(0.25)","#,
            r#""created_at_unix_ms":1700000000000,"replay_ids":["R-1","R-2"],"missing_replay_ids":[],"#,
            r#""run_results":[],"scorecards":[],"overall_pass":true}"#
        )
    );
    // The wrapper is not accepted: the body is the submission itself.
    let reply = edge
        .post(
            "/v1/evaluations",
            r#"{"submission":{"evaluation_name":"e"}}"#,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body),
        (400, invalid("invalid JSON body"))
    );
    // Absent optional members stay absent in the request.
    let reply = edge
        .post(
            "/v1/evaluations",
            r#"{"evaluation_name":"e","min_quality_score":null}"#,
        )
        .await;
    assert!(
        reply
            .body
            .contains(r#"ids=[];engine=None;min=None;max=None"#),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn json_text_round_trips_with_number_kinds_kept() {
    let edge = edge().await;
    let reply = edge
        .post(
            "/v1/operators/echo",
            r#"{"session_id":"S-1","params":{"a":1,"b":1.0,"c":[100]}}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        concat!(
            r#"{"terminal_mode":"SUPPORTED","result":{"a":1,"b":1.0,"c":[100]},"#,
            r#""policy_decision":{"allow":true,"cacheable":true,"reason":"{\"a\":1,\"b\":1.0,\"c\":[100]}","redaction":{}}}"#
        )
    );
    // Insignificant whitespace goes, spellings and member order stay.
    let reply = edge
        .post(
            "/v1/operators/echo",
            "{ \"session_id\" : \"S-1\", \"params\" : { \"z\" : 1e2 , \"a\" : [ -0.50 , \"x y\" ] } }",
        )
        .await;
    let json = reply.json();
    assert_eq!(
        json["policy_decision"]["reason"],
        r#"{"z":1e2,"a":[-0.50,"x y"]}"#
    );
    assert!(
        reply
            .body
            .contains(r#""result":{"z":1e2,"a":[-0.50,"x y"]}"#)
    );
    // Any JSON value, including null, a string or a number.
    for params in ["null", "\"text\"", "7", "[]"] {
        let reply = edge
            .post(
                "/v1/operators/echo",
                &format!(r#"{{"session_id":"S-1","params":{params}}}"#),
            )
            .await;
        assert!(
            reply.body.contains(&format!(r#""result":{params},"#)),
            "{}",
            reply.body
        );
    }
    // Simulate: json_text input, optional json_text output.
    let reply = edge
        .post(
            "/v1/policies/simulate",
            r#"{"action":"redact","params":{"deny_fields":["email"],"n":3}}"#,
        )
        .await;
    assert_eq!(
        reply.body,
        r#"{"allow":false,"cacheable":false,"redaction":{"deny_fields":["email"],"n":3}}"#
    );
}

#[tokio::test]
async fn a_batch_answers_one_result_or_error_object_per_call() {
    let edge = edge().await;
    let reply = edge
        .post(
            "/v1/operator-batches",
            r#"{"session_id":"S-1","calls":[{"op_name":"echo","params":{"a":1.0}},{"op_name":"nope","params":{}}]}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        concat!(
            r#"{"outcomes":[{"ok":{"terminal_mode":"SUPPORTED","result":{"a":1.0},"#,
            r#""policy_decision":{"allow":false,"cacheable":false}}},"#,
            r#"{"error":{"error":{"code":"ERR_INVALID_PARAMS","message":"operator not allowlisted","#,
            r#""terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false},"http_status":400}}]}"#
        )
    );
}

#[tokio::test]
async fn zero_values_are_present_and_unset_optionals_omitted() {
    let edge = edge().await;
    let reply = edge
        .post("/v1/policies/simulate", r#"{"action":"read","params":{}}"#)
        .await;
    assert_eq!(reply.body, r#"{"allow":true,"cacheable":false}"#);
    let reply = edge.post("/v1/run", r#"{"query":""}"#).await;
    assert_eq!(
        reply.body,
        concat!(
            r#"{"terminal_mode":"INSUFFICIENT_EVIDENCE","trace_id":"T-1","claim_map":{"claim_map_id":"C-1","#,
            r#""terminal_mode":"INSUFFICIENT_EVIDENCE","claims":[],"coverage_threshold":0.95,"coverage_observed":0.0},"#,
            r#""response_text":"","run_id":"R-1","stop_reason":"budget=None","cited_evidence":[]}"#
        )
    );
    let error = edge.get("/v1/replays/missing").await;
    assert_eq!(
        (error.status, error.body.as_str()),
        (
            404,
            r#"{"code":"ERR_REPLAY_NOT_FOUND","message":"replay not found","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#
        )
    );
}

#[tokio::test]
async fn sixty_four_bit_integers_are_numbers_both_ways() {
    let edge = edge().await;
    let replays = edge.get("/v1/replays").await;
    assert!(
        replays
            .body
            .contains(r#""recorded_at_unix_ms":18446744073709551615,"#),
        "{}",
        replays.body
    );
    let session = edge
        .post(
            "/v1/sessions",
            r#"{"budget":{"max_operator_calls":10,"max_bytes":18446744073709551615,"max_wallclock_ms":300000,"max_recursion_depth":20,"max_parallelism":null},"as_of_time":null}"#,
        )
        .await;
    assert_eq!(
        session.body,
        r#"{"session_id":"S-1","trace_id":"T-1","policy_snapshot_id":"P-default","budget":{"max_operator_calls":10,"max_bytes":18446744073709551615,"max_wallclock_ms":300000,"max_recursion_depth":20}}"#
    );
    let with_parallelism = edge
        .post(
            "/v1/sessions",
            r#"{"budget":{"max_operator_calls":0,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0,"max_parallelism":0},"as_of_time":"2026-01-01T00:00:00Z"}"#,
        )
        .await;
    assert!(
        with_parallelism
            .body
            .ends_with(r#""max_recursion_depth":0,"max_parallelism":0}}"#),
        "{}",
        with_parallelism.body
    );
    assert!(with_parallelism.body.contains("P-2026-01-01T00:00:00Z"));
    for budget in [
        r#"{"max_operator_calls":10,"max_bytes":"1024","max_wallclock_ms":1,"max_recursion_depth":1}"#,
        r#"{"max_operator_calls":10,"max_bytes":18446744073709551616,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
        r#"{"max_operator_calls":-1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
        r#"{"max_operator_calls":1.5,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
        r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1}"#,
        r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"extra":1}"#,
    ] {
        let reply = edge
            .post("/v1/sessions", &format!(r#"{{"budget":{budget}}}"#))
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, invalid("invalid JSON body").as_str()),
            "{budget}"
        );
    }
}

#[tokio::test]
async fn enums_are_value_names_both_ways_and_unspecified_is_refused() {
    let edge = edge().await;
    let claims = r#"[{"claim_id":"","claim_text":"a","status":"SUPPORTED","evidence_unit_ids":["e1"]},{"claim_id":"x","claim_text":"b","status":"ASSUMPTION","evidence_unit_ids":[]}]"#;
    let reply = edge
        .post(
            "/v1/finalize",
            &format!(
                r#"{{"session_id":"S-1","response_text":"r","claim_map":{}}}"#,
                claim_map(claims)
            ),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        format!(
            r#"{{"terminal_mode":"SUPPORTED","trace_id":"T-1","claim_map":{{"claim_map_id":"C-1","terminal_mode":"SUPPORTED","claims":{claims},"coverage_threshold":1.0,"coverage_observed":0.5}},"response_text":"r"}}"#
        )
    );
    for status in [
        "\"STATUS_UNSPECIFIED\"",
        "\"supported\"",
        "\"NOPE\"",
        "1",
        "null",
    ] {
        let claims = format!(
            r#"[{{"claim_id":"","claim_text":"a","status":{status},"evidence_unit_ids":[]}}]"#
        );
        let reply = edge
            .post(
                "/v1/finalize",
                &format!(
                    r#"{{"session_id":"S-1","response_text":"r","claim_map":{}}}"#,
                    claim_map(&claims)
                ),
            )
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, invalid("invalid JSON body").as_str()),
            "{status}"
        );
    }
    let unspecified_mode = r#"{"session_id":"S-1","response_text":"r","claim_map":{"claim_map_id":"C","terminal_mode":"TERMINAL_MODE_UNSPECIFIED","claims":[],"coverage_threshold":1,"coverage_observed":0}}"#;
    assert_eq!(
        edge.post("/v1/finalize", unspecified_mode).await.status,
        400
    );
    // A required enum still unset on output is an internal error.
    let reply = edge
        .post(
            "/v1/operators/unspecified",
            r#"{"session_id":"S-1","params":{}}"#,
        )
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (500, INTERNAL));
    let reply = edge
        .post(
            "/v1/operators/not_json",
            r#"{"session_id":"S-1","params":{}}"#,
        )
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (500, INTERNAL));
}

#[tokio::test]
async fn unknown_fields_are_refused_except_where_the_spec_keeps_objects_open() {
    let edge = edge().await;
    // Closed: gateway top-level bodies, budget, the evaluation submission.
    let reply = edge
        .post(
            "/v1/sessions",
            &format!(r#"{{"budget":{BUDGET},"extra":true}}"#),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body),
        (400, invalid("invalid JSON body"))
    );
    let reply = edge
        .post(
            "/v1/run",
            r#"{"query":"q","budget":{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"x":1}}"#,
        )
        .await;
    assert_eq!(reply.status, 400);
    let reply = edge
        .post("/v1/evaluations", r#"{"evaluation_name":"e","x":1}"#)
        .await;
    assert_eq!(reply.status, 400);
    // Open: the run request's top level, claim maps and claims.
    let reply = edge
        .post(
            "/v1/run",
            &format!(r#"{{"query":"q","budget":{BUDGET},"client_hint":{{"a":1}}}}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(r#""stop_reason":"budget=Some(10)""#));
    let claims = r#"[{"claim_id":"","claim_text":"a","status":"UNKNOWN","evidence_unit_ids":[],"note":"x"}]"#;
    let open_map = format!(
        r#"{{"claim_map_id":"C-1","terminal_mode":"SUPPORTED","claims":{claims},"coverage_threshold":1,"coverage_observed":0,"extra":[1]}}"#
    );
    let reply = edge
        .post(
            "/v1/finalize",
            &format!(r#"{{"session_id":"S-1","response_text":"r","claim_map":{open_map}}}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!reply.body.contains("extra"));
    let reply = edge
        .post(
            "/v1/finalize",
            &format!(
                r#"{{"session_id":"S-1","response_text":"r","claim_map":{open_map},"extra":1}}"#
            ),
        )
        .await;
    assert_eq!(reply.status, 400);
}

// ---------------------------------------------------------------------------
// Headers and metadata
// ---------------------------------------------------------------------------

#[tokio::test]
async fn headers_become_metadata_and_pecr_metadata_becomes_headers() {
    let edge = edge().await;
    let reply = edge
        .send(
            "POST",
            "/v1/sessions",
            &[
                ("content-type", "application/json"),
                ("x-pecr-principal-id", "alice"),
                ("x-pecr-local-auth-secret", "s3cret"),
                ("x-pecr-request-id", "req-1"),
                ("x-pecr-trace-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                ("authorization", "Bearer abc.def.ghi"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "vendor=1"),
                ("cookie", "session=1"),
                ("x-request-id", "other"),
            ],
            Some(&format!(r#"{{"budget":{BUDGET}}}"#)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = edge.recorder.last();
    for (key, value) in [
        ("x-pecr-principal-id", "alice"),
        ("x-pecr-local-auth-secret", "s3cret"),
        ("x-pecr-request-id", "req-1"),
        ("x-pecr-trace-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ("authorization", "Bearer abc.def.ghi"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=1"),
    ] {
        assert_eq!(
            seen.metadata.get(key),
            Some(&vec![value.to_owned()]),
            "{key}"
        );
    }
    assert!(!seen.metadata.contains_key("cookie"));
    assert!(!seen.metadata.contains_key("x-request-id"));
    // The REST client's address reaches the gRPC stack (loopback rules).
    assert_eq!(seen.remote.map(|addr| addr.ip().is_loopback()), Some(true));
    // Response metadata x-pecr-* → headers; other metadata stays inside.
    assert_eq!(
        reply
            .headers
            .get("x-pecr-session-token")
            .map(|v| v.as_bytes()),
        Some(&b"tok-1"[..])
    );
    assert!(reply.headers.get("x-internal").is_none());
    assert!(!reply.body.contains("tok-1"));
    assert!(
        reply
            .body
            .contains(r#""trace_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV""#)
    );

    // An identity header that is not visible ASCII still reaches the
    // service (whose auth check refuses it with 400); other such headers
    // are dropped.
    let raw = edge
        .raw(
            format!(
                "POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-pecr-principal-id: al\u{e9}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{{\"budget\":{BUDGET}}}",
                BUDGET.len() + 11
            )
            .as_bytes(),
        )
        .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pecr_error_statuses_become_their_http_status_and_body() {
    let edge = edge().await;
    let cases = [
        (
            "err_400",
            400,
            r#"{"code":"ERR_INVALID_PARAMS","message":"operator not allowlisted","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#,
        ),
        (
            "err_401",
            401,
            r#"{"code":"ERR_POLICY_DENIED","message":"missing or invalid session token","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#,
        ),
        (
            "err_403",
            403,
            r#"{"code":"ERR_POLICY_DENIED","message":"policy denied","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#,
        ),
        (
            "err_404",
            404,
            r#"{"code":"ERR_INVALID_PARAMS","message":"unknown session_id","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#,
        ),
        (
            "err_409",
            409,
            r#"{"code":"ERR_INVALID_PARAMS","message":"session already finalized","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#,
        ),
        (
            "err_429",
            429,
            r#"{"code":"ERR_RATE_LIMITED","message":"rate limit exceeded for operator calls","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":true}"#,
        ),
        (
            "err_502",
            502,
            r#"{"code":"ERR_SOURCE_UNAVAILABLE","message":"gateway request failed","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":true}"#,
        ),
        (
            "err_503",
            503,
            r#"{"code":"ERR_SOURCE_UNAVAILABLE","message":"policy engine unavailable","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":true}"#,
        ),
        (
            "err_504",
            504,
            r#"{"code":"ERR_SOURCE_TIMEOUT","message":"policy engine timed out","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":true}"#,
        ),
        ("no_detail", 500, INTERNAL),
    ];
    for (op_name, status, body) in cases {
        let reply = edge
            .post(
                &format!("/v1/operators/{op_name}"),
                r#"{"session_id":"S-1","params":{}}"#,
            )
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, body),
            "{op_name}"
        );
        assert_eq!(
            reply.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
    }
    // A set `detail` is carried as its JSON value.
    let reply = edge
        .post(
            "/v1/operators/with_detail",
            r#"{"session_id":"S-1","params":{}}"#,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            409,
            r#"{"code":"ERR_INVALID_PARAMS","message":"claim_map_id already exists","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false,"detail":{"k":1,"f":1.0}}"#
        )
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_error_responses() {
    let edge = edge().await;
    let bad = invalid("invalid JSON body");
    for body in [
        "",
        "{",
        "not json",
        "[]",
        "null",
        r#"{"query":1}"#,
        r#"{"query":"q","budget":[]}"#,
        r#"{"query":"q"} trailing"#,
        r#"{"query":"q","query":"r"}"#,
        r#"{}"#,
        "{\"query\":\"\u{0}\"}",
    ] {
        let reply = edge.post("/v1/run", body).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, bad.as_str()),
            "{body:?}"
        );
    }
    // Missing required members of a gateway body.
    let reply = edge
        .post("/v1/operators/echo", r#"{"session_id":"S-1"}"#)
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (400, bad.as_str()));
    // Invalid UTF-8 in the body.
    let raw = edge
        .raw(b"POST /v1/run HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 13\r\nconnection: close\r\n\r\n{\"query\":\"\xff\"}")
        .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.ends_with(&bad));
    assert_eq!(edge.calls.load(Ordering::SeqCst), 0, "nothing reached gRPC");
}

#[tokio::test]
async fn content_type_must_be_json() {
    let edge = edge().await;
    let body = r#"{"query":"q"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("text/json"),
    ] {
        let mut headers = vec![("x-pecr-principal-id", "dev")];
        if let Some(value) = content_type {
            headers.push(("content-type", value));
        }
        let reply = edge.send("POST", "/v1/run", &headers, Some(body)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (415, invalid("invalid JSON body").as_str()),
            "{content_type:?}"
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "APPLICATION/JSON",
    ] {
        let reply = edge
            .send(
                "POST",
                "/v1/run",
                &[("content-type", content_type)],
                Some(body),
            )
            .await;
        assert_eq!(reply.status, 200, "{content_type}");
    }
    // No body at all and no content type: the content type is checked first.
    let reply = edge.send("POST", "/v1/finalize", &[], None).await;
    assert_eq!(reply.status, 415);
}

#[tokio::test]
async fn oversize_bodies_are_413_error_responses() {
    let edge = start(EdgeConfig { max_body_bytes: 64 }).await;
    let fits = r#"{"query":"q"}"#;
    assert_eq!(edge.post("/v1/run", fits).await.status, 200);
    let big = format!(r#"{{"query":"{}"}}"#, "x".repeat(100));
    let reply = edge.post("/v1/run", &big).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (413, invalid("invalid JSON body").as_str())
    );
    // Without a content-length the limit applies while reading.
    let chunk = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let raw = edge
        .raw(
            format!(
                "POST /v1/run HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}"
            )
            .as_bytes(),
        )
        .await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.ends_with(&invalid("invalid JSON body")), "{raw}");

    // The 2 MiB default.
    let default = start(EdgeConfig::default()).await;
    let huge = format!(r#"{{"query":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    assert_eq!(default.post("/v1/run", &huge).await.status, 413);
    let just = format!(r#"{{"query":"{}"}}"#, "x".repeat(2 * 1024 * 1024 - 12));
    assert_eq!(default.post("/v1/run", &just).await.status, 200);
}

#[tokio::test]
async fn the_router_refuses_bad_inputs_without_panicking() {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let routes = tonic::service::Routes::new(GatewayServiceServer::new(HarnessGateway {
        recorder: Recorder::default(),
    }));
    let error = pecr_edge::router(
        &pool,
        &["pecr.v1.Missing"],
        routes.clone(),
        EdgeConfig::default(),
    )
    .err();
    assert_eq!(
        error,
        Some(pecr_edge::EdgeError::UnknownService(
            "pecr.v1.Missing".into()
        ))
    );
    // The ledger has no HTTP rules: an empty router.
    assert!(
        pecr_edge::router(
            &pool,
            &[pecr_proto::service_names::LEDGER],
            routes,
            EdgeConfig::default()
        )
        .is_ok()
    );
}

#[tokio::test]
async fn the_api_fits_a_service_host() {
    // The config literal and the error renderer as a service host uses them.
    let config = EdgeConfig {
        max_body_bytes: 2 * 1024 * 1024,
    };
    assert_eq!(config, EdgeConfig::default());
    let authenticate = |secret: Option<&str>| match secret {
        Some(_) => Ok(()),
        None => Err(PecrError::new(
            ErrorCode::AuthRequired,
            "missing local auth secret",
        )),
    };
    let guarded: Result<(), axum::response::Response> =
        authenticate(None).map_err(pecr_edge::error_response);
    let response = guarded.expect_err("an error response");
    assert_eq!(response.status(), 401);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        body,
        r#"{"code":"ERR_AUTH_REQUIRED","message":"missing local auth secret","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#
    );

    // Merged beside admin routes, 404/405 stay empty and both parts answer.
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let routes = tonic::service::Routes::new(GatewayServiceServer::new(HarnessGateway {
        recorder: Recorder::default(),
    }));
    let rest = pecr_edge::router(&pool, &[GATEWAY], routes, config).expect("router");
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(rest);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let edge = Edge {
        addr,
        recorder: Recorder::default(),
        calls: Arc::new(AtomicUsize::new(0)),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    assert_eq!(edge.get("/healthz").await.body, "ok");
    let reply = edge
        .post("/v1/sessions", &format!(r#"{{"budget":{BUDGET}}}"#))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = edge.get("/v1/run").await;
    assert_eq!((reply.status, reply.body.as_str()), (404, ""));
    let reply = edge.get("/v1/sessions").await;
    assert_eq!((reply.status, reply.body.as_str()), (405, ""));
}

//! `HarnessGateway` and `HarnessController` are a TEST HARNESS for the
//! edge, not the real gateway or controller: they record what reached them
//! (metadata, peer address) and answer with fixed responses chosen from the
//! request, so every transcoding rule can be checked byte for byte.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::controller_service_server::ControllerService;
use pecr_proto::v1::gateway_service_server::GatewayService;
use pecr_proto::v1::*;
use prost::Message as _;
use tonic::metadata::{AsciiMetadataValue, KeyAndValueRef, MetadataMap};
use tonic::{Request, Response, Status};

/// What the last call to a harness service saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub rpc: String,
    pub metadata: HashMap<String, Vec<String>>,
    pub remote: Option<SocketAddr>,
}

#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Option<Seen>>>);

impl Recorder {
    pub fn record<T>(&self, rpc: &str, request: &Request<T>) {
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

    pub fn last(&self) -> Seen {
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

pub struct HarnessGateway {
    pub recorder: Recorder,
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

pub struct HarnessController {
    pub recorder: Recorder,
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

/// The harness's streamed answers, chosen by query: `refuse` is refused
/// before any event, `fail` fails after one event, `slow` waits before its
/// last event, anything else streams a step and the result.
fn harness_stream(query: &str) -> Result<Vec<Result<RunStreamResponse, Status>>, Status> {
    use run_stream_response::Event;
    let step = Event::StepStarted(RunStepStarted {
        step: 0,
        operators: vec!["search".into(), "fetch_span".into()],
    });
    let call = Event::OperatorCall(RunOperatorCall {
        step: 0,
        op_name: "search".into(),
        ok: true,
        terminal_mode: TerminalMode::Supported as i32,
        evidence_unit_ids: vec!["e1".into()],
        refs: 2,
        bytes: 12_345_678_901,
    });
    let event = |event| Ok(RunStreamResponse { event: Some(event) });
    match query {
        "refuse" => Err(PecrError::new(ErrorCode::RateLimited, "too many runs").into()),
        "fail" => Ok(vec![
            event(step),
            Err(PecrError::new(ErrorCode::SourceUnavailable, "gateway went away").into()),
        ]),
        "bare" => Ok(vec![event(step), Err(Status::internal("no detail"))]),
        _ => Ok(vec![
            event(step),
            event(call),
            event(Event::Result(RunResponse {
                terminal_mode: TerminalMode::Supported as i32,
                trace_id: "T-1".into(),
                claim_map: Some(ClaimMap {
                    claim_map_id: "C-1".into(),
                    terminal_mode: TerminalMode::Supported as i32,
                    claims: vec![],
                    coverage_threshold: 0.95,
                    coverage_observed: 1.0,
                    notes: None,
                }),
                response_text: query.to_owned(),
                ..RunResponse::default()
            })),
        ]),
    }
}

#[tonic::async_trait]
impl ControllerService for HarnessController {
    type RunStreamStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<RunStreamResponse, Status>> + Send>,
    >;

    async fn run_stream(
        &self,
        request: Request<RunStreamRequest>,
    ) -> Result<Response<Self::RunStreamStream>, Status> {
        self.recorder.record("RunStream", &request);
        let query = request.into_inner().query;
        let events = harness_stream(&query)?;
        // "quiet": each event after a pause, as a slow run's steps come.
        let pause = match query.as_str() {
            "quiet" => std::time::Duration::from_millis(300),
            _ => std::time::Duration::ZERO,
        };
        let events =
            futures_util::StreamExt::then(tokio_stream::iter(events), move |event| async move {
                tokio::time::sleep(pause).await;
                event
            });
        let mut response = Response::new(Box::pin(events) as Self::RunStreamStream);
        response
            .metadata_mut()
            .insert("x-pecr-trace-id", AsciiMetadataValue::from_static("T-1"));
        Ok(response)
    }

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
                cited_evidence: vec![],
            }),
        }))
    }

    async fn verify_replays(
        &self,
        request: Request<VerifyReplaysRequest>,
    ) -> Result<Response<VerifyReplaysResponse>, Status> {
        self.recorder.record("VerifyReplays", &request);
        let body = request.into_inner();
        let echo = format!(
            "since={:?};limit={:?};engine={:?}",
            body.since_unix_ms, body.limit, body.engine_mode
        );
        Ok(Response::new(VerifyReplaysResponse {
            verified: 2,
            differing: 1,
            differences: vec![DifferingReplay {
                run_id: "R-1".into(),
                differences: vec![echo],
            }],
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
pub struct Counted<S> {
    pub inner: S,
    pub calls: Arc<AtomicUsize>,
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

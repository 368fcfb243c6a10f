//! The `pecr` binary against an in-process stand-in controller on a port-0
//! listener: requests, metadata, readable and JSON output, and how each
//! kind of failure is reported. The real controller is covered in tests/mesh.

use std::sync::{Arc, Mutex};

use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::controller_service_server::{ControllerService, ControllerServiceServer};
use pecr_proto::v1::{
    Claim, ClaimMap, DifferingReplay, EvidenceUnitRef, GetEvaluationRequest, GetEvaluationResponse,
    GetReplayRequest, GetReplayResponse, GetScorecardsRequest, GetScorecardsResponse,
    ListReplaysRequest, ListReplaysResponse, ReplayBundle, ReplayBundleMetadata,
    ReplayEvaluationResult, RunQualityScorecard, RunRequest, RunResponse, SubmitEvaluationRequest,
    SubmitEvaluationResponse, TerminalMode, VerifyReplaysRequest, VerifyReplaysResponse, claim,
};
use pecr_proto::v1::{
    RunFinalizing, RunOperatorCall, RunStepStarted, RunStreamRequest, RunStreamResponse,
    run_stream_response::Event,
};
use tokio::sync::oneshot;
use tonic::metadata::MetadataMap;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const EVIDENCE_ID: &str = "3f2a9c1b0d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

#[derive(Default, Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<MetadataMap>>>,
}

impl Fake {
    fn record<T>(&self, request: &Request<T>) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request.metadata().clone());
        }
    }
}

#[tonic::async_trait]
impl ControllerService for Fake {
    type RunStreamStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<RunStreamResponse, Status>>>;

    /// Run's answer, after the events of a one-step run.
    async fn run_stream(
        &self,
        request: Request<RunStreamRequest>,
    ) -> Result<Response<Self::RunStreamStream>, Status> {
        let request = request.map(|streamed| RunRequest {
            query: streamed.query,
            budget: streamed.budget,
        });
        let response = self.run(request).await?.into_inner();
        let events = [
            Event::StepStarted(RunStepStarted {
                step: 0,
                operators: vec!["search".into()],
            }),
            Event::OperatorCall(RunOperatorCall {
                step: 0,
                op_name: "search".into(),
                ok: true,
                terminal_mode: TerminalMode::Supported as i32,
                evidence_unit_ids: vec![EVIDENCE_ID.into()],
                refs: 1,
                bytes: 10,
            }),
            Event::Finalizing(RunFinalizing {
                stop_reason: response.stop_reason.clone(),
                claims: 1,
            }),
            Event::Result(response),
        ];
        let events: Vec<Result<RunStreamResponse, Status>> = events
            .into_iter()
            .map(|event| Ok(RunStreamResponse { event: Some(event) }))
            .collect();
        Ok(Response::new(tokio_stream::iter(events)))
    }

    async fn run(&self, request: Request<RunRequest>) -> Result<Response<RunResponse>, Status> {
        self.record(&request);
        let body = request.into_inner();
        match body.query.as_str() {
            // Never answers: only the client's own deadline ends the call.
            "slow" => std::future::pending::<()>().await,
            "bare" => return Err(Status::internal("no detail here")),
            "limited" => {
                return Err(PecrError::new(ErrorCode::RateLimited, "too many requests").into());
            }
            _ => {}
        }
        Ok(Response::new(RunResponse {
            terminal_mode: TerminalMode::Supported as i32,
            trace_id: "T-1".into(),
            claim_map: Some(ClaimMap {
                claim_map_id: "C-1".into(),
                terminal_mode: TerminalMode::Supported as i32,
                claims: vec![Claim {
                    claim_id: "c1".into(),
                    claim_text: "Billing is owned by team Ledger.".into(),
                    status: claim::Status::Supported as i32,
                    evidence_unit_ids: vec![EVIDENCE_ID.into()],
                }],
                coverage_threshold: 0.5,
                coverage_observed: 1.0,
                notes: None,
            }),
            response_text: format!("answer to {}", body.query),
            run_id: "T-1-01JRUN".into(),
            stop_reason: format!("budget={:?}", body.budget.map(|b| b.max_operator_calls)),
            cited_evidence: vec![EvidenceUnitRef {
                evidence_unit_id: EVIDENCE_ID.into(),
                source_system: "fs_corpus".into(),
                object_id: "owners/billing.md".into(),
                version_id: "v1".into(),
                transform_types: vec![],
            }],
        }))
    }

    async fn list_replays(
        &self,
        request: Request<ListReplaysRequest>,
    ) -> Result<Response<ListReplaysResponse>, Status> {
        self.record(&request);
        let body = request.into_inner();
        Ok(Response::new(ListReplaysResponse {
            replays: vec![ReplayBundleMetadata {
                run_id: format!("limit={:?}", body.limit),
                engine_mode: body.engine_mode.unwrap_or_default(),
                recorded_at_unix_ms: 1_700_000_000_000,
                terminal_mode: TerminalMode::Supported as i32,
                quality_score: 87.5,
                ..Default::default()
            }],
        }))
    }

    async fn get_replay(
        &self,
        request: Request<GetReplayRequest>,
    ) -> Result<Response<GetReplayResponse>, Status> {
        self.record(&request);
        let run_id = request.into_inner().run_id;
        if run_id == "missing" {
            return Err(PecrError::new(ErrorCode::ReplayNotFound, "replay not found").into());
        }
        Ok(Response::new(GetReplayResponse {
            bundle: Some(ReplayBundle {
                metadata: Some(ReplayBundleMetadata {
                    run_id,
                    terminal_mode: TerminalMode::Supported as i32,
                    ..Default::default()
                }),
                loop_terminal_mode: TerminalMode::Supported as i32,
                claim_map: Some(ClaimMap {
                    terminal_mode: TerminalMode::Supported as i32,
                    ..Default::default()
                }),
                query: "who owns billing?".into(),
                evidence_unit_ids: vec![EVIDENCE_ID.into()],
                ..Default::default()
            }),
        }))
    }

    /// Replays recorded before 1_700_000_000_000 differ; `limit` verifies that many.
    async fn verify_replays(
        &self,
        request: Request<VerifyReplaysRequest>,
    ) -> Result<Response<VerifyReplaysResponse>, Status> {
        self.record(&request);
        let body = request.into_inner();
        let verified = body.limit.unwrap_or(3);
        if body.engine_mode.as_deref() == Some("rlm") {
            return Err(PecrError::new(ErrorCode::SourceUnavailable, "ledger unavailable").into());
        }
        let differences = if body.since_unix_ms.unwrap_or(0) >= 1_700_000_000_000 {
            vec![]
        } else {
            vec![DifferingReplay {
                run_id: "T-0-01JOLD".into(),
                differences: vec![
                    "terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE".into(),
                ],
            }]
        };
        Ok(Response::new(VerifyReplaysResponse {
            verified,
            differing: differences.len() as u32,
            differences,
        }))
    }

    async fn submit_evaluation(
        &self,
        request: Request<SubmitEvaluationRequest>,
    ) -> Result<Response<SubmitEvaluationResponse>, Status> {
        self.record(&request);
        let submission = request.into_inner().submission.unwrap_or_default();
        Ok(Response::new(SubmitEvaluationResponse {
            evaluation: Some(ReplayEvaluationResult {
                evaluation_id: "EV-1".into(),
                evaluation_name: submission.evaluation_name,
                missing_replay_ids: submission.replay_ids,
                overall_pass: false,
                ..Default::default()
            }),
        }))
    }

    async fn get_scorecards(
        &self,
        request: Request<GetScorecardsRequest>,
    ) -> Result<Response<GetScorecardsResponse>, Status> {
        self.record(&request);
        Ok(Response::new(GetScorecardsResponse {
            scorecards: vec![RunQualityScorecard {
                engine_mode: "baseline".into(),
                run_count: 4,
                average_quality_score: 75.0,
                supported_rate: 0.5,
                ..Default::default()
            }],
        }))
    }

    async fn get_evaluation(
        &self,
        request: Request<GetEvaluationRequest>,
    ) -> Result<Response<GetEvaluationResponse>, Status> {
        self.record(&request);
        Err(PecrError::new(ErrorCode::EvaluationNotFound, "evaluation not found").into())
    }
}

struct Harness {
    url: String,
    fake: Fake,
    stop: Option<oneshot::Sender<()>>,
}

impl Harness {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = Fake::default();
        let (stop, stopped) = oneshot::channel();
        let service = ControllerServiceServer::new(fake.clone());
        tokio::spawn(async move {
            let _ = Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            fake,
            stop: Some(stop),
        }
    }

    async fn pecr(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pecr"))
            .env("PECR_CONTROLLER_URL", &self.url)
            .env_remove("PECR_PRINCIPAL_ID")
            .env_remove("PECR_LOCAL_AUTH_SHARED_SECRET")
            .env_remove("PECR_BEARER_TOKEN")
            .args(args)
            .output()
            .await
            .expect("the pecr binary runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn last_metadata(&self) -> MetadataMap {
        self.fake
            .seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a call was made")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_answer_claims_and_sources_and_sends_identity() {
    let harness = Harness::start().await;
    let (code, stdout, stderr) = harness
        .pecr(&[
            "run",
            "who owns billing?",
            "--principal",
            "dev",
            "--secret",
            "s3cret",
            "--token",
            "tok",
            "--request-id",
            "req-1",
            "--trace-id",
            "trace-1",
        ])
        .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("SUPPORTED"), "{stdout}");
    assert!(stdout.contains("answer to who owns billing?"), "{stdout}");
    assert!(
        stdout.contains("[SUPPORTED] Billing is owned by team Ledger."),
        "{stdout}"
    );
    assert!(
        stdout.contains("3f2a9c1b0d4e  fs_corpus  owners/billing.md"),
        "{stdout}"
    );
    assert!(stdout.contains("run_id       T-1-01JRUN"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr:?}");

    let metadata = harness.last_metadata();
    let get = |key| metadata.get(key).and_then(|value| value.to_str().ok());
    assert_eq!(get("x-pecr-principal-id"), Some("dev"));
    assert_eq!(get("x-pecr-local-auth-secret"), Some("s3cret"));
    assert_eq!(get("authorization"), Some("Bearer tok"));
    assert_eq!(get("x-pecr-request-id"), Some("req-1"));
    assert_eq!(get("x-pecr-trace-id"), Some("trace-1"));
    assert!(get("grpc-timeout").is_some(), "the deadline travels");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_json_is_one_line_of_contract_json() {
    let harness = Harness::start().await;
    let budget = r#"{"max_operator_calls":7,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5}"#;
    let (code, stdout, stderr) = harness
        .pecr(&["--json", "run", "q", "--budget", budget])
        .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(value["terminal_mode"], "SUPPORTED");
    assert_eq!(value["claim_map"]["claims"][0]["status"], "SUPPORTED");
    assert_eq!(value["stop_reason"], "budget=Some(7)");
    assert_eq!(value["cited_evidence"][0]["object_id"], "owners/billing.md");
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_list_and_show() {
    let harness = Harness::start().await;
    let (code, stdout, _) = harness
        .pecr(&["replays", "list", "--limit", "3", "--engine-mode", "rlm"])
        .await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("limit=Some(3)"), "{stdout}");
    assert!(stdout.contains("rlm"), "{stdout}");
    assert!(stdout.contains("87.50"), "{stdout}");

    let (code, stdout, stderr) = harness.pecr(&["--json", "replays", "show", "R-9"]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        value["query"], "who owns billing?",
        "the bundle alone: {stdout}"
    );
    assert_eq!(value["metadata"]["run_id"], "R-9");
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_verify_sums_up_and_exits_1_when_any_differ() {
    let harness = Harness::start().await;
    let (code, stdout, stderr) = harness
        .pecr(&[
            "replays",
            "verify",
            "--since",
            "2023-11-14T22:13:20Z",
            "--limit",
            "12",
        ])
        .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "verified 12 replays: 12 the same, 0 differing\n");
    assert!(stderr.is_empty(), "{stderr:?}");

    let (code, stdout, stderr) = harness.pecr(&["replays", "verify"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stdout,
        "verified 3 replays: 2 the same, 1 differing\n\
         T-0-01JOLD: terminal mode: stored SUPPORTED, re-decided INSUFFICIENT_EVIDENCE\n"
    );
    assert!(stderr.is_empty(), "{stderr:?}");

    let (code, stdout, _) = harness
        .pecr(&["--json", "replays", "verify", "--since", "1699999999999"])
        .await;
    assert_eq!(code, Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(value["verified"], 3);
    assert_eq!(value["differing"], 1);
    assert_eq!(value["differences"][0]["run_id"], "T-0-01JOLD");

    // A failed call is still exit 1, with the error.
    let (code, stdout, stderr) = harness
        .pecr(&["replays", "verify", "--engine-mode", "rlm"])
        .await;
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("ERR_SOURCE_UNAVAILABLE"), "{stderr}");

    // A time that is neither form is a usage error before any call.
    let (code, _, stderr) = harness
        .pecr(&["replays", "verify", "--since", "last week"])
        .await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_and_scorecards() {
    let harness = Harness::start().await;
    let (code, stdout, _) = harness
        .pecr(&["eval", "submit", "--name", "nightly", "--replay-id", "gone"])
        .await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("EV-1 (nightly)"), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("missing     gone"), "{stdout}");

    let (code, stdout, _) = harness.pecr(&["scorecards"]).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("baseline"), "{stdout}");
    assert!(stdout.contains("50.0%"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_errors_exit_1_with_code_and_message() {
    let harness = Harness::start().await;
    let (code, stdout, stderr) = harness.pecr(&["replays", "show", "missing"]).await;
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: ERR_REPLAY_NOT_FOUND: replay not found\n"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 404"), "{stderr}");

    let (code, stdout, stderr) = harness.pecr(&["--json", "eval", "show", "EV-0"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.is_empty(), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        value,
        serde_json::json!({
            "code": "ERR_EVALUATION_NOT_FOUND",
            "message": "evaluation not found",
            "terminal_mode_hint": "INSUFFICIENT_PERMISSION",
            "retryable": false,
        })
    );

    let (code, _, stderr) = harness.pecr(&["run", "limited"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("ERR_RATE_LIMITED"), "{stderr}");
    assert!(
        stderr.contains("retryable: trying again may succeed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_without_a_pecr_detail_and_timeouts_exit_1() {
    let harness = Harness::start().await;
    let (code, _, stderr) = harness.pecr(&["run", "bare"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: ERR_SOURCE_UNAVAILABLE: "),
        "{stderr}"
    );
    assert!(stderr.contains("no detail here"), "{stderr}");

    let (code, _, stderr) = harness.pecr(&["--timeout-ms", "300", "run", "slow"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: ERR_SOURCE_TIMEOUT: "),
        "{stderr}"
    );
    assert!(stderr.contains("300 ms"), "{stderr}");
}

//! `pecr.v1.ControllerService`: run, or read replays and evaluations. The
//! request stack has authenticated the principal, applied its rate limit
//! and counts every outcome; correlation ids come from metadata.

use std::sync::Arc;
use std::time::Instant;

use pecr_auth::{Authenticator, Principal};
use pecr_contracts::hashing::principal_id_hash;
use pecr_contracts::ids::trace_id_or_new;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1::{self, controller_service_server::ControllerService};
use pecr_replay::scoring::{scorecards, validate_thresholds};
use pecr_replay::{ReplayBundle, ReplayEvaluationResult, ReplayRunScore};
use pecr_server::{RateRule, RequestId, principal};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, info};

use crate::config::RateLimits;
use crate::convert;
use crate::evaluation;
use crate::progress::Progress;
use crate::replay_store::PrincipalKey;
use crate::run::{RunIds, Runner};
use crate::validate;
use crate::verification;

pub struct ControllerApi {
    pub runner: Arc<Runner>,
    /// For the caller's credential the gateway must see again.
    pub auth: Authenticator,
    pub list_limit: u32,
}

/// The per-RPC quotas the request stack applies.
pub fn rate_rules(limits: &RateLimits) -> Vec<RateRule> {
    vec![
        RateRule {
            method: "Run",
            bucket: "run",
            limit: limits.runs,
            what: "/v1/run",
        },
        RateRule {
            method: "RunStream",
            bucket: "run",
            limit: limits.runs,
            what: "/v1/run/stream",
        },
        RateRule {
            method: "SubmitEvaluation",
            bucket: "evaluations",
            limit: limits.evaluations,
            what: "/v1/evaluations",
        },
    ]
}

/// A streamed run's events, ending with its result or its error status.
pub type RunEvents = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<v1::RunStreamResponse, Status>> + Send>,
>;

fn principal_key(principal: &Principal) -> PrincipalKey {
    PrincipalKey {
        tenant_id: principal.tenant_id.clone(),
        principal_id_hash: principal_id_hash(&principal.principal_id),
    }
}

impl ControllerApi {
    /// `min(max(limit or cap, 1), cap)`.
    fn effective_limit(&self, limit: Option<u32>) -> u32 {
        limit.unwrap_or(self.list_limit).max(1).min(self.list_limit)
    }

    /// The caller's newest valid bundles (§12.3), as listed and scored.
    async fn newest_bundles(
        &self,
        principal: &Principal,
        limit: Option<u32>,
        engine_mode: Option<String>,
    ) -> PecrResult<Vec<ReplayBundle>> {
        let engine_mode = convert::engine_mode(engine_mode.as_deref())?;
        self.runner
            .store
            .list_bundles(
                &principal_key(principal),
                engine_mode,
                self.effective_limit(limit),
            )
            .await
    }

    /// Everything a run needs from its request, checked before it starts
    /// (so a refusal is the call's status, not a stream event).
    fn prepare_run(&self, request: Request<v1::RunRequest>) -> PecrResult<PreparedRun> {
        let principal = principal(&request)?;
        validate::run(request.get_ref())?;
        let ids = run_ids(&request);
        let authorization = self.auth.forwarded_authorization(request.metadata());
        let request = request.into_inner();
        let budget = request
            .budget
            .as_ref()
            .map(pecr_contracts::budget::Budget::from);
        Ok(PreparedRun {
            principal,
            authorization,
            ids,
            query: request.query,
            budget,
        })
    }
}

/// A checked run request.
struct PreparedRun {
    principal: Principal,
    authorization: Option<String>,
    ids: RunIds,
    query: String,
    budget: Option<pecr_contracts::budget::Budget>,
}

/// Runs `run`, logging how it ended.
async fn execute_run(
    runner: &Runner,
    run: PreparedRun,
    progress: &Progress,
) -> PecrResult<v1::RunResponse> {
    let PreparedRun {
        principal,
        authorization,
        ids,
        query,
        budget,
    } = run;
    let started = Instant::now();
    // Never the query: it may carry canary or injected text.
    let span = tracing::info_span!(
        "controller.run",
        trace_id = %ids.trace_id,
        request_id = %ids.request_id,
        principal_id = %principal.principal_id,
    );
    let response = runner
        .run(&principal, authorization, &ids, query, budget, progress)
        .instrument(span)
        .await
        .inspect_err(|err| {
            info!(
                event = "controller.run_failed",
                request_id = %ids.request_id,
                trace_id = %ids.trace_id,
                principal_id = %principal.principal_id,
                code = err.code.as_str(),
                "run failed"
            );
        })?;
    info!(
        event = "controller.run_completed",
        request_id = %ids.request_id,
        trace_id = %response.trace_id,
        principal_id = %principal.principal_id,
        run_id = %response.run_id,
        stop_reason = %response.stop_reason,
        terminal_mode = v1::TerminalMode::try_from(response.terminal_mode)
            .map_or("", |mode| mode.as_str_name()),
        latency_ms = started.elapsed().as_millis() as u64,
        "run completed"
    );
    Ok(response)
}

/// The run's trace id as a response header, for REST and gRPC callers alike.
fn with_trace_header<T>(mut response: Response<T>, trace_id: &str) -> Response<T> {
    if let Ok(value) = trace_id.parse() {
        response.metadata_mut().insert("x-pecr-trace-id", value);
    }
    response
}

impl ControllerApi {
    async fn evaluate_inner(
        &self,
        principal: &Principal,
        submission: &v1::ReplayEvaluationSubmission,
    ) -> PecrResult<ReplayEvaluationResult> {
        let submission = convert::submission_from_proto(submission)?;
        validate_thresholds(&submission).map_err(PecrError::invalid_params)?;
        evaluation::run(
            &self.runner.store,
            &principal_key(principal),
            &submission,
            self.list_limit,
        )
        .await
    }
}

/// The stack's request id, and the trace id (a ULID, else a fresh one).
fn run_ids<T>(request: &Request<T>) -> RunIds {
    let raw_trace_id = request
        .metadata()
        .get("x-pecr-trace-id")
        .and_then(|value| value.to_str().ok());
    RunIds {
        request_id: RequestId::of(request),
        trace_id: trace_id_or_new(raw_trace_id),
    }
}

#[tonic::async_trait]
impl ControllerService for ControllerApi {
    async fn run(
        &self,
        request: Request<v1::RunRequest>,
    ) -> Result<Response<v1::RunResponse>, Status> {
        let run = self.prepare_run(request)?;
        let response = execute_run(&self.runner, run, &Progress::silent()).await?;
        let mode = v1::TerminalMode::try_from(response.terminal_mode)
            .unwrap_or(v1::TerminalMode::Unspecified);
        let trace_id = response.trace_id.clone();
        let mut response = Response::new(response);
        // For the route metrics of the request stack.
        response.extensions_mut().insert(mode);
        Ok(with_trace_header(response, &trace_id))
    }

    type RunStreamStream = RunEvents;

    async fn run_stream(
        &self,
        request: Request<v1::RunStreamRequest>,
    ) -> Result<Response<Self::RunStreamStream>, Status> {
        let request = request.map(|streamed| v1::RunRequest {
            query: streamed.query,
            budget: streamed.budget,
        });
        let run = self.prepare_run(request)?;
        let trace_id = run.ids.trace_id.clone();
        let (events, received) = mpsc::unbounded_channel();
        let (ended, end) = oneshot::channel();
        let runner = self.runner.clone();
        // The run is its own task: it reaches its finalize even when the
        // caller goes away mid-stream.
        tokio::spawn(
            async move {
                let progress = Progress::to(events);
                let outcome = execute_run(&runner, run, &progress).await;
                // Closes the event channel before the end is sent.
                drop(progress);
                let _ = ended.send(outcome);
            }
            .in_current_span(),
        );
        let last = async move {
            match end.await {
                Ok(Ok(response)) => Ok(v1::RunStreamResponse {
                    event: Some(v1::run_stream_response::Event::Result(response)),
                }),
                Ok(Err(error)) => Err(Status::from(error)),
                Err(_) => Err(Status::from(PecrError::internal("run task ended early"))),
            }
        };
        let stream = UnboundedReceiverStream::new(received)
            .map(Ok)
            .chain(futures_util::stream::once(last));
        Ok(with_trace_header(
            Response::new(Box::pin(stream)),
            &trace_id,
        ))
    }

    async fn list_replays(
        &self,
        request: Request<v1::ListReplaysRequest>,
    ) -> Result<Response<v1::ListReplaysResponse>, Status> {
        let request_ref = request.get_ref();
        let (limit, engine_mode) = (request_ref.limit, request_ref.engine_mode.clone());
        let bundles = self
            .newest_bundles(&principal(&request)?, limit, engine_mode)
            .await?;
        Ok(Response::new(v1::ListReplaysResponse {
            replays: bundles
                .iter()
                .map(|bundle| convert::metadata_to_proto(&bundle.metadata))
                .collect(),
        }))
    }

    async fn get_replay(
        &self,
        request: Request<v1::GetReplayRequest>,
    ) -> Result<Response<v1::GetReplayResponse>, Status> {
        let principal = principal(&request)?;
        let bundle = self
            .runner
            .store
            .load_bundle(&principal_key(&principal), &request.get_ref().run_id)
            .await?;
        Ok(Response::new(v1::GetReplayResponse {
            bundle: Some(convert::bundle_to_proto(&bundle)),
        }))
    }

    async fn verify_replays(
        &self,
        request: Request<v1::VerifyReplaysRequest>,
    ) -> Result<Response<v1::VerifyReplaysResponse>, Status> {
        validate::verify_replays(request.get_ref())?;
        let request_ref = request.get_ref();
        let (since, limit, engine_mode) = (
            request_ref.since_unix_ms,
            request_ref.limit,
            request_ref.engine_mode.clone(),
        );
        // The newest `limit` replays, then those since `since`: the list is
        // newest first, so this is the newest `limit` of those since.
        let bundles = self
            .newest_bundles(&principal(&request)?, limit, engine_mode)
            .await?;
        Ok(Response::new(verification::verify(&bundles, since)))
    }

    async fn submit_evaluation(
        &self,
        request: Request<v1::SubmitEvaluationRequest>,
    ) -> Result<Response<v1::SubmitEvaluationResponse>, Status> {
        let submission = request.get_ref().submission.clone().unwrap_or_default();
        let result = self
            .evaluate_inner(&principal(&request)?, &submission)
            .await?;
        Ok(Response::new(v1::SubmitEvaluationResponse {
            evaluation: Some(convert::evaluation_to_proto(&result)),
        }))
    }

    async fn get_scorecards(
        &self,
        request: Request<v1::GetScorecardsRequest>,
    ) -> Result<Response<v1::GetScorecardsResponse>, Status> {
        let request_ref = request.get_ref();
        let (limit, engine_mode) = (request_ref.limit, request_ref.engine_mode.clone());
        let bundles = self
            .newest_bundles(&principal(&request)?, limit, engine_mode)
            .await?;
        let runs: Vec<ReplayRunScore> = bundles.iter().map(ReplayRunScore::from_bundle).collect();
        Ok(Response::new(v1::GetScorecardsResponse {
            scorecards: scorecards(&runs)
                .iter()
                .map(convert::scorecard_to_proto)
                .collect(),
        }))
    }

    async fn get_evaluation(
        &self,
        request: Request<v1::GetEvaluationRequest>,
    ) -> Result<Response<v1::GetEvaluationResponse>, Status> {
        let principal = principal(&request)?;
        let evaluation = self
            .runner
            .store
            .load_evaluation(&principal_key(&principal), &request.get_ref().evaluation_id)
            .await?;
        Ok(Response::new(v1::GetEvaluationResponse {
            evaluation: Some(convert::evaluation_to_proto(&evaluation)),
        }))
    }
}

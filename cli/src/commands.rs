//! One function per subcommand: build the request, make the call, and
//! turn the response into what gets printed (readable text or JSON).

use pecr_proto::v1::{
    GetEvaluationRequest, GetReplayRequest, GetScorecardsRequest, ListReplaysRequest,
    ReplayEvaluationSubmission, RunRequest, SubmitEvaluationRequest, VerifyReplaysRequest,
};
use prost::Message;

use crate::args::{ControllerCommand, EngineMode, EvalCommand, Global, ReplaysCommand};
use crate::client::{Controller, Failure};
use crate::json::JsonWriter;
use crate::{gate, progress, render};

/// What a command that got its answer prints, and whether the check it
/// makes passed (`replays verify`, `replays gate`, `eval usefulness`,
/// `contract-test`, `canary guard` and `perf compare` make one).
pub struct Output {
    pub text: String,
    pub passed: bool,
}

impl From<String> for Output {
    fn from(text: String) -> Self {
        Self { text, passed: true }
    }
}

/// Connects, runs the command's RPC, and returns what to print.
pub async fn execute(
    global: &Global,
    command: &ControllerCommand,
    json: Option<&JsonWriter>,
) -> Result<Output, Failure> {
    let controller = Controller::connect(global).await?;
    let text = match command {
        ControllerCommand::Run(args) => {
            let request = RunRequest {
                query: args.query.clone(),
                budget: args.budget,
            };
            // Steps are shown live to a person at a terminal only.
            let live = json.is_none() && progress::stderr_is_terminal();
            let response = controller
                .run_streamed(request, |event| {
                    if live && let Some(line) = render::run_event(event) {
                        progress::line(&line);
                    }
                })
                .await?;
            show(json, "pecr.v1.RunResponse", &response, render::run)
        }
        ControllerCommand::Replays(ReplaysCommand::Verify(args)) => {
            let request = VerifyReplaysRequest {
                since_unix_ms: args.since,
                limit: args.limit,
                engine_mode: args.engine_mode.map(EngineMode::as_wire),
            };
            let response = controller
                .call(request, |mut c, r| async move { c.verify_replays(r).await })
                .await?;
            let text = show(
                json,
                "pecr.v1.VerifyReplaysResponse",
                &response,
                render::verification,
            )?;
            return Ok(Output {
                text,
                passed: response.differing == 0,
            });
        }
        ControllerCommand::Replays(ReplaysCommand::Gate(args)) => {
            let set = gate::load(&args.expect)?;
            let principal = global.principal.as_deref().ok_or_else(|| {
                Failure::Usage(
                    "replays gate needs --principal: expectations are per principal".into(),
                )
            })?;
            let report = gate::run(&controller, &set, principal, args.limit, args.ask).await?;
            let text = match json {
                Some(_) => crate::json::line(&report)?,
                None => gate::render(&report),
            };
            return Ok(Output {
                text,
                passed: report.passed(),
            });
        }
        ControllerCommand::Replays(ReplaysCommand::List(args)) => {
            let request = ListReplaysRequest {
                limit: args.limit,
                engine_mode: args.engine_mode.map(EngineMode::as_wire),
            };
            let response = controller
                .call(request, |mut c, r| async move { c.list_replays(r).await })
                .await?;
            show(
                json,
                "pecr.v1.ListReplaysResponse",
                &response,
                render::replay_list,
            )
        }
        ControllerCommand::Replays(ReplaysCommand::Show { run_id }) => {
            let request = GetReplayRequest {
                run_id: run_id.clone(),
            };
            let response = controller
                .call(request, |mut c, r| async move { c.get_replay(r).await })
                .await?;
            // Like the REST edge (`response_body: "bundle"`): the bundle alone.
            let bundle = response.bundle.unwrap_or_default();
            show(json, "pecr.v1.ReplayBundle", &bundle, render::replay)
        }
        ControllerCommand::Eval(EvalCommand::Submit(args)) => {
            let request = SubmitEvaluationRequest {
                submission: Some(ReplayEvaluationSubmission {
                    evaluation_name: args.name.clone(),
                    replay_ids: args.replay_ids.clone(),
                    engine_mode: args.engine_mode.map(EngineMode::as_wire),
                    min_quality_score: args.min_quality_score,
                    max_source_unavailable_rate: args.max_source_unavailable_rate,
                }),
            };
            let response = controller
                .call(
                    request,
                    |mut c, r| async move { c.submit_evaluation(r).await },
                )
                .await?;
            let evaluation = response.evaluation.unwrap_or_default();
            show(
                json,
                "pecr.v1.ReplayEvaluationResult",
                &evaluation,
                render::evaluation,
            )
        }
        ControllerCommand::Eval(EvalCommand::Usefulness(args)) => {
            return crate::usefulness::execute(&controller, global, args, json.is_some()).await;
        }
        ControllerCommand::Eval(EvalCommand::Show { evaluation_id }) => {
            let request = GetEvaluationRequest {
                evaluation_id: evaluation_id.clone(),
            };
            let response = controller
                .call(request, |mut c, r| async move { c.get_evaluation(r).await })
                .await?;
            let evaluation = response.evaluation.unwrap_or_default();
            show(
                json,
                "pecr.v1.ReplayEvaluationResult",
                &evaluation,
                render::evaluation,
            )
        }
        ControllerCommand::Scorecards(args) => {
            let request = GetScorecardsRequest {
                limit: args.limit,
                engine_mode: args.engine_mode.map(EngineMode::as_wire),
            };
            let response = controller
                .call(request, |mut c, r| async move { c.get_scorecards(r).await })
                .await?;
            show(
                json,
                "pecr.v1.GetScorecardsResponse",
                &response,
                |response| render::scorecards(&response.scorecards),
            )
        }
    };
    text.map(Output::from)
}

/// What the spinner says while the command waits.
pub fn progress_label(command: &ControllerCommand) -> &'static str {
    match command {
        ControllerCommand::Run(_) => "running…",
        ControllerCommand::Eval(EvalCommand::Submit(_) | EvalCommand::Usefulness(_)) => "scoring…",
        ControllerCommand::Replays(ReplaysCommand::Verify(_)) => "verifying…",
        ControllerCommand::Replays(ReplaysCommand::Gate(_)) => "gating…",
        _ => "loading…",
    }
}

fn show<M: Message>(
    json: Option<&JsonWriter>,
    full_name: &str,
    message: &M,
    readable: impl FnOnce(&M) -> String,
) -> Result<String, Failure> {
    match json {
        Some(writer) => writer
            .render(full_name, message)
            .map(|line| line + "\n")
            .map_err(Failure::Output),
        None => Ok(readable(message)),
    }
}

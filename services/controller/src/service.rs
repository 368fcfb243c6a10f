//! `pecr.v1.ControllerService`. Runs, replays and evaluations are a later
//! issue's work; until then every RPC answers UNIMPLEMENTED with a PECR
//! error detail (ERR_INTERNAL, 501).

use pecr_errors::PecrError;
use pecr_proto::v1::{self, controller_service_server::ControllerService};
use tonic::{Request, Response, Status};

pub struct ControllerApi;

fn not_yet(rpc: &str) -> Status {
    PecrError::not_implemented(&format!("pecr.v1.ControllerService/{rpc}")).into()
}

#[tonic::async_trait]
impl ControllerService for ControllerApi {
    async fn run(
        &self,
        _request: Request<v1::RunRequest>,
    ) -> Result<Response<v1::RunResponse>, Status> {
        Err(not_yet("Run"))
    }

    async fn list_replays(
        &self,
        _request: Request<v1::ListReplaysRequest>,
    ) -> Result<Response<v1::ListReplaysResponse>, Status> {
        Err(not_yet("ListReplays"))
    }

    async fn get_replay(
        &self,
        _request: Request<v1::GetReplayRequest>,
    ) -> Result<Response<v1::GetReplayResponse>, Status> {
        Err(not_yet("GetReplay"))
    }

    async fn submit_evaluation(
        &self,
        _request: Request<v1::SubmitEvaluationRequest>,
    ) -> Result<Response<v1::SubmitEvaluationResponse>, Status> {
        Err(not_yet("SubmitEvaluation"))
    }

    async fn get_scorecards(
        &self,
        _request: Request<v1::GetScorecardsRequest>,
    ) -> Result<Response<v1::GetScorecardsResponse>, Status> {
        Err(not_yet("GetScorecards"))
    }

    async fn get_evaluation(
        &self,
        _request: Request<v1::GetEvaluationRequest>,
    ) -> Result<Response<v1::GetEvaluationResponse>, Status> {
        Err(not_yet("GetEvaluation"))
    }
}

//! `pecr.v1.GatewayService`. The governance plane (sessions, policy,
//! operators, finalize) is the next issue's work; until then every RPC
//! answers UNIMPLEMENTED with a PECR error detail (ERR_INTERNAL, 501).

use pecr_errors::PecrError;
use pecr_proto::v1::{self, gateway_service_server::GatewayService};
use tonic::{Request, Response, Status};

pub struct GatewayApi;

fn not_yet(rpc: &str) -> Status {
    PecrError::not_implemented(&format!("pecr.v1.GatewayService/{rpc}")).into()
}

#[tonic::async_trait]
impl GatewayService for GatewayApi {
    async fn create_session(
        &self,
        _request: Request<v1::CreateSessionRequest>,
    ) -> Result<Response<v1::CreateSessionResponse>, Status> {
        Err(not_yet("CreateSession"))
    }

    async fn simulate_policy(
        &self,
        _request: Request<v1::SimulatePolicyRequest>,
    ) -> Result<Response<v1::SimulatePolicyResponse>, Status> {
        Err(not_yet("SimulatePolicy"))
    }

    async fn call_operator(
        &self,
        _request: Request<v1::CallOperatorRequest>,
    ) -> Result<Response<v1::CallOperatorResponse>, Status> {
        Err(not_yet("CallOperator"))
    }

    async fn finalize(
        &self,
        _request: Request<v1::FinalizeRequest>,
    ) -> Result<Response<v1::FinalizeResponse>, Status> {
        Err(not_yet("Finalize"))
    }
}

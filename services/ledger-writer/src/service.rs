//! `pecr.v1.LedgerService`: validate → store → respond. No SQL here.

use std::future::Future;
use std::time::Instant;

use pecr_errors::PecrResult;
use pecr_proto::v1::{self, ledger_service_server::LedgerService};
use tonic::{Request, Response, Status};

use crate::audit::Audit;
use crate::metrics::LedgerMetrics;
use crate::store::LedgerStore;
use crate::validate;

pub struct Ledger {
    store: LedgerStore,
    audit: Audit,
    metrics: LedgerMetrics,
}

impl Ledger {
    pub fn new(store: LedgerStore, audit: Audit, metrics: LedgerMetrics) -> Self {
        Self {
            store,
            audit,
            metrics,
        }
    }

    async fn call<T>(
        &self,
        rpc: &'static str,
        work: impl Future<Output = PecrResult<T>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = work.await;
        self.metrics.observe(rpc, started, &result);
        result.map(Response::new).map_err(Status::from)
    }
}

#[tonic::async_trait]
impl LedgerService for Ledger {
    async fn record_session(
        &self,
        request: Request<v1::RecordSessionRequest>,
    ) -> Result<Response<v1::RecordSessionResponse>, Status> {
        self.call("RecordSession", async {
            let new = validate::record_session(request.into_inner())?;
            self.store.record_session(new).await
        })
        .await
    }

    async fn get_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::GetSessionResponse>, Status> {
        self.call("GetSession", async {
            let session_id = validate::identifier("session_id", &request.get_ref().session_id)?;
            let session = self.store.get_session(&session_id).await?;
            Ok(v1::GetSessionResponse {
                session: Some(session),
            })
        })
        .await
    }

    async fn get_policy_snapshot(
        &self,
        request: Request<v1::GetPolicySnapshotRequest>,
    ) -> Result<Response<v1::GetPolicySnapshotResponse>, Status> {
        self.call("GetPolicySnapshot", async {
            let id =
                validate::identifier("policy_snapshot_id", &request.get_ref().policy_snapshot_id)?;
            let snapshot = self.store.get_policy_snapshot(&id).await?;
            Ok(v1::GetPolicySnapshotResponse {
                policy_snapshot: Some(snapshot),
            })
        })
        .await
    }

    async fn append_event(
        &self,
        request: Request<v1::AppendEventRequest>,
    ) -> Result<Response<v1::AppendEventResponse>, Status> {
        self.call("AppendEvent", async {
            let event = validate::event("event", request.into_inner().event)?;
            let payload_hash = event.payload_hash.clone();
            let event_id = self.store.append_event(event).await?;
            Ok(v1::AppendEventResponse {
                event_id,
                payload_hash,
            })
        })
        .await
    }

    async fn record_operator_call(
        &self,
        request: Request<v1::RecordOperatorCallRequest>,
    ) -> Result<Response<v1::RecordOperatorCallResponse>, Status> {
        self.call("RecordOperatorCall", async {
            let write = validate::operator_call(request.into_inner())?;
            self.store.record_operator_call(write).await
        })
        .await
    }

    async fn record_access_refusal(
        &self,
        request: Request<v1::RecordAccessRefusalRequest>,
    ) -> Result<Response<v1::RecordAccessRefusalResponse>, Status> {
        self.call("RecordAccessRefusal", async {
            let refusal = validate::access_refusal(request.into_inner())?;
            let refusal_id = self.store.record_refusal(refusal).await?;
            Ok(v1::RecordAccessRefusalResponse { refusal_id })
        })
        .await
    }

    async fn record_finalize(
        &self,
        request: Request<v1::RecordFinalizeRequest>,
    ) -> Result<Response<v1::RecordFinalizeResponse>, Status> {
        self.call("RecordFinalize", async {
            let write = validate::finalize(request.into_inner())?;
            self.store.record_finalize(write).await
        })
        .await
    }

    async fn list_events(
        &self,
        request: Request<v1::ListEventsRequest>,
    ) -> Result<Response<v1::ListEventsResponse>, Status> {
        self.call("ListEvents", async {
            let query = validate::list_events(request.into_inner())?;
            let events = self.store.list_events(query).await?;
            Ok(v1::ListEventsResponse { events })
        })
        .await
    }

    async fn store_replay_bundle(
        &self,
        request: Request<v1::StoreReplayBundleRequest>,
    ) -> Result<Response<v1::StoreReplayBundleResponse>, Status> {
        self.call("StoreReplayBundle", async {
            let replay = validate::replay(request.into_inner())?;
            let run_id = self.store.store_replay(replay).await?;
            Ok(v1::StoreReplayBundleResponse { run_id })
        })
        .await
    }

    async fn load_replay_bundle(
        &self,
        request: Request<v1::LoadReplayBundleRequest>,
    ) -> Result<Response<v1::LoadReplayBundleResponse>, Status> {
        self.call("LoadReplayBundle", async {
            let request = request.into_inner();
            let owner = validate::principal_key(&request.tenant_id, &request.principal_id_hash)?;
            // An unsafe id can name no stored bundle.
            let run_id = validate::store_id("run_id", &request.run_id).map_err(|_| {
                pecr_errors::PecrError::new(
                    pecr_errors::ErrorCode::ReplayNotFound,
                    "replay not found",
                )
            })?;
            let bundle = self.store.load_replay(owner, &run_id).await?;
            Ok(v1::LoadReplayBundleResponse { bundle })
        })
        .await
    }

    async fn load_replay_bundles(
        &self,
        request: Request<v1::LoadReplayBundlesRequest>,
    ) -> Result<Response<v1::LoadReplayBundlesResponse>, Status> {
        self.call("LoadReplayBundles", async {
            let request = request.into_inner();
            let owner = validate::principal_key(&request.tenant_id, &request.principal_id_hash)?;
            let run_ids = validate::batch_run_ids(request.run_ids)?;
            let bundles = self.store.load_replays(owner, &run_ids).await?;
            Ok(v1::LoadReplayBundlesResponse { bundles })
        })
        .await
    }

    async fn list_replay_bundles(
        &self,
        request: Request<v1::ListReplayBundlesRequest>,
    ) -> Result<Response<v1::ListReplayBundlesResponse>, Status> {
        self.call("ListReplayBundles", async {
            let request = request.into_inner();
            let owner = validate::principal_key(&request.tenant_id, &request.principal_id_hash)?;
            let engine_mode = request
                .engine_mode
                .map(|mode| validate::engine_mode("engine_mode", &mode))
                .transpose()?;
            let limit = validate::list_limit(request.limit)?;
            let bundles = self.store.list_replays(owner, engine_mode, limit).await?;
            Ok(v1::ListReplayBundlesResponse { bundles })
        })
        .await
    }

    async fn prune_replays(
        &self,
        request: Request<v1::PruneReplaysRequest>,
    ) -> Result<Response<v1::PruneReplaysResponse>, Status> {
        self.call("PruneReplays", async {
            let (replays_deleted, evaluations_deleted) =
                self.store.prune(request.get_ref().retention_days).await?;
            Ok(v1::PruneReplaysResponse {
                replays_deleted,
                evaluations_deleted,
            })
        })
        .await
    }

    async fn store_evaluation(
        &self,
        request: Request<v1::StoreEvaluationRequest>,
    ) -> Result<Response<v1::StoreEvaluationResponse>, Status> {
        self.call("StoreEvaluation", async {
            let evaluation = validate::evaluation(request.into_inner())?;
            let evaluation_id = self.store.store_evaluation(evaluation).await?;
            Ok(v1::StoreEvaluationResponse { evaluation_id })
        })
        .await
    }

    async fn load_evaluation(
        &self,
        request: Request<v1::LoadEvaluationRequest>,
    ) -> Result<Response<v1::LoadEvaluationResponse>, Status> {
        self.call("LoadEvaluation", async {
            let request = request.into_inner();
            let owner = validate::principal_key(&request.tenant_id, &request.principal_id_hash)?;
            let evaluation_id = validate::store_id("evaluation_id", &request.evaluation_id)
                .map_err(|_| {
                    pecr_errors::PecrError::new(
                        pecr_errors::ErrorCode::EvaluationNotFound,
                        "evaluation not found",
                    )
                })?;
            let evaluation = self.store.load_evaluation(owner, &evaluation_id).await?;
            Ok(v1::LoadEvaluationResponse { evaluation })
        })
        .await
    }

    async fn resolve_versions(
        &self,
        request: Request<v1::ResolveVersionsRequest>,
    ) -> Result<Response<v1::ResolveVersionsResponse>, Status> {
        self.call("ResolveVersions", async {
            let resolve = validate::versions::resolve(request.into_inner())?;
            self.store.resolve_versions(resolve).await
        })
        .await
    }

    async fn record_version(
        &self,
        request: Request<v1::RecordVersionRequest>,
    ) -> Result<Response<v1::RecordVersionResponse>, Status> {
        self.call("RecordVersion", async {
            let record = validate::versions::record(request.into_inner())?;
            self.store.record_version(record).await
        })
        .await
    }

    async fn get_versions(
        &self,
        request: Request<v1::GetVersionsRequest>,
    ) -> Result<Response<v1::GetVersionsResponse>, Status> {
        self.call("GetVersions", async {
            let get = validate::versions::get(request.into_inner())?;
            self.store.get_versions(get).await
        })
        .await
    }

    async fn create_checkpoint(
        &self,
        _request: Request<v1::CreateCheckpointRequest>,
    ) -> Result<Response<v1::CreateCheckpointResponse>, Status> {
        self.call("CreateCheckpoint", self.audit.create_checkpoint())
            .await
    }

    async fn verify_ledger(
        &self,
        request: Request<v1::VerifyLedgerRequest>,
    ) -> Result<Response<v1::VerifyLedgerResponse>, Status> {
        self.call("VerifyLedger", self.audit.verify(request.into_inner()))
            .await
    }
}

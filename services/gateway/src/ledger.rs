//! The gateway's only path to the ledger: ledger-writer's gRPC API.

use std::future::Future;
use std::time::Duration;

use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1::{self, ledger_service_client::LedgerServiceClient};
use pecr_server::{Credentialed, TracedChannel};
use tonic::transport::Channel;
use tracing::Instrument;

#[derive(Clone)]
pub struct Ledger {
    client: LedgerServiceClient<Credentialed<TracedChannel>>,
    timeout: Duration,
}

impl Ledger {
    /// A client presenting `token` (ledger-writer's gateway token) on every call.
    pub fn new(channel: Channel, token: Option<&str>, timeout: Duration) -> Self {
        let channel = pecr_server::credentialed(pecr_server::traced(channel), token);
        Self {
            client: LedgerServiceClient::new(channel),
            timeout,
        }
    }

    /// Bounds a call and maps its failure: the ledger's own PECR errors
    /// (404 unknown session, 409 conflicts) pass through; a 400 means the
    /// gateway built a bad record, which is our bug, not the caller's; a
    /// timeout or transport failure is `ERR_LEDGER_UNAVAILABLE`.
    async fn call<T>(
        &self,
        rpc: &'static str,
        work: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> PecrResult<T> {
        let span = match rpc {
            "RecordSession" => tracing::info_span!("ledger.append", event_type = "SESSION_CREATED"),
            "RecordOperatorCall" => {
                tracing::info_span!("ledger.append", event_type = "OPERATOR_CALL")
            }
            "RecordFinalize" => {
                tracing::info_span!("ledger.append", event_type = "FINALIZE_RESULT")
            }
            "AppendEvent" => tracing::info_span!("ledger.append", event_type = "EVENT"),
            _ => tracing::info_span!("ledger.read", rpc),
        };
        let status = match tokio::time::timeout(self.timeout, work)
            .instrument(span)
            .await
        {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => status,
            Err(_) => {
                tracing::warn!(rpc, "ledger call timed out");
                return Err(PecrError::ledger_unavailable());
            }
        };
        match PecrError::from_status(&status) {
            Some(error) if matches!(error.http_status, 401 | 403) => {
                tracing::error!(
                    rpc,
                    code = error.code.as_str(),
                    "ledger-writer refused the gateway's credential"
                );
                Err(PecrError::ledger_unavailable())
            }
            Some(error) if error.http_status == 400 => {
                tracing::error!(rpc, message = %error.message, "ledger-writer refused a record the gateway built");
                Err(PecrError::internal("ledger refused the record"))
            }
            Some(error) => Err(error),
            None => {
                tracing::warn!(rpc, code = ?status.code(), "ledger call failed");
                Err(PecrError::ledger_unavailable())
            }
        }
    }

    /// The session as recorded and, when the request carried first calls
    /// and the ledger recorded them, their answer.
    pub async fn record_session(
        &self,
        request: v1::RecordSessionRequest,
    ) -> PecrResult<(v1::SessionRecord, Option<v1::RecordOperatorCallResponse>)> {
        let response = self
            .call("RecordSession", self.client.clone().record_session(request))
            .await?;
        let session = response.session.ok_or_else(PecrError::ledger_unavailable)?;
        Ok((session, response.first_calls))
    }

    /// None when the session does not exist.
    pub async fn get_session(&self, session_id: &str) -> PecrResult<Option<v1::SessionRecord>> {
        let request = v1::GetSessionRequest {
            session_id: session_id.to_owned(),
        };
        match self
            .call("GetSession", self.client.clone().get_session(request))
            .await
        {
            Ok(response) => Ok(response.session),
            Err(error) if error.http_status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn record_operator_call(
        &self,
        request: v1::RecordOperatorCallRequest,
    ) -> PecrResult<v1::RecordOperatorCallResponse> {
        self.call(
            "RecordOperatorCall",
            self.client.clone().record_operator_call(request),
        )
        .await
    }

    pub async fn record_access_refusal(
        &self,
        request: v1::RecordAccessRefusalRequest,
    ) -> PecrResult<()> {
        self.call(
            "RecordAccessRefusal",
            self.client.clone().record_access_refusal(request),
        )
        .await
        .map(|_| ())
    }

    pub async fn record_finalize(
        &self,
        request: v1::RecordFinalizeRequest,
    ) -> PecrResult<v1::RecordFinalizeResponse> {
        self.call(
            "RecordFinalize",
            self.client.clone().record_finalize(request),
        )
        .await
    }

    pub async fn append_event(&self, event: v1::NewLedgerEvent) -> PecrResult<()> {
        let request = v1::AppendEventRequest { event: Some(event) };
        self.call("AppendEvent", self.client.clone().append_event(request))
            .await
            .map(|_| ())
    }

    pub async fn resolve_versions(
        &self,
        request: v1::ResolveVersionsRequest,
    ) -> PecrResult<v1::ResolveVersionsResponse> {
        self.call(
            "ResolveVersions",
            self.client.clone().resolve_versions(request),
        )
        .await
    }

    pub async fn record_version(
        &self,
        request: v1::RecordVersionRequest,
    ) -> PecrResult<v1::RecordVersionResponse> {
        self.call("RecordVersion", self.client.clone().record_version(request))
            .await
    }

    pub async fn get_versions(
        &self,
        request: v1::GetVersionsRequest,
    ) -> PecrResult<v1::GetVersionsResponse> {
        self.call("GetVersions", self.client.clone().get_versions(request))
            .await
    }
}

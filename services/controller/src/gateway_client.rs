//! The controller's only privileged path: the gateway's gRPC API (spec 30 §7).
//! Every call carries the request and trace ids and the caller's identity;
//! session creation and finalize are bounded by `PECR_GATEWAY_TIMEOUT_MS`,
//! operator calls by the remaining wall-clock budget.

use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use pecr_replay::TerminalMode;
use pecr_server::TracedChannel;
use serde_json::Value;
use tonic::Code;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;
use tracing::Instrument;

/// Who the run acts for, and how to say so to the gateway (spec 30 §3.3).
#[derive(Debug, Clone)]
pub struct PrincipalCredential {
    pub principal_id: String,
    pub credential: GatewayCredential,
    pub request_id: String,
    pub trace_id: String,
}

/// How the gateway learns who the caller is.
#[derive(Clone)]
pub enum GatewayCredential {
    /// Local mode: `x-pecr-principal-id`, plus `x-pecr-local-auth-secret`
    /// when a shared secret is configured.
    Local { shared_secret: Option<String> },
    /// OIDC mode: the caller's `authorization` header as received (trimmed);
    /// the gateway verifies the token itself.
    Bearer { authorization: String },
}

impl std::fmt::Debug for GatewayCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { shared_secret } => f
                .debug_struct("Local")
                .field(
                    "shared_secret",
                    &shared_secret.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
            Self::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("authorization", &"<redacted>")
                .finish(),
        }
    }
}

/// The outcome of one operator call that did not fail the run.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    pub ok: bool,
    /// The reply's mode when ok, else the failure's hint.
    pub terminal_mode: TerminalMode,
    /// The operator's JSON result when ok.
    pub result: Option<Value>,
    /// Length of the result JSON (ok) or of the error body (failed); 0 on timeout.
    pub bytes_len: u64,
}

impl CallOutcome {
    /// A call that ran out of wall clock.
    fn timed_out() -> Self {
        Self {
            ok: false,
            terminal_mode: TerminalMode::SourceUnavailable,
            result: None,
            bytes_len: 0,
        }
    }

    /// A call the gateway refused or could not complete.
    fn failed(error: &PecrError) -> Self {
        Self {
            ok: false,
            terminal_mode: contract_mode(error.hint as i32)
                .unwrap_or(TerminalMode::SourceUnavailable),
            result: None,
            bytes_len: error_body_len(error),
        }
    }

    /// A call that returned a result; an unparsable reply fails the run.
    fn succeeded(reply: v1::CallOperatorResponse) -> Result<Self, PecrError> {
        let result: Value = serde_json::from_str(&reply.result)
            .map_err(|_| bad_reply("operator result is not JSON"))?;
        let terminal_mode = contract_mode(reply.terminal_mode)
            .ok_or_else(|| bad_reply("operator reply has no terminal_mode"))?;
        Ok(Self {
            ok: true,
            terminal_mode,
            bytes_len: reply.result.len() as u64,
            result: Some(result),
        })
    }
}

/// One outcome of a batch reply: exactly one of its result and its error.
fn batch_outcome(outcome: v1::OperatorOutcome) -> Result<CallOutcome, PecrError> {
    use v1::operator_outcome::Outcome;
    match outcome.outcome {
        Some(Outcome::Ok(reply)) => CallOutcome::succeeded(reply),
        Some(Outcome::Error(detail)) => PecrError::from_detail(detail)
            .map(|error| CallOutcome::failed(&error))
            .ok_or_else(|| bad_reply("operator batch outcome carries an unknown error")),
        None => Err(bad_reply(
            "operator batch outcome must hold a result or an error",
        )),
    }
}

fn operator_calls(calls: &[(String, Value)]) -> Vec<v1::OperatorCall> {
    calls
        .iter()
        .map(|(op_name, params)| v1::OperatorCall {
            op_name: op_name.clone(),
            params: params.to_string(),
        })
        .collect()
}

/// A run's session before and after it is open: the first batch of calls
/// opens it (one gateway request for both), or, when the run makes no call,
/// [`Self::into_open`] does.
pub struct LazySession {
    gateway: GatewayClient,
    identity: PrincipalCredential,
    budget: v1::Budget,
    open: Option<SessionClient>,
}

impl LazySession {
    pub fn new(gateway: GatewayClient, identity: PrincipalCredential, budget: v1::Budget) -> Self {
        Self {
            gateway,
            identity,
            budget,
            open: None,
        }
    }

    /// The session, once a batch has opened it.
    pub fn opened(&self) -> Option<&SessionClient> {
        self.open.as_ref()
    }

    /// As [`SessionClient::call_batch`]; the first batch opens the session.
    pub async fn call_batch(
        &mut self,
        calls: &[(String, Value)],
        timeout: Duration,
    ) -> Result<Vec<CallOutcome>, PecrError> {
        let span = tracing::info_span!(
            "operator.batch",
            calls = calls.len() as u64,
            outcome = tracing::field::Empty,
        );
        let outcomes = match &self.open {
            Some(session) => {
                session
                    .call_batch(calls, timeout)
                    .instrument(span.clone())
                    .await
            }
            None => {
                self.open_with(calls, timeout)
                    .instrument(span.clone())
                    .await
            }
        };
        span.record("outcome", if outcomes.is_ok() { "ok" } else { "error" });
        outcomes
    }

    async fn open_with(
        &mut self,
        calls: &[(String, Value)],
        timeout: Duration,
    ) -> Result<Vec<CallOutcome>, PecrError> {
        let opening = self
            .gateway
            .create_session_with(&self.identity, self.budget, calls);
        let outcomes = match tokio::time::timeout(timeout, opening).await {
            Ok(opened) => {
                let (session, outcomes) = opened?;
                self.open = Some(session);
                outcomes
            }
            // The wall clock ran out first: the calls timed out, as in an
            // open session, and the run goes on in a session opened now.
            // The dropped request is cancelled at the gateway; only one
            // cancelled after its ledger write leaves a session unfinalized.
            Err(_) => {
                let session = self
                    .gateway
                    .create_session(&self.identity, self.budget)
                    .await?;
                self.open = Some(session);
                vec![CallOutcome::timed_out(); calls.len()]
            }
        };
        Ok(outcomes)
    }

    /// The open session, opened now if no call opened it.
    pub async fn into_open(self) -> Result<SessionClient, PecrError> {
        match self.open {
            Some(session) => Ok(session),
            None => {
                self.gateway
                    .create_session(&self.identity, self.budget)
                    .await
            }
        }
    }
}

/// The gateway, as seen by one run.
#[derive(Clone)]
pub struct GatewayClient {
    client: GatewayServiceClient<TracedChannel>,
    timeout: Duration,
}

/// An open gateway session of one run; cheap to clone for concurrent calls.
#[derive(Clone)]
pub struct SessionClient {
    client: GatewayServiceClient<TracedChannel>,
    identity: PrincipalCredential,
    token: AsciiMetadataValue,
    timeout: Duration,
    pub session_id: String,
    pub policy_snapshot_id: String,
}

fn unavailable(what: &str) -> PecrError {
    PecrError::new(
        ErrorCode::SourceUnavailable,
        format!("gateway unavailable during {what}"),
    )
    .with_http(502)
}

fn bad_reply(reason: &str) -> PecrError {
    PecrError::new(
        ErrorCode::Internal,
        format!("invalid gateway reply: {reason}"),
    )
    .with_http(502)
    .with_hint(pecr_errors::TerminalMode::SourceUnavailable)
}

/// A gateway error passes through unchanged; a status without one is a
/// transport failure.
fn passthrough(status: &tonic::Status, what: &str) -> PecrError {
    PecrError::from_status_or(status, || unavailable(what))
}

fn insert(metadata: &mut MetadataMap, key: &'static str, value: &str) -> Result<(), PecrError> {
    let value = value
        .parse::<AsciiMetadataValue>()
        .map_err(|_| PecrError::invalid_params(format!("{key} is not valid header text")))?;
    metadata.insert(key, value);
    Ok(())
}

impl PrincipalCredential {
    fn request<T>(&self, body: T, timeout: Duration) -> Result<tonic::Request<T>, PecrError> {
        let mut request = tonic::Request::new(body);
        request.set_timeout(timeout);
        let metadata = request.metadata_mut();
        insert(metadata, "x-pecr-request-id", &self.request_id)?;
        insert(metadata, "x-pecr-trace-id", &self.trace_id)?;
        match &self.credential {
            GatewayCredential::Local { shared_secret } => {
                insert(metadata, "x-pecr-principal-id", &self.principal_id)?;
                if let Some(secret) = shared_secret {
                    insert(metadata, "x-pecr-local-auth-secret", secret)?;
                }
            }
            GatewayCredential::Bearer { authorization } => {
                insert(metadata, "authorization", authorization)?;
            }
        }
        Ok(request)
    }
}

impl GatewayClient {
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            client: GatewayServiceClient::new(pecr_server::traced(channel)),
            timeout,
        }
    }

    /// Opens a session and checks the reply: a token, our trace id, our budget.
    pub async fn create_session(
        &self,
        identity: &PrincipalCredential,
        budget: v1::Budget,
    ) -> Result<SessionClient, PecrError> {
        let (session, _) = self.create_session_with(identity, budget, &[]).await?;
        Ok(session)
    }

    /// Opens a session with its first calls, run by the gateway as one batch
    /// of the new session: one outcome per call, in order. Unlike a batch of
    /// an open session, a failure of the request fails the run, as a failed
    /// session creation does.
    pub async fn create_session_with(
        &self,
        identity: &PrincipalCredential,
        budget: v1::Budget,
        calls: &[(String, Value)],
    ) -> Result<(SessionClient, Vec<CallOutcome>), PecrError> {
        let span = tracing::info_span!(
            "session.create",
            calls = calls.len() as u64,
            session_id = tracing::field::Empty,
            policy_snapshot_id = tracing::field::Empty,
        );
        let (session, outcomes) = self
            .create_session_inner(identity, budget, calls)
            .instrument(span.clone())
            .await?;
        span.record("session_id", session.session_id.as_str());
        span.record("policy_snapshot_id", session.policy_snapshot_id.as_str());
        Ok((session, outcomes))
    }

    async fn create_session_inner(
        &self,
        identity: &PrincipalCredential,
        budget: v1::Budget,
        calls: &[(String, Value)],
    ) -> Result<(SessionClient, Vec<CallOutcome>), PecrError> {
        let timeout = self.timeout;
        let request = identity.request(
            v1::CreateSessionRequest {
                budget: Some(budget),
                as_of_time: None,
                calls: operator_calls(calls),
            },
            timeout,
        )?;
        let mut client = self.client.clone();
        let reply = tokio::time::timeout(timeout, client.create_session(request))
            .await
            .map_err(|_| unavailable("session creation"))?
            .map_err(|status| passthrough(&status, "session creation"))?;
        let token = reply
            .metadata()
            .get("x-pecr-session-token")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .and_then(|value| value.parse::<AsciiMetadataValue>().ok())
            .ok_or_else(|| bad_reply("session reply has no x-pecr-session-token"))?;
        let session = reply.into_inner();
        if pecr_contracts::ids::parse_ulid(&session.trace_id).as_deref()
            != Some(session.trace_id.as_str())
        {
            return Err(bad_reply("session trace_id is not a ULID"));
        }
        if session.budget != Some(budget) {
            return Err(bad_reply("session budget differs from the one sent"));
        }
        if session.outcomes.len() != calls.len() {
            return Err(bad_reply("session reply has the wrong number of outcomes"));
        }
        let outcomes = session
            .outcomes
            .into_iter()
            .map(batch_outcome)
            .collect::<Result<Vec<_>, _>>()?;
        // The gateway gives a session a trace of its own when the requested
        // one belongs to another principal; the run follows the session.
        let mut identity = identity.clone();
        identity.trace_id = session.trace_id;
        let session = SessionClient {
            client: self.client.clone(),
            identity,
            token,
            timeout: self.timeout,
            session_id: session.session_id,
            policy_snapshot_id: session.policy_snapshot_id,
        };
        Ok((session, outcomes))
    }
}

impl SessionClient {
    /// The trace the gateway recorded the session under.
    pub fn trace_id(&self) -> &str {
        &self.identity.trace_id
    }

    pub fn request_id(&self) -> &str {
        &self.identity.request_id
    }

    fn request<T>(&self, body: T, timeout: Duration) -> Result<tonic::Request<T>, PecrError> {
        let mut request = self.identity.request(body, timeout)?;
        request
            .metadata_mut()
            .insert("x-pecr-session-token", self.token.clone());
        Ok(request)
    }

    /// Calls one operator with `timeout` (the remaining wall clock). A timeout
    /// or a gateway error is a failed outcome; a transport failure or an
    /// unparsable result fails the run.
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    pub async fn call(
        &self,
        op_name: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<CallOutcome, PecrError> {
        // Sizes only: params and results may carry canary or injected text.
        let span = tracing::info_span!(
            "operator",
            otel.name = pecr_server::telemetry::operator_span_name(op_name),
            operator_name =
                pecr_server::telemetry::operator_span_name(op_name).trim_start_matches("operator."),
            params_bytes = params.to_string().len() as u64,
            result_bytes = tracing::field::Empty,
            status_code = tracing::field::Empty,
            terminal_mode = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let outcome = self
            .call_inner(op_name, params, timeout)
            .instrument(span.clone())
            .await;
        match &outcome {
            Ok(called) => {
                span.record("result_bytes", called.bytes_len);
                span.record("terminal_mode", called.terminal_mode.as_str());
                span.record("outcome", if called.ok { "ok" } else { "failed" });
                span.record("status_code", if called.ok { 200 } else { 0 });
            }
            Err(err) => {
                span.record("outcome", "error");
                span.record("status_code", u64::from(err.http_status));
            }
        }
        outcome
    }

    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    async fn call_inner(
        &self,
        op_name: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<CallOutcome, PecrError> {
        let timed_out = CallOutcome::timed_out();
        let request = self.request(
            v1::CallOperatorRequest {
                op_name: op_name.to_owned(),
                session_id: self.session_id.clone(),
                params: params.to_string(),
            },
            timeout,
        )?;
        let mut client = self.client.clone();
        let reply = match tokio::time::timeout(timeout, client.call_operator(request)).await {
            Err(_) => return Ok(timed_out),
            Ok(reply) => reply,
        };
        match reply {
            Ok(reply) => CallOutcome::succeeded(reply.into_inner()),
            Err(status) if matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled) => {
                Ok(timed_out)
            }
            Err(status) => match PecrError::from_status(&status) {
                Some(error) => Ok(CallOutcome::failed(&error)),
                None => Err(unavailable("an operator call")),
            },
        }
    }

    /// Calls several independent operators as one gateway step, with
    /// `timeout` (the remaining wall clock): one outcome per call, in order.
    /// A failure of the whole batch is a failed outcome for every call.
    async fn call_batch(
        &self,
        calls: &[(String, Value)],
        timeout: Duration,
    ) -> Result<Vec<CallOutcome>, PecrError> {
        let every = |outcome: CallOutcome| vec![outcome; calls.len()];
        let request = self.request(
            v1::CallOperatorsRequest {
                session_id: self.session_id.clone(),
                calls: operator_calls(calls),
            },
            timeout,
        )?;
        let mut client = self.client.clone();
        let reply = match tokio::time::timeout(timeout, client.call_operators(request)).await {
            Err(_) => return Ok(every(CallOutcome::timed_out())),
            Ok(reply) => reply,
        };
        match reply {
            Ok(reply) => {
                let outcomes = reply.into_inner().outcomes;
                if outcomes.len() != calls.len() {
                    return Err(bad_reply(
                        "operator batch reply has the wrong number of outcomes",
                    ));
                }
                outcomes.into_iter().map(batch_outcome).collect()
            }
            Err(status) if matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled) => {
                Ok(every(CallOutcome::timed_out()))
            }
            Err(status) => match PecrError::from_status(&status) {
                Some(error) => Ok(every(CallOutcome::failed(&error))),
                None => Err(unavailable("an operator batch")),
            },
        }
    }

    /// Submits the answer to the finalize gate and checks the reply's trace id.
    /// With `run`, the gateway also records the run's replay bundle and
    /// returns its run id.
    pub async fn finalize(
        &self,
        response_text: String,
        claim_map: v1::ClaimMap,
        run: Option<v1::RunRecord>,
    ) -> Result<v1::FinalizeResponse, PecrError> {
        let span = tracing::info_span!(
            "finalize.compile",
            session_id = %self.session_id,
            terminal_mode = tracing::field::Empty,
        );
        let reply = self
            .finalize_inner(response_text, claim_map, run)
            .instrument(span.clone())
            .await?;
        if let Ok(mode) = v1::TerminalMode::try_from(reply.terminal_mode) {
            span.record("terminal_mode", mode.as_str_name());
        }
        Ok(reply)
    }

    async fn finalize_inner(
        &self,
        response_text: String,
        claim_map: v1::ClaimMap,
        run: Option<v1::RunRecord>,
    ) -> Result<v1::FinalizeResponse, PecrError> {
        let request = self.request(
            v1::FinalizeRequest {
                session_id: self.session_id.clone(),
                response_text,
                claim_map: Some(claim_map),
                run,
            },
            self.timeout,
        )?;
        let mut client = self.client.clone();
        let reply = tokio::time::timeout(self.timeout, client.finalize(request))
            .await
            .map_err(|_| unavailable("finalize"))?
            .map_err(|status| passthrough(&status, "finalize"))?
            .into_inner();
        if reply.trace_id != self.identity.trace_id {
            return Err(bad_reply("finalize trace_id differs"));
        }
        if reply.claim_map.is_none() || contract_mode(reply.terminal_mode).is_none() {
            return Err(bad_reply("finalize reply is incomplete"));
        }
        Ok(reply)
    }
}

pub use pecr_replay::wire::{contract_mode, proto_mode};

/// Bytes of a failed call: the length of its `ErrorResponse` JSON, so
/// `max_bytes` keeps its REST meaning over gRPC.
fn error_body_len(error: &PecrError) -> u64 {
    let body = serde_json::json!({
        "code": error.code.as_str(),
        "message": error.message,
        "terminal_mode_hint": proto_mode(
            contract_mode(error.hint as i32).unwrap_or(TerminalMode::SourceUnavailable)
        ).as_str_name(),
        "retryable": error.retryable,
    });
    body.to_string().len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(credential: GatewayCredential) -> Vec<(String, String)> {
        let identity = PrincipalCredential {
            principal_id: "dev".into(),
            credential,
            request_id: "r1".into(),
            trace_id: "01JR5M00000000000000000001".into(),
        };
        let request = identity
            .request((), Duration::from_secs(1))
            .unwrap_or_else(|err| panic!("{}", err.message));
        let mut pairs: Vec<(String, String)> = [
            "authorization",
            "x-pecr-principal-id",
            "x-pecr-local-auth-secret",
            "x-pecr-request-id",
        ]
        .iter()
        .filter_map(|key| {
            let value = request.metadata().get(*key)?.to_str().ok()?;
            Some(((*key).to_owned(), value.to_owned()))
        })
        .collect();
        pairs.sort();
        pairs
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn local_mode_sends_the_principal_and_the_secret() {
        assert_eq!(
            sent(GatewayCredential::Local {
                shared_secret: Some("s3cret".into())
            }),
            [
                pair("x-pecr-local-auth-secret", "s3cret"),
                pair("x-pecr-principal-id", "dev"),
                pair("x-pecr-request-id", "r1"),
            ]
        );
        assert_eq!(
            sent(GatewayCredential::Local {
                shared_secret: None
            }),
            [
                pair("x-pecr-principal-id", "dev"),
                pair("x-pecr-request-id", "r1")
            ]
        );
    }

    #[test]
    fn oidc_mode_forwards_only_the_callers_authorization() {
        let credential = GatewayCredential::Bearer {
            authorization: "Bearer a.b.c".into(),
        };
        assert!(!format!("{credential:?}").contains("a.b.c"));
        assert_eq!(
            sent(credential),
            [
                pair("authorization", "Bearer a.b.c"),
                pair("x-pecr-request-id", "r1")
            ]
        );
    }
}

//! A real mesh for gateway tests: a fresh PostgreSQL schema with the
//! safe-view fixture, a temporary copy of the corpus, ledger-writer and the
//! gateway as processes, and a tonic client that sets caller metadata.

#![allow(dead_code)]

pub mod transport;

use std::path::PathBuf;

use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use pecr_testkit::{ServiceProcess, TestDatabase, credentials, workspace_root};
use serde_json::Value;
use tonic::transport::Channel;

pub const CANARIES: [&str; 6] = [
    "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f",
    "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c",
    "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76",
    "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f",
    "PECR_CANARY_PG_ADMIN_DELTA_2a519d6b7f4348d4",
    "PECR_CANARY_PG_SUPPORT_EPSILON_8d77b9a9d9e24c2b",
];

/// Which Rego bundle the gateway evaluates.
#[derive(Clone, Copy)]
pub enum Policy {
    /// `opa/bundle`: the production rules (spec 20 §4.6).
    Bundle,
    /// `opa/test-bundle`: the test policy T (spec 20 §13).
    Test,
}

pub struct Mesh {
    pub db: TestDatabase,
    pub corpus: PathBuf,
    /// `None` once [`Mesh::stop_ledger`] has stopped it.
    ledger: Option<ServiceProcess>,
    pub gateway: ServiceProcess,
    /// The settings `gateway` was started with.
    gateway_env: Vec<(&'static str, String)>,
    channel: Channel,
}

impl Mesh {
    pub async fn start(policy: Policy) -> Self {
        Self::start_with(policy, &[]).await
    }

    /// Starts the mesh; `extra` adds or overrides gateway settings.
    pub async fn start_with(policy: Policy, extra: &[(&'static str, String)]) -> Self {
        Self::start_as(policy, extra, false).await
    }

    /// Starts the mesh with the database roles of production: ledger-writer
    /// migrates as the schema's owner and serves as a member of
    /// `pecr_ledger_rw`, the gateway reads the safe views as a member of
    /// `pecr_safeview_read`.
    pub async fn start_least_privilege(policy: Policy) -> Self {
        Self::start_as(policy, &[], true).await
    }

    async fn start_as(
        policy: Policy,
        extra: &[(&'static str, String)],
        least_privilege: bool,
    ) -> Self {
        let db = TestDatabase::create().await;
        pecr_adapters::load_fixture_sql(db.client(), pecr_adapters::SAFEVIEW_FIXTURE_SQL)
            .await
            .unwrap_or_else(|err| panic!("load safe-view fixture: {err}"));
        let corpus = pecr_testkit::scratch_corpus("pecr-corpus");

        let (ledger_url, safeview_url) = if least_privilege {
            (
                db.login_role("pecr_test_ledger_login", "pecr_ledger_rw")
                    .await,
                db.login_role("pecr_test_safeview_login", "pecr_safeview_read")
                    .await,
            )
        } else {
            (db.url(), db.url())
        };
        let mut ledger_env = vec![
            ("PECR_LEDGER_MIGRATE_DB_URL", db.url()),
            ("PECR_DB_URL", ledger_url),
            ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".into()),
            ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".into()),
        ];
        ledger_env.extend(credentials::ledger_writer_tokens());
        let ledger = ServiceProcess::start("pecr-ledger-writer", &ledger_env).await;
        let bundle = match policy {
            Policy::Bundle => "opa/bundle",
            Policy::Test => "opa/test-bundle",
        };
        let mut env: Vec<(&'static str, String)> = vec![
            ("PECR_DB_URL", safeview_url),
            ("PECR_LEDGER_URL", ledger.grpc_url()),
            credentials::gateway_ledger_token(),
            ("PECR_GATEWAY_GRPC_ADDR", "127.0.0.1:0".into()),
            ("PECR_BIND_ADDR", "127.0.0.1:0".into()),
            ("PECR_FS_CORPUS_PATH", corpus.display().to_string()),
            (
                "PECR_POLICY_BUNDLE_DIR",
                workspace_root().join(bundle).display().to_string(),
            ),
        ];
        for (key, value) in extra {
            env.retain(|(existing, _)| existing != key);
            env.push((key, value.clone()));
        }
        let gateway = ServiceProcess::start("pecr-gateway", &env).await;
        let channel = Channel::from_shared(gateway.grpc_url())
            .unwrap_or_else(|err| panic!("gateway url: {err}"))
            .connect()
            .await
            .unwrap_or_else(|err| panic!("connect gateway: {err}"));
        Self {
            db,
            corpus,
            ledger: Some(ledger),
            gateway,
            gateway_env: env,
            channel,
        }
    }

    /// A second gateway process with the same settings (same database,
    /// ledger-writer, corpus and policy), as another replica would be.
    pub async fn start_replica(&self) -> ServiceProcess {
        ServiceProcess::start("pecr-gateway", &self.gateway_env).await
    }

    /// Gateway log lines, collected until one contains `needle` (at most
    /// 10 s): the lines travel through a pipe, so the newest may lag.
    pub async fn logs_until(&mut self, needle: &str) -> String {
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            lines.extend(self.gateway.drain_stderr());
            if lines.iter().any(|line| line.contains(needle)) {
                return lines.join("\n");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line contains {needle:?}:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The running ledger-writer; panics after [`Mesh::stop_ledger`].
    pub fn ledger(&self) -> &ServiceProcess {
        self.ledger
            .as_ref()
            .unwrap_or_else(|| panic!("ledger-writer was stopped"))
    }

    /// Kills ledger-writer and waits for it to exit.
    pub async fn stop_ledger(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.stop().await;
        }
    }

    /// A URL on the gateway's HTTP port (REST edge and admin routes).
    pub fn url(&self, path: &str) -> String {
        self.gateway.http_url(path)
    }

    /// The gateway's `/metrics` text (no credentials).
    pub async fn metrics(&self) -> String {
        let answer = pecr_testkit::http_get(&self.url("/metrics")).await;
        assert_eq!(answer.status, 200, "/metrics: {}", answer.body);
        answer.body
    }

    pub fn client(&self) -> GatewayServiceClient<Channel> {
        GatewayServiceClient::new(self.channel.clone())
    }

    /// Every gateway log line so far.
    pub fn logs(&mut self) -> Vec<String> {
        self.gateway.drain_stderr()
    }

    /// Opens a session for `principal` with the default test budget.
    pub async fn session(&self, principal: &str) -> Session {
        self.session_with(principal, budget(10, 1_048_576), None)
            .await
            .unwrap_or_else(|status| panic!("session: {status:?}"))
    }

    pub async fn session_with(
        &self,
        principal: &str,
        budget: v1::Budget,
        as_of_time: Option<&str>,
    ) -> Result<Session, tonic::Status> {
        let request = call(
            principal,
            None,
            v1::CreateSessionRequest {
                budget: Some(budget),
                as_of_time: as_of_time.map(str::to_owned),
                calls: Vec::new(),
            },
        );
        let response = self.client().create_session(request).await?;
        let token = response
            .metadata()
            .get("x-pecr-session-token")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.into_inner();
        Ok(Session {
            principal: principal.to_owned(),
            token,
            session_id: body.session_id,
            trace_id: body.trace_id,
            policy_snapshot_id: body.policy_snapshot_id,
            client: self.client(),
        })
    }

    /// A session's (operator_calls_used, bytes_used) as the ledger stores them.
    pub async fn counters(&self, session_id: &str) -> (i64, i64) {
        let row = self
            .db
            .client()
            .query_one(
                "SELECT operator_calls_used, bytes_used FROM pecr_session_runtime WHERE session_id = $1",
                &[&session_id],
            )
            .await
            .unwrap_or_else(|err| panic!("runtime row: {err}"));
        (row.get(0), row.get(1))
    }

    /// Rows of `pecr_ledger_events` for a trace, as (event_type, payload).
    pub async fn events(&self, trace_id: &str) -> Vec<(String, Value)> {
        self.db
            .client()
            .query(
                "SELECT event_type, payload_json::text FROM pecr_ledger_events WHERE trace_id = $1 ORDER BY event_time, event_id",
                &[&trace_id],
            )
            .await
            .unwrap_or_else(|err| panic!("events: {err}"))
            .iter()
            .map(|row| (row.get(0), serde_json::from_str(&row.get::<_, String>(1)).unwrap_or(Value::Null)))
            .collect()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.corpus);
    }
}

pub fn budget(calls: u32, bytes: u64) -> v1::Budget {
    v1::Budget {
        max_operator_calls: calls,
        max_bytes: bytes,
        max_wallclock_ms: 1000,
        max_recursion_depth: 3,
        max_parallelism: None,
    }
}

/// A request carrying the caller's identity and, if given, a session token.
pub fn call<T>(principal: &str, token: Option<&str>, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    let metadata = request.metadata_mut();
    if let Ok(value) = principal.parse() {
        metadata.insert("x-pecr-principal-id", value);
    }
    if let Some(Ok(value)) = token.map(str::parse) {
        metadata.insert("x-pecr-session-token", value);
    }
    if let Ok(value) = "req-test-1".parse() {
        metadata.insert("x-pecr-request-id", value);
    }
    request
}

#[derive(Clone)]
pub struct Session {
    pub principal: String,
    pub token: String,
    pub session_id: String,
    pub trace_id: String,
    pub policy_snapshot_id: String,
    client: GatewayServiceClient<Channel>,
}

impl Session {
    /// Calls an operator; Ok is the parsed `result`.
    pub async fn op(&mut self, op_name: &str, params: Value) -> Result<Value, tonic::Status> {
        let request = call(
            &self.principal,
            Some(&self.token),
            v1::CallOperatorRequest {
                op_name: op_name.into(),
                session_id: self.session_id.clone(),
                params: params.to_string(),
            },
        );
        let response = self.client.call_operator(request).await?.into_inner();
        Ok(serde_json::from_str(&response.result).unwrap_or(Value::Null))
    }

    pub async fn finalize(
        &mut self,
        claims: Vec<v1::Claim>,
    ) -> Result<v1::FinalizeResponse, tonic::Status> {
        let request = call(
            &self.principal,
            Some(&self.token),
            v1::FinalizeRequest {
                session_id: self.session_id.clone(),
                response_text: "answer".into(),
                claim_map: Some(v1::ClaimMap {
                    claim_map_id: format!("cm-{}", self.session_id),
                    terminal_mode: v1::TerminalMode::InsufficientEvidence as i32,
                    claims,
                    coverage_threshold: 0.0,
                    coverage_observed: 0.0,
                    notes: None,
                }),
                run: None,
            },
        );
        Ok(self.client.finalize(request).await?.into_inner())
    }
}

pub fn claim(text: &str, status: v1::claim::Status, ids: &[&str]) -> v1::Claim {
    v1::Claim {
        claim_id: String::new(),
        claim_text: text.into(),
        status: status as i32,
        evidence_unit_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
    }
}

/// The PECR error of a failed call; panics if the status carries none.
pub fn error(status: &tonic::Status) -> PecrError {
    PecrError::from_status(status).unwrap_or_else(|| panic!("no PECR error in {status:?}"))
}

// Not every test binary waits for a condition.
#[allow(unused_imports)]
pub use pecr_testkit::eventually;

/// The exact `ErrorResponse` body the REST edge writes.
pub fn error_body(code: &str, message: &str, hint: &str, retryable: bool) -> String {
    format!(
        r#"{{"code":"{code}","message":{},"terminal_mode_hint":"{hint}","retryable":{retryable}}}"#,
        Value::String(message.to_owned())
    )
}

/// The test budget as REST JSON.
pub fn budget_json(calls: u32, bytes: u64) -> Value {
    serde_json::json!({
        "max_operator_calls": calls,
        "max_bytes": bytes,
        "max_wallclock_ms": 1000,
        "max_recursion_depth": 3,
    })
}

/// A session opened over REST.
pub struct RestSession {
    pub principal: String,
    pub token: String,
    pub session_id: String,
    pub trace_id: String,
    pub body: Value,
}

impl Mesh {
    /// POSTs JSON to the REST edge as `principal` (no header when empty),
    /// with a session token when given.
    pub async fn post(
        &self,
        path: &str,
        principal: &str,
        token: Option<&str>,
        body: &Value,
    ) -> pecr_testkit::HttpAnswer {
        let mut headers = vec![("x-pecr-request-id", "req-rest-1")];
        if !principal.is_empty() {
            headers.push(("x-pecr-principal-id", principal));
        }
        if let Some(token) = token {
            headers.push(("x-pecr-session-token", token));
        }
        pecr_testkit::http_post_json(&self.url(path), &headers, &body.to_string()).await
    }

    /// `POST /v1/sessions`; panics unless it answers 200.
    pub async fn rest_session(&self, principal: &str, budget: Value) -> RestSession {
        let answer = self
            .post(
                "/v1/sessions",
                principal,
                None,
                &serde_json::json!({ "budget": budget }),
            )
            .await;
        assert_eq!(answer.status, 200, "create session: {}", answer.body);
        let body = answer.json();
        RestSession {
            principal: principal.to_owned(),
            token: answer.header("x-pecr-session-token").unwrap_or_default(),
            session_id: body["session_id"].as_str().unwrap_or_default().to_owned(),
            trace_id: body["trace_id"].as_str().unwrap_or_default().to_owned(),
            body,
        }
    }

    /// `POST /v1/operators/{op_name}` in `session`.
    pub async fn rest_op(
        &self,
        session: &RestSession,
        op_name: &str,
        params: Value,
    ) -> pecr_testkit::HttpAnswer {
        let body = serde_json::json!({ "session_id": session.session_id, "params": params });
        self.post(
            &format!("/v1/operators/{op_name}"),
            &session.principal,
            Some(&session.token),
            &body,
        )
        .await
    }
}

/// Panics when any canary appears in `text`.
pub fn assert_no_canary(what: &str, text: &str) {
    for canary in CANARIES {
        assert!(!text.contains(canary), "{what} leaks {canary}");
    }
}

/// A batch outcome: the parsed result, or the error it carries.
#[allow(dead_code)]
pub fn outcome(outcome: &v1::OperatorOutcome) -> Result<Value, PecrError> {
    use v1::operator_outcome::Outcome;
    match &outcome.outcome {
        Some(Outcome::Ok(ok)) => Ok(serde_json::from_str(&ok.result).unwrap_or(Value::Null)),
        Some(Outcome::Error(detail)) => {
            Err(PecrError::from_detail(detail.clone())
                .unwrap_or_else(|| panic!("undecodable error")))
        }
        None => panic!("an outcome must be a result or an error"),
    }
}

/// Each outcome as success or (code, status), for comparing a batch at once.
#[allow(dead_code)]
pub fn codes(outcomes: &[Result<Value, PecrError>]) -> Vec<Result<(), (ErrorCode, u16)>> {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(_) => Ok(()),
            Err(error) => Err((error.code, error.http_status)),
        })
        .collect()
}

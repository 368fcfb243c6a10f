//! Builders for LedgerService requests whose hashes are computed with the
//! contract recipes, and a ledger-writer started on a fresh schema.

#![allow(dead_code)]

pub mod audit;

use pecr_contracts::hashing::{
    EvidenceIdentity, PolicySnapshotInputs, claim_id, evidence_unit_id, policy_snapshot_hash,
    text_content_hash,
};
use pecr_contracts::{hash_canonical_json, sha256_hex};
use pecr_errors::PecrError;
use pecr_proto::v1::{self, ledger_service_client::LedgerServiceClient};
use pecr_server::Credentialed;
use pecr_testkit::{ServiceProcess, TestDatabase, credentials};
use serde_json::{Value, json};
use tonic::transport::Channel;

pub const AS_OF: &str = "1970-01-01T00:00:00Z";
pub const BUNDLE_HASH: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const ATTRS_HASH: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// A ledger-writer client presenting one caller's service token.
pub type Client = LedgerServiceClient<Credentialed<Channel>>;

pub struct Ledger {
    pub db: TestDatabase,
    pub process: ServiceProcess,
    /// Calls as the gateway (sessions and events).
    pub client: Client,
    /// Calls as the controller (replays and evaluations).
    pub controller: Client,
    /// Calls as an auditor (reads events).
    pub auditor: Client,
}

/// A client of `process` presenting `token`.
pub async fn client_as(process: &ServiceProcess, token: &str) -> Client {
    let channel = Channel::from_shared(process.grpc_url())
        .unwrap_or_else(|err| panic!("ledger-writer URL: {err}"))
        .connect()
        .await
        .unwrap_or_else(|err| panic!("connect to ledger-writer: {err}"));
    LedgerServiceClient::new(pecr_server::credentialed(channel, Some(token)))
}

pub async fn start_ledger() -> Ledger {
    let db = TestDatabase::create().await;
    start_ledger_with_url(db, None).await
}

/// Starts ledger-writer on `db`, optionally through another database URL
/// (a proxy in front of the same server).
pub async fn start_ledger_with_url(db: TestDatabase, url: Option<String>) -> Ledger {
    let url = url.unwrap_or_else(|| db.url());
    start_ledger_with_env(db, &[("PECR_DB_URL", url)]).await
}

/// Starts ledger-writer on `db` with `env` added to the test settings.
pub async fn start_ledger_with_env(db: TestDatabase, env: &[(&str, String)]) -> Ledger {
    start_ledger_binary("pecr-ledger-writer", db, env).await
}

/// [`start_ledger_with_env`] with another build of ledger-writer (a binary
/// beside the test's own, as the benchmark compares builds).
pub async fn start_ledger_binary(binary: &str, db: TestDatabase, env: &[(&str, String)]) -> Ledger {
    let mut settings = vec![
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_LEDGER_WRITE_TIMEOUT_MS", "1500".to_owned()),
    ];
    settings.extend(credentials::ledger_writer_tokens());
    settings.extend(env.iter().cloned());
    let process = ServiceProcess::start(binary, &settings).await;
    let client = client_as(&process, credentials::LEDGER_GATEWAY_TOKEN).await;
    let controller = client_as(&process, credentials::LEDGER_CONTROLLER_TOKEN).await;
    let auditor = client_as(&process, credentials::LEDGER_AUDITOR_TOKEN).await;
    Ledger {
        db,
        process,
        client,
        controller,
        auditor,
    }
}

pub fn snapshot(principal: &str, tenant: &str) -> v1::PolicySnapshot {
    let roles: Vec<String> = Vec::new();
    let hash = policy_snapshot_hash(&PolicySnapshotInputs {
        principal_id: principal,
        tenant_id: tenant,
        principal_roles: &roles,
        principal_attrs_hash: ATTRS_HASH,
        policy_bundle_hash: BUNDLE_HASH,
        as_of_time: AS_OF,
    });
    v1::PolicySnapshot {
        policy_snapshot_hash: hash,
        principal_id: principal.into(),
        tenant_id: tenant.into(),
        principal_roles: roles,
        principal_attrs_hash: ATTRS_HASH.into(),
        policy_bundle_hash: BUNDLE_HASH.into(),
        as_of_time: AS_OF.into(),
        evaluated_at: AS_OF.into(),
    }
}

pub fn budget(calls: u32, bytes: u64, parallelism: Option<u32>) -> v1::Budget {
    v1::Budget {
        max_operator_calls: calls,
        max_bytes: bytes,
        max_wallclock_ms: 1000,
        max_recursion_depth: 1,
        max_parallelism: parallelism,
    }
}

pub fn session_request(session_id: &str, principal: &str) -> v1::RecordSessionRequest {
    v1::RecordSessionRequest {
        session_id: session_id.into(),
        trace_id: format!("trace-{session_id}"),
        policy_snapshot_id: format!("ps-{session_id}"),
        policy_snapshot: Some(snapshot(principal, "local")),
        budget: Some(budget(10, 1024, Some(4))),
        session_token_hash: sha256_hex(format!("token-{session_id}")),
        session_token_expires_at_epoch_ms: 4_102_444_800_000,
        first_calls: None,
    }
}

pub async fn record_session(
    ledger: &mut Ledger,
    session_id: &str,
    principal: &str,
) -> v1::SessionRecord {
    record_session_request(ledger, session_request(session_id, principal)).await
}

/// Records `request`, which must be accepted.
pub async fn record_session_request(
    ledger: &mut Ledger,
    request: v1::RecordSessionRequest,
) -> v1::SessionRecord {
    ledger
        .client
        .record_session(request)
        .await
        .unwrap_or_else(|status| panic!("record_session: {status:?}"))
        .into_inner()
        .session
        .unwrap_or_else(|| panic!("no session in response"))
}

/// The record `request` creates, before any call: what a caller knows of
/// a new session when it builds the session's first calls.
pub fn planned_session(request: &v1::RecordSessionRequest) -> v1::SessionRecord {
    let snapshot = request.policy_snapshot.clone().unwrap_or_default();
    v1::SessionRecord {
        session_id: request.session_id.clone(),
        trace_id: request.trace_id.clone(),
        principal_id: snapshot.principal_id,
        tenant_id: snapshot.tenant_id,
        policy_snapshot_id: request.policy_snapshot_id.clone(),
        policy_snapshot_hash: snapshot.policy_snapshot_hash,
        as_of_time: snapshot.as_of_time,
        budget: request.budget,
        session_token_hash: request.session_token_hash.clone(),
        session_token_expires_at_epoch_ms: request.session_token_expires_at_epoch_ms,
        principal_attrs_hash: snapshot.principal_attrs_hash,
        ..Default::default()
    }
}

/// `request` carrying its session's first call, which emits one text unit
/// per entry of `texts` (`public/<index>.txt`).
pub fn with_first_calls(
    mut request: v1::RecordSessionRequest,
    texts: &[&str],
) -> v1::RecordSessionRequest {
    let session = planned_session(&request);
    let units = texts
        .iter()
        .enumerate()
        .map(|(index, text)| text_evidence(&session, &format!("public/{index}.txt"), text))
        .collect();
    request.first_calls = Some(operator_call(&session, units));
    request
}

/// A whole-text evidence unit of `session`, ids computed by the recipe.
pub fn text_evidence(session: &v1::SessionRecord, object_id: &str, text: &str) -> v1::EvidenceUnit {
    let version_id = sha256_hex(text);
    let content_hash = text_content_hash(text);
    let span = json!({"type": "text_span", "start_byte": 0, "end_byte": text.len(), "line_start": 1, "line_end": 1});
    let id = evidence_unit_id(&EvidenceIdentity {
        source_system: "fs_corpus",
        object_id,
        version_id: &version_id,
        span_or_row_spec: &span,
        content_hash: &content_hash,
        as_of_time: &session.as_of_time,
        policy_snapshot_hash: &session.policy_snapshot_hash,
        transform_chain: &[],
    });
    v1::EvidenceUnit {
        source_system: "fs_corpus".into(),
        object_id: object_id.into(),
        version_id,
        span_or_row_spec: span.to_string(),
        content_type: "text/plain".into(),
        content: Some(Value::String(text.into()).to_string()),
        content_hash,
        retrieved_at: session.as_of_time.clone(),
        as_of_time: session.as_of_time.clone(),
        policy_snapshot_id: session.policy_snapshot_id.clone(),
        policy_snapshot_hash: session.policy_snapshot_hash.clone(),
        transform_chain: vec![],
        evidence_unit_id: id,
    }
}

pub fn event(session: &v1::SessionRecord, event_type: &str, payload: Value) -> v1::NewLedgerEvent {
    v1::NewLedgerEvent {
        trace_id: session.trace_id.clone(),
        session_id: session.session_id.clone(),
        event_type: event_type.into(),
        principal_id: session.principal_id.clone(),
        policy_snapshot_id: session.policy_snapshot_id.clone(),
        payload_hash: Some(hash_canonical_json(&payload)),
        payload: payload.to_string(),
    }
}

pub fn operator_call(
    session: &v1::SessionRecord,
    units: Vec<v1::EvidenceUnit>,
) -> v1::RecordOperatorCallRequest {
    let events = units
        .iter()
        .map(|unit| {
            event(
                session,
                "EVIDENCE_EMITTED",
                json!({"evidence_unit_id": unit.evidence_unit_id, "op_name": "fetch_span", "request_id": "req1"}),
            )
        })
        .chain([event(session, "OPERATOR_CALL", json!({"op_name": "fetch_span", "outcome": "success", "request_id": "req1"}))])
        .collect();
    v1::RecordOperatorCallRequest {
        session_id: session.session_id.clone(),
        trace_id: session.trace_id.clone(),
        evidence_units: units,
        events,
        expected_operator_calls_used: session.operator_calls_used,
        expected_bytes_used: session.bytes_used,
        operator_calls_used: session.operator_calls_used + 1,
        bytes_used: session.bytes_used + 100,
        store_content: false,
    }
}

pub fn claim(text: &str, status: v1::claim::Status, ids: &[String]) -> v1::Claim {
    v1::Claim {
        claim_id: claim_id(text, status.as_str_name(), ids),
        claim_text: text.into(),
        status: status as i32,
        evidence_unit_ids: ids.to_vec(),
    }
}

pub fn finalize_request(
    session: &v1::SessionRecord,
    claim_map_id: &str,
    claims: Vec<v1::Claim>,
) -> v1::RecordFinalizeRequest {
    let mode = v1::TerminalMode::Supported;
    v1::RecordFinalizeRequest {
        session_id: session.session_id.clone(),
        claim_map: Some(v1::ClaimMap {
            claim_map_id: claim_map_id.into(),
            terminal_mode: mode as i32,
            claims,
            coverage_threshold: 0.95,
            coverage_observed: 1.0,
            notes: None,
        }),
        finalize_event: Some(event(
            session,
            "FINALIZE_RESULT",
            json!({
                "terminal_mode": mode.as_str_name(),
                "claim_map_id": claim_map_id,
                "coverage_threshold": 0.95,
                "coverage_observed": 1.0,
                "budget_counters": {"operator_calls_used": 1, "bytes_used": 100, "max_operator_calls": 10, "max_bytes": 1024},
                "request_id": "req-final",
            }),
        )),
        ..Default::default()
    }
}

/// The PECR error a status carries; panics if it carries none.
pub fn pecr_error(status: &tonic::Status) -> PecrError {
    PecrError::from_status(status)
        .unwrap_or_else(|| panic!("status without a PECR error detail: {status:?}"))
}

pub async fn counts(db: &TestDatabase) -> [i64; 6] {
    [
        db.count("pecr_policy_snapshots").await,
        db.count("pecr_sessions").await,
        db.count("pecr_session_runtime").await,
        db.count("pecr_ledger_events").await,
        db.count("pecr_evidence_units").await,
        db.count("pecr_claim_maps").await,
    ]
}

/// A replay bundle of `run_id` owned by `principal_hash`, hash filled in.
pub fn bundle(run_id: &str, principal_hash: &str, recorded_at: u64) -> Value {
    let mut bundle = json!({
        "metadata": {
            "schema_version": 1, "run_id": run_id, "trace_id": "t", "request_id": "r",
            "principal_id_hash": principal_hash, "engine_mode": "baseline",
            "recorded_at_unix_ms": recorded_at, "terminal_mode": "INSUFFICIENT_EVIDENCE",
            "quality_score": 61.5, "bundle_hash": ""
        },
        "query": "q",
        "budget": {"max_operator_calls": 10, "max_bytes": 1024, "max_wallclock_ms": 1000, "max_recursion_depth": 3, "max_parallelism": null},
        "session_id": "s", "policy_snapshot_id": "p", "loop_terminal_mode": "INSUFFICIENT_EVIDENCE",
        "response_text": "r",
        "claim_map": {"claim_map_id": "c", "terminal_mode": "INSUFFICIENT_EVIDENCE", "claims": [], "coverage_threshold": 0.95, "coverage_observed": 0.0},
        "operator_calls_used": 0, "bytes_used": 0, "depth_used": 0, "evidence_ref_count": 0, "evidence_unit_ids": []
    });
    let hash = pecr_contracts::hashing::bundle_hash(&bundle).expect("bundle hash");
    bundle["metadata"]["bundle_hash"] = Value::String(hash);
    bundle
}

/// A replay bundle of `session`'s run: its principal's hash, its session id.
pub fn session_bundle(run_id: &str, session: &v1::SessionRecord) -> Value {
    let principal_hash = pecr_contracts::hashing::principal_id_hash(&session.principal_id);
    let mut bundle = bundle(run_id, &principal_hash, 1_000);
    bundle["session_id"] = Value::String(session.session_id.clone());
    rehash(bundle)
}

/// `bundle` with its `metadata.bundle_hash` recomputed.
pub fn rehash(mut bundle: Value) -> Value {
    let hash = pecr_contracts::hashing::bundle_hash(&bundle).expect("bundle hash");
    bundle["metadata"]["bundle_hash"] = Value::String(hash);
    bundle
}

/// A series of ledger-writer's `/metrics` (name and labels as printed), 0 when absent.
pub async fn metric(ledger: &Ledger, series: &str) -> f64 {
    let body = pecr_testkit::http_get(&ledger.process.http_url("/metrics"))
        .await
        .body;
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Events of a session, by type, in the order the ledger lists them.
pub async fn event_types(db: &TestDatabase, session_id: &str) -> Vec<String> {
    db.client()
        .query(
            "SELECT event_type FROM pecr_ledger_events WHERE session_id = $1 ORDER BY event_time, event_id",
            &[&session_id],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

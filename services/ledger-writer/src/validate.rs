//! Request validation: every LedgerService input is checked and turned into
//! a write plan before any SQL runs, so bad input never writes anything.

use pecr_contracts::hashing::{
    EvidenceIdentity, PolicySnapshotInputs, TransformStep, bundle_hash, claim_id, evidence_unit_id,
    policy_snapshot_hash, text_content_hash,
};
use pecr_contracts::time::validate_as_of_time;
use pecr_contracts::{Budget, canonical_json, hash_canonical_json, ids, is_sha256_hex};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::{Map, Value};

use crate::convert;

pub mod versions;

/// Event types the ledger accepts.
pub const EVENT_TYPES: &[&str] = &[
    "POLICY_DECISION",
    "OPERATOR_CALL",
    "EVIDENCE_EMITTED",
    "BUDGET_VIOLATION",
    "FINALIZE_RESULT",
    "LEAK_DETECTED",
];

const MAX_ID_LEN: usize = 256;
const MAX_EVENTS_PER_CALL: usize = 1024;
const MAX_EVIDENCE_PER_CALL: usize = 10_000;

fn invalid(message: impl Into<String>) -> PecrError {
    PecrError::invalid_params(message)
}

/// A non-empty identifier of at most 256 visible characters.
pub fn identifier(field: &str, value: &str) -> PecrResult<String> {
    if value.is_empty()
        || value.len() > MAX_ID_LEN
        || value.chars().any(char::is_control)
        || value.trim() != value
    {
        return Err(invalid(format!(
            "{field} must be a non-empty identifier of at most {MAX_ID_LEN} characters without spaces at either end"
        )));
    }
    Ok(value.to_owned())
}

fn hex64(field: &str, value: &str) -> PecrResult<String> {
    if is_sha256_hex(value) {
        Ok(value.to_owned())
    } else {
        Err(invalid(format!("{field} must be sha256 hex")))
    }
}

fn as_of_time(field: &str, value: &str) -> PecrResult<String> {
    validate_as_of_time(value)
        .map(|()| value.to_owned())
        .map_err(|err| invalid(format!("{field}: {err}")))
}

fn json_text(field: &str, text: &str) -> PecrResult<Value> {
    serde_json::from_str(text).map_err(|_| invalid(format!("{field} must be JSON text")))
}

fn json_object(field: &str, text: &str) -> PecrResult<Map<String, Value>> {
    match json_text(field, text)? {
        Value::Object(map) => Ok(map),
        _ => Err(invalid(format!("{field} must be a JSON object"))),
    }
}

fn to_i64(field: &str, value: u64) -> PecrResult<i64> {
    i64::try_from(value).map_err(|_| invalid(format!("{field} is too large")))
}

fn budget(budget: Option<&v1::Budget>) -> PecrResult<Budget> {
    let budget = Budget::from(budget.ok_or_else(|| invalid("budget is required"))?);
    budget
        .validate()
        .map_err(|reason| invalid(format!("invalid budget: {reason}")))?;
    Ok(budget)
}

/// A session, its snapshot and runtime row, ready to insert.
pub struct NewSession {
    pub session_id: String,
    pub trace_id: String,
    pub policy_snapshot_id: String,
    pub policy_snapshot_hash: String,
    pub principal_id: String,
    pub tenant_id: String,
    pub as_of_time: String,
    pub policy_bundle_hash: String,
    pub snapshot_json: Value,
    pub principal_attrs_hash: String,
    pub budget: Budget,
    pub session_token_hash: String,
    pub session_token_expires_at_epoch_ms: i64,
    /// The session's first operator calls, recorded in the same write.
    pub first_calls: Option<Box<OperatorCallWrite>>,
}

/// A refused attempt to use a session.
pub struct NewRefusal {
    pub session_id: String,
    pub principal_id: String,
    pub tenant_id: String,
    pub reason: String,
    pub action: String,
    pub request_id: String,
}

/// Why a session refused a caller.
pub const REFUSAL_REASONS: &[&str] = &[
    "principal_mismatch",
    "tenant_mismatch",
    "attributes_mismatch",
    "invalid_session_token",
    "expired_session_token",
];

pub fn access_refusal(request: v1::RecordAccessRefusalRequest) -> PecrResult<NewRefusal> {
    if !REFUSAL_REASONS.contains(&request.reason.as_str()) {
        return Err(invalid(format!(
            "reason must be one of {}",
            REFUSAL_REASONS.join(", ")
        )));
    }
    Ok(NewRefusal {
        session_id: identifier("session_id", &request.session_id)?,
        principal_id: identifier("principal_id", &request.principal_id)?,
        tenant_id: identifier("tenant_id", &request.tenant_id)?,
        reason: request.reason,
        action: identifier("action", &request.action)?,
        request_id: identifier("request_id", &request.request_id)?,
    })
}

pub fn record_session(request: v1::RecordSessionRequest) -> PecrResult<NewSession> {
    let snapshot = request
        .policy_snapshot
        .ok_or_else(|| invalid("policy_snapshot is required"))?;
    let principal_id = identifier("policy_snapshot.principal_id", &snapshot.principal_id)?;
    let tenant_id = identifier("policy_snapshot.tenant_id", &snapshot.tenant_id)?;
    let attrs_hash = hex64(
        "policy_snapshot.principal_attrs_hash",
        &snapshot.principal_attrs_hash,
    )?;
    let bundle_hash = hex64(
        "policy_snapshot.policy_bundle_hash",
        &snapshot.policy_bundle_hash,
    )?;
    let as_of = as_of_time("policy_snapshot.as_of_time", &snapshot.as_of_time)?;
    if snapshot.evaluated_at.is_empty() {
        return Err(invalid("policy_snapshot.evaluated_at is required"));
    }
    if snapshot.principal_roles.iter().any(|role| role.is_empty()) {
        return Err(invalid(
            "policy_snapshot.principal_roles must not contain empty roles",
        ));
    }
    let expected_hash = policy_snapshot_hash(&PolicySnapshotInputs {
        principal_id: &principal_id,
        tenant_id: &tenant_id,
        principal_roles: &snapshot.principal_roles,
        principal_attrs_hash: &attrs_hash,
        policy_bundle_hash: &bundle_hash,
        as_of_time: &as_of,
    });
    if snapshot.policy_snapshot_hash != expected_hash {
        return Err(invalid(
            "policy_snapshot.policy_snapshot_hash does not match the snapshot inputs",
        ));
    }
    let expires = to_i64(
        "session_token_expires_at_epoch_ms",
        request.session_token_expires_at_epoch_ms,
    )?;
    if expires == 0 {
        return Err(invalid("session_token_expires_at_epoch_ms is required"));
    }
    let session_id = identifier("session_id", &request.session_id)?;
    let trace_id = identifier("trace_id", &request.trace_id)?;
    let first_calls = request
        .first_calls
        .map(|calls| first_calls(&session_id, &trace_id, calls).map(Box::new))
        .transpose()?;
    Ok(NewSession {
        session_id,
        trace_id,
        policy_snapshot_id: identifier("policy_snapshot_id", &request.policy_snapshot_id)?,
        snapshot_json: convert::snapshot_to_json(&snapshot),
        principal_attrs_hash: attrs_hash,
        policy_snapshot_hash: expected_hash,
        principal_id,
        tenant_id,
        as_of_time: as_of,
        policy_bundle_hash: bundle_hash,
        budget: budget(request.budget.as_ref())?,
        session_token_hash: hex64("session_token_hash", &request.session_token_hash)?,
        session_token_expires_at_epoch_ms: expires,
        first_calls,
    })
}

/// A new session's `first_calls`: checked as RecordOperatorCall checks a
/// call, and they must be the new session's, made from zero counters.
fn first_calls(
    session_id: &str,
    trace_id: &str,
    request: v1::RecordOperatorCallRequest,
) -> PecrResult<OperatorCallWrite> {
    if request.session_id != session_id || request.trace_id != trace_id {
        return Err(invalid(
            "first_calls.session_id and first_calls.trace_id must be the session's",
        ));
    }
    if request.expected_operator_calls_used != 0 || request.expected_bytes_used != 0 {
        return Err(invalid(
            "first_calls.expected_operator_calls_used and first_calls.expected_bytes_used must be 0",
        ));
    }
    // Field names in the call's own messages are relative to first_calls.
    operator_call(request).map_err(|mut err| {
        err.message = format!("first_calls: {}", err.message);
        err
    })
}

/// An event ready to insert, with its payload hash computed.
pub struct NewEvent {
    pub trace_id: String,
    pub session_id: String,
    pub event_type: String,
    pub principal_id: String,
    pub policy_snapshot_id: String,
    pub payload: Value,
    pub payload_hash: String,
}

pub fn event(field: &str, event: Option<v1::NewLedgerEvent>) -> PecrResult<NewEvent> {
    let event = event.ok_or_else(|| invalid(format!("{field} is required")))?;
    if !EVENT_TYPES.contains(&event.event_type.as_str()) {
        return Err(invalid(format!(
            "{field}.event_type must be one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let payload = Value::Object(json_object(&format!("{field}.payload"), &event.payload)?);
    let payload_hash = hash_canonical_json(&payload);
    if let Some(claimed) = &event.payload_hash
        && claimed != &payload_hash
    {
        return Err(invalid(format!(
            "{field}.payload_hash does not match the canonical hash of the payload"
        )));
    }
    Ok(NewEvent {
        trace_id: identifier(&format!("{field}.trace_id"), &event.trace_id)?,
        session_id: identifier(&format!("{field}.session_id"), &event.session_id)?,
        event_type: event.event_type,
        principal_id: identifier(&format!("{field}.principal_id"), &event.principal_id)?,
        policy_snapshot_id: identifier(
            &format!("{field}.policy_snapshot_id"),
            &event.policy_snapshot_id,
        )?,
        payload,
        payload_hash,
    })
}

/// An evidence unit whose id and hashes were recomputed and matched.
pub struct NewEvidence {
    pub evidence_unit_id: String,
    pub source_system: String,
    pub object_id: String,
    pub version_id: String,
    pub span_or_row_spec: Value,
    pub content_type: String,
    pub content_hash: String,
    pub content: Option<Value>,
    pub as_of_time: String,
    pub retrieved_at: String,
    pub policy_snapshot_id: String,
    pub policy_snapshot_hash: String,
    pub transform_chain: Value,
}

pub fn evidence(field: &str, unit: v1::EvidenceUnit) -> PecrResult<NewEvidence> {
    let f = |name: &str| format!("{field}.{name}");
    let source_system = identifier(&f("source_system"), &unit.source_system)?;
    if unit.object_id.is_empty() || unit.version_id.is_empty() {
        return Err(invalid(format!(
            "{field}.object_id and version_id are required"
        )));
    }
    let span = json_text(&f("span_or_row_spec"), &unit.span_or_row_spec)?;
    if !matches!(
        unit.content_type.as_str(),
        "text/plain" | "application/json"
    ) {
        return Err(invalid(format!(
            "{field}.content_type must be text/plain or application/json"
        )));
    }
    let content_hash = hex64(&f("content_hash"), &unit.content_hash)?;
    let content = unit
        .content
        .as_deref()
        .map(|text| json_text(&f("content"), text))
        .transpose()?
        .filter(|value| !value.is_null());
    if let Some(content) = &content {
        let computed = match (unit.content_type.as_str(), content) {
            ("text/plain", Value::String(text)) => text_content_hash(text),
            ("text/plain", _) => {
                return Err(invalid(format!(
                    "{field}.content must be a JSON string for text/plain"
                )));
            }
            _ => hash_canonical_json(content),
        };
        if computed != content_hash {
            return Err(invalid(format!(
                "{field}.content_hash does not match the content"
            )));
        }
    }
    let mut chain = Vec::with_capacity(unit.transform_chain.len());
    for (index, step) in unit.transform_chain.into_iter().enumerate() {
        let step_field = format!("{field}.transform_chain[{index}]");
        if step.transform_type.is_empty() {
            return Err(invalid(format!("{step_field}.transform_type is required")));
        }
        let params = step
            .params
            .as_deref()
            .map(|text| json_text(&format!("{step_field}.params"), text))
            .transpose()?;
        let transform_hash = hex64(
            &format!("{step_field}.transform_hash"),
            &step.transform_hash,
        )?;
        if let Some(params) = &params
            && hash_canonical_json(params) != transform_hash
        {
            return Err(invalid(format!(
                "{step_field}.transform_hash does not match its params"
            )));
        }
        chain.push(TransformStep {
            transform_type: step.transform_type,
            transform_hash,
            params,
        });
    }
    let as_of = as_of_time(&f("as_of_time"), &unit.as_of_time)?;
    let snapshot_hash = hex64(&f("policy_snapshot_hash"), &unit.policy_snapshot_hash)?;
    let expected_id = evidence_unit_id(&EvidenceIdentity {
        source_system: &source_system,
        object_id: &unit.object_id,
        version_id: &unit.version_id,
        span_or_row_spec: &span,
        content_hash: &content_hash,
        as_of_time: &as_of,
        policy_snapshot_hash: &snapshot_hash,
        transform_chain: &chain,
    });
    if unit.evidence_unit_id != expected_id {
        return Err(invalid(format!(
            "{field}.evidence_unit_id does not match the evidence identity"
        )));
    }
    Ok(NewEvidence {
        evidence_unit_id: expected_id,
        source_system,
        object_id: unit.object_id,
        version_id: unit.version_id,
        span_or_row_spec: span,
        content_type: unit.content_type,
        content_hash,
        content,
        retrieved_at: as_of_time(&f("retrieved_at"), &unit.retrieved_at)?,
        as_of_time: as_of,
        policy_snapshot_id: identifier(&f("policy_snapshot_id"), &unit.policy_snapshot_id)?,
        policy_snapshot_hash: snapshot_hash,
        transform_chain: Value::Array(chain.iter().map(TransformStep::to_json).collect()),
    })
}

/// The `events` of a write, each checked and belonging to `session_id`.
fn session_events(session_id: &str, events: Vec<v1::NewLedgerEvent>) -> PecrResult<Vec<NewEvent>> {
    if events.len() > MAX_EVENTS_PER_CALL {
        return Err(invalid("too many events in one call"));
    }
    let events = events
        .into_iter()
        .enumerate()
        .map(|(index, new)| event(&format!("events[{index}]"), Some(new)))
        .collect::<PecrResult<Vec<_>>>()?;
    if events.iter().any(|event| event.session_id != session_id) {
        return Err(invalid("every event must belong to session_id"));
    }
    Ok(events)
}

/// Everything one executed operator call writes.
pub struct OperatorCallWrite {
    pub session_id: String,
    pub trace_id: String,
    pub evidence: Vec<NewEvidence>,
    pub events: Vec<NewEvent>,
    pub expected_operator_calls_used: i64,
    pub expected_bytes_used: i64,
    pub operator_calls_used: i64,
    pub bytes_used: i64,
    pub store_content: bool,
}

pub fn operator_call(request: v1::RecordOperatorCallRequest) -> PecrResult<OperatorCallWrite> {
    let session_id = identifier("session_id", &request.session_id)?;
    if request.evidence_units.len() > MAX_EVIDENCE_PER_CALL
        || request.events.len() > MAX_EVENTS_PER_CALL
    {
        return Err(invalid("too many evidence units or events in one call"));
    }
    if request.operator_calls_used < request.expected_operator_calls_used
        || request.bytes_used < request.expected_bytes_used
    {
        return Err(invalid("session counters can only grow"));
    }
    let evidence = request
        .evidence_units
        .into_iter()
        .enumerate()
        .map(|(index, unit)| evidence(&format!("evidence_units[{index}]"), unit))
        .collect::<PecrResult<Vec<_>>>()?;
    let events = session_events(&session_id, request.events)?;
    Ok(OperatorCallWrite {
        trace_id: identifier("trace_id", &request.trace_id)?,
        session_id,
        evidence,
        events,
        expected_operator_calls_used: to_i64(
            "expected_operator_calls_used",
            request.expected_operator_calls_used,
        )?,
        expected_bytes_used: to_i64("expected_bytes_used", request.expected_bytes_used)?,
        operator_calls_used: to_i64("operator_calls_used", request.operator_calls_used)?,
        bytes_used: to_i64("bytes_used", request.bytes_used)?,
        store_content: request.store_content,
    })
}

/// A gated claim map, the events before it, its FINALIZE_RESULT event and
/// optionally the run's replay bundle.
pub struct FinalizeWrite {
    pub session_id: String,
    pub claim_map_id: String,
    pub terminal_mode: &'static str,
    pub coverage_threshold: f64,
    pub coverage_observed: f64,
    pub claim_map_json: Value,
    pub cited_evidence_ids: Vec<String>,
    /// Recorded just before `event`.
    pub events: Vec<NewEvent>,
    pub event: NewEvent,
    /// The counters the caller read, when it asks for the compare-and-set.
    pub expected_operator_calls_used: Option<i64>,
    pub expected_bytes_used: Option<i64>,
    /// Its owner is checked against the session when the session is locked.
    pub replay: Option<NewReplay>,
}

pub fn finalize(request: v1::RecordFinalizeRequest) -> PecrResult<FinalizeWrite> {
    let session_id = identifier("session_id", &request.session_id)?;
    let claim_map = request
        .claim_map
        .ok_or_else(|| invalid("claim_map is required"))?;
    let claim_map_id = identifier("claim_map.claim_map_id", &claim_map.claim_map_id)?;
    let terminal_mode = match v1::TerminalMode::try_from(claim_map.terminal_mode) {
        Ok(v1::TerminalMode::Unspecified) | Err(_) => {
            return Err(invalid("claim_map.terminal_mode is required"));
        }
        Ok(mode) => mode.as_str_name(),
    };
    for (name, value) in [
        ("coverage_threshold", claim_map.coverage_threshold),
        ("coverage_observed", claim_map.coverage_observed),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(invalid(format!("claim_map.{name} must be within 0..=1")));
        }
    }
    let mut cited = Vec::new();
    for (index, claim) in claim_map.claims.iter().enumerate() {
        let field = format!("claim_map.claims[{index}]");
        let status = match v1::claim::Status::try_from(claim.status) {
            Ok(v1::claim::Status::Unspecified) | Err(_) => {
                return Err(invalid(format!("{field}.status is required")));
            }
            Ok(status) => status.as_str_name(),
        };
        if claim.claim_text.trim().is_empty() {
            return Err(invalid(format!("{field}.claim_text must not be blank")));
        }
        let mut sorted = claim.evidence_unit_ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted != claim.evidence_unit_ids || sorted.iter().any(|id| !is_sha256_hex(id)) {
            return Err(invalid(format!(
                "{field}.evidence_unit_ids must be sorted, unique sha256 hex ids"
            )));
        }
        if claim.claim_id != claim_id(&claim.claim_text, status, &sorted) {
            return Err(invalid(format!(
                "{field}.claim_id does not match the claim"
            )));
        }
        cited.extend(sorted);
    }
    cited.sort_unstable();
    cited.dedup();
    let event = event("finalize_event", request.finalize_event)?;
    if event.event_type != "FINALIZE_RESULT" || event.session_id != session_id {
        return Err(invalid(
            "finalize_event must be the session's FINALIZE_RESULT event",
        ));
    }
    if event.payload.get("terminal_mode").and_then(Value::as_str) != Some(terminal_mode)
        || event.payload.get("claim_map_id").and_then(Value::as_str) != Some(claim_map_id.as_str())
    {
        return Err(invalid(
            "finalize_event payload must name the claim map's id and terminal mode",
        ));
    }
    let events = session_events(&session_id, request.events)?;
    let expected = |field: &str, value: Option<u64>| value.map(|v| to_i64(field, v)).transpose();
    let replay = request
        .replay
        .map(|replay| finalize_replay(&session_id, replay))
        .transpose()?;
    Ok(FinalizeWrite {
        claim_map_json: convert::claim_map_to_json(&claim_map),
        claim_map_id,
        terminal_mode,
        coverage_threshold: claim_map.coverage_threshold,
        coverage_observed: claim_map.coverage_observed,
        cited_evidence_ids: cited,
        events,
        event,
        expected_operator_calls_used: expected(
            "expected_operator_calls_used",
            request.expected_operator_calls_used,
        )?,
        expected_bytes_used: expected("expected_bytes_used", request.expected_bytes_used)?,
        replay,
        session_id,
    })
}

/// The replay a finalize carries: checked as StoreReplayBundle checks it,
/// and it must be the finalized session's run.
fn finalize_replay(
    session_id: &str,
    request: v1::StoreReplayBundleRequest,
) -> PecrResult<NewReplay> {
    let replay = replay_at("replay.", request)?;
    if replay.session_id.as_deref() != Some(session_id) {
        return Err(invalid(
            "replay.bundle.session_id must be the finalized session",
        ));
    }
    Ok(replay)
}

/// A replay bundle whose hash was checked, stored as canonical text.
pub struct NewReplay {
    pub tenant_id: String,
    pub run_id: String,
    pub principal_id_hash: String,
    pub engine_mode: String,
    pub recorded_at_unix_ms: i64,
    pub terminal_mode: String,
    pub quality_score: f64,
    pub bundle_hash: String,
    pub canonical_text: String,
    /// The bundle's `session_id`, when it names one.
    pub session_id: Option<String>,
}

pub fn engine_mode(field: &str, value: &str) -> PecrResult<String> {
    match value {
        "baseline" | "rlm" => Ok(value.to_owned()),
        _ => Err(invalid(format!("{field} must be baseline or rlm"))),
    }
}

pub fn store_id(field: &str, value: &str) -> PecrResult<String> {
    if ids::is_safe_store_id(value) {
        Ok(value.to_owned())
    } else {
        Err(invalid(format!(
            "{field} must be 1-256 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

pub fn replay(request: v1::StoreReplayBundleRequest) -> PecrResult<NewReplay> {
    replay_at("", request)
}

/// [`replay`] with its field names under `prefix` (`replay.` inside a finalize).
fn replay_at(prefix: &str, request: v1::StoreReplayBundleRequest) -> PecrResult<NewReplay> {
    let field = |name: &str| format!("{prefix}{name}");
    let tenant_id = identifier(&field("tenant_id"), &request.tenant_id)?;
    let bundle = Value::Object(json_object(&field("bundle"), &request.bundle)?);
    let metadata = bundle
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("{prefix}bundle.metadata must be an object")))?;
    let text = |name: &str| {
        metadata
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if metadata.get("schema_version").and_then(Value::as_u64) != Some(1) {
        return Err(invalid(format!(
            "{prefix}bundle.metadata.schema_version must be 1"
        )));
    }
    let recorded_at = metadata
        .get("recorded_at_unix_ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            invalid(format!(
                "{prefix}bundle.metadata.recorded_at_unix_ms must be a non-negative integer"
            ))
        })?;
    let quality_score = metadata
        .get("quality_score")
        .and_then(Value::as_f64)
        .filter(|score| (0.0..=100.0).contains(score))
        .ok_or_else(|| {
            invalid(format!(
                "{prefix}bundle.metadata.quality_score must be within 0..=100"
            ))
        })?;
    let terminal_mode = text("terminal_mode");
    if v1::TerminalMode::from_str_name(terminal_mode)
        .is_none_or(|mode| mode == v1::TerminalMode::Unspecified)
    {
        return Err(invalid(format!(
            "{prefix}bundle.metadata.terminal_mode must be a terminal mode"
        )));
    }
    let claimed_hash = hex64(&field("bundle.metadata.bundle_hash"), text("bundle_hash"))?;
    if bundle_hash(&bundle).as_deref() != Some(claimed_hash.as_str()) {
        return Err(invalid(format!(
            "{prefix}bundle.metadata.bundle_hash does not match the bundle"
        )));
    }
    Ok(NewReplay {
        tenant_id,
        run_id: store_id(&field("bundle.metadata.run_id"), text("run_id"))?,
        principal_id_hash: hex64(
            &field("bundle.metadata.principal_id_hash"),
            text("principal_id_hash"),
        )?,
        engine_mode: engine_mode(&field("bundle.metadata.engine_mode"), text("engine_mode"))?,
        recorded_at_unix_ms: to_i64(&field("bundle.metadata.recorded_at_unix_ms"), recorded_at)?,
        terminal_mode: terminal_mode.to_owned(),
        quality_score,
        bundle_hash: claimed_hash,
        session_id: bundle
            .get("session_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        canonical_text: canonical_json(&bundle),
    })
}

/// The owner of a stored replay or evaluation.
pub struct PrincipalKey {
    pub tenant_id: String,
    pub principal_id_hash: String,
}

pub fn principal_key(tenant_id: &str, principal_id_hash: &str) -> PecrResult<PrincipalKey> {
    Ok(PrincipalKey {
        tenant_id: identifier("tenant_id", tenant_id)?,
        principal_id_hash: hex64("principal_id_hash", principal_id_hash)?,
    })
}

pub struct NewEvaluation {
    pub tenant_id: String,
    pub evaluation_id: String,
    pub principal_id_hash: String,
    pub created_at_unix_ms: i64,
    pub canonical_text: String,
}

pub fn evaluation(request: v1::StoreEvaluationRequest) -> PecrResult<NewEvaluation> {
    let tenant_id = identifier("tenant_id", &request.tenant_id)?;
    let evaluation = Value::Object(json_object("evaluation", &request.evaluation)?);
    let text = |name: &str| {
        evaluation
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if text("evaluation_name").trim().is_empty() {
        return Err(invalid("evaluation.evaluation_name must not be blank"));
    }
    let created_at = evaluation
        .get("created_at_unix_ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("evaluation.created_at_unix_ms must be a non-negative integer"))?;
    Ok(NewEvaluation {
        tenant_id,
        evaluation_id: store_id("evaluation.evaluation_id", text("evaluation_id"))?,
        principal_id_hash: hex64("evaluation.principal_id_hash", text("principal_id_hash"))?,
        created_at_unix_ms: to_i64("evaluation.created_at_unix_ms", created_at)?,
        canonical_text: canonical_json(&evaluation),
    })
}

/// Event filters for ListEvents.
pub struct EventQuery {
    pub session_id: Option<String>,
    pub trace_id: Option<String>,
    pub event_type: Option<String>,
    pub limit: i64,
}

pub fn list_events(request: v1::ListEventsRequest) -> PecrResult<EventQuery> {
    if request.session_id.is_none() && request.trace_id.is_none() {
        return Err(invalid("session_id or trace_id is required"));
    }
    let limit = request.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(invalid("limit must be within 1..=10000"));
    }
    Ok(EventQuery {
        session_id: request
            .session_id
            .map(|id| identifier("session_id", &id))
            .transpose()?,
        trace_id: request
            .trace_id
            .map(|id| identifier("trace_id", &id))
            .transpose()?,
        event_type: request.event_type,
        limit: i64::from(limit),
    })
}

/// Most run ids one `LoadReplayBundles` call may name (the list cap).
pub const MAX_BATCH_RUN_IDS: usize = 10_000;

/// The distinct safe ids of a batch load, sorted. Unsafe ids can name no
/// stored bundle, so they are dropped rather than refused (as a single
/// load answers them with not found).
pub fn batch_run_ids(run_ids: Vec<String>) -> PecrResult<Vec<String>> {
    if run_ids.len() > MAX_BATCH_RUN_IDS {
        return Err(invalid(format!(
            "run_ids must hold at most {MAX_BATCH_RUN_IDS} ids"
        )));
    }
    let mut safe: Vec<String> = run_ids
        .into_iter()
        .filter(|id| ids::is_safe_store_id(id))
        .collect();
    safe.sort_unstable();
    safe.dedup();
    Ok(safe)
}

pub fn list_limit(limit: u32) -> PecrResult<i64> {
    if (1..=10_000).contains(&limit) {
        Ok(i64::from(limit))
    } else {
        Err(invalid("limit must be within 1..=10000"))
    }
}

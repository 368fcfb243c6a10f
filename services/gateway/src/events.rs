//! Ledger event payloads of the gateway (spec 20 §8). Payloads never carry
//! evidence content, parameter values or row values.

use pecr_proto::v1;
use serde_json::{Value, json};

/// An event of `session`, attributed to the calling principal.
pub fn event(
    session: &v1::SessionRecord,
    caller: &str,
    event_type: &str,
    payload: Value,
) -> v1::NewLedgerEvent {
    v1::NewLedgerEvent {
        trace_id: session.trace_id.clone(),
        session_id: session.session_id.clone(),
        event_type: event_type.to_owned(),
        principal_id: caller.to_owned(),
        policy_snapshot_id: session.policy_snapshot_id.clone(),
        payload: payload.to_string(),
        payload_hash: None,
    }
}

pub fn policy_decision(op_name: &str, allow: bool, reason: &str, request_id: &str) -> Value {
    json!({
        "decision": if allow { "allow" } else { "deny" },
        "reason": reason,
        "op_name": op_name,
        "request_id": request_id,
    })
}

/// The decision the policy engine took; without a reason of its own the
/// event says `policy_allow` or `policy_deny`.
pub fn policy_outcome(op_name: &str, decision: &pecr_policy::Decision, request_id: &str) -> Value {
    let fallback = if decision.allow {
        "policy_allow"
    } else {
        "policy_deny"
    };
    policy_decision(
        op_name,
        decision.allow,
        decision.reason.as_deref().unwrap_or(fallback),
        request_id,
    )
}

pub fn operator_denied(
    op_name: &str,
    params_hash: &str,
    params_bytes: u64,
    request_id: &str,
) -> Value {
    json!({
        "op_name": op_name,
        "params_hash": params_hash,
        "params_bytes": params_bytes,
        "outcome": "denied",
        "request_id": request_id,
    })
}

pub fn calls_budget_violation(op_name: &str, used: u64, max: u64, request_id: &str) -> Value {
    json!({
        "op_name": op_name,
        "request_id": request_id,
        "operator_calls_used": used,
        "max_operator_calls": max,
    })
}

pub fn bytes_budget_violation(
    op_name: &str,
    used: u64,
    params_bytes: u64,
    max: u64,
    request_id: &str,
) -> Value {
    json!({
        "op_name": op_name,
        "request_id": request_id,
        "bytes_used": used,
        "params_bytes": params_bytes,
        "max_bytes": max,
    })
}

pub fn evidence_emitted(unit: &v1::EvidenceUnit, op_name: &str, request_id: &str) -> Value {
    json!({
        "evidence_unit_id": unit.evidence_unit_id,
        "content_hash": unit.content_hash,
        "source_system": unit.source_system,
        "object_id": unit.object_id,
        "version_id": unit.version_id,
        "op_name": op_name,
        "request_id": request_id,
    })
}

/// The counters of a successful call.
pub struct CallOutcome<'a> {
    pub op_name: &'a str,
    pub params_hash: &'a str,
    pub cache_hit: bool,
    pub params_bytes: u64,
    pub result_bytes: u64,
    pub operator_calls_used: u64,
    pub bytes_used: u64,
    pub request_id: &'a str,
}

pub fn operator_success(outcome: &CallOutcome<'_>) -> Value {
    json!({
        "op_name": outcome.op_name,
        "params_hash": outcome.params_hash,
        "cache_hit": outcome.cache_hit,
        "params_bytes": outcome.params_bytes,
        "result_bytes": outcome.result_bytes,
        "terminal_mode": "SUPPORTED",
        "outcome": "success",
        "error_code": null,
        "operator_calls_used": outcome.operator_calls_used,
        "bytes_used": outcome.bytes_used,
        "request_id": outcome.request_id,
    })
}

pub fn finalize_result(
    claim_map: &v1::ClaimMap,
    session: &v1::SessionRecord,
    request_id: &str,
) -> Value {
    let budget = session.budget.unwrap_or_default();
    json!({
        "terminal_mode": v1::TerminalMode::try_from(claim_map.terminal_mode)
            .unwrap_or(v1::TerminalMode::InsufficientEvidence)
            .as_str_name(),
        "claim_map_id": claim_map.claim_map_id,
        "coverage_threshold": claim_map.coverage_threshold,
        "coverage_observed": claim_map.coverage_observed,
        "budget_counters": {
            "operator_calls_used": session.operator_calls_used,
            "bytes_used": session.bytes_used,
            "max_operator_calls": budget.max_operator_calls,
            "max_bytes": budget.max_bytes,
        },
        "request_id": request_id,
    })
}

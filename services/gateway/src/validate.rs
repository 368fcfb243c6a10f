//! Entry checks of every gateway request, before any lock, ledger or
//! source is touched: each client-named id follows the shared id rule and no
//! text holds what PostgreSQL cannot store (the rules are in
//! `pecr_contracts::ids`, their numbers in the protos' `field_rules`). A
//! violation is 400 `ERR_INVALID_PARAMS` naming the field, never the value.

use pecr_adapters::Operator;
use pecr_contracts::ids::{self, ShapeError};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::Value;

/// Operator params members that name an id (view, column, version, metric).
const ID_MEMBERS: [&str; 3] = ["view_id", "v1", "v2"];
/// Operator params members that list ids.
const ID_LIST_MEMBERS: [&str; 2] = ["fields", "group_by"];

fn check(field: &str, rule: Result<(), ShapeError>) -> PecrResult<()> {
    rule.map_err(|reason| PecrError::invalid_params(format!("invalid {field}: {reason}")))
}

fn label(text: &str) -> Result<(), ShapeError> {
    ids::check_label(text, ids::LABEL_MAX_LEN)
}

pub fn simulate_policy(request: &v1::SimulatePolicyRequest) -> PecrResult<()> {
    // A blank action keeps the contract's own message, given by the core.
    if !request.action.trim().is_empty() {
        check("action", label(&request.action))?;
    }
    json_params(&request.params).map(|_| ())
}

/// A call's ids and params; the params come back parsed, so they are read
/// once.
pub fn call_operator(request: &v1::CallOperatorRequest) -> PecrResult<Value> {
    check("op_name", ids::check_id(&request.op_name))?;
    check("session_id", ids::check_id(&request.session_id))?;
    let params = json_params(&request.params)?;
    operator_params(&params)?;
    Ok(params)
}

/// Most calls in one batch (the proto's `max_items`).
pub const MAX_BATCH_CALLS: usize = 16;

/// The batch as a whole; each call is checked by [`batch_call`] and a bad
/// one fails alone.
/// Budget and as_of_time are checked by the core; here the first calls.
/// Unlike a batch of an open session, a malformed call refuses the whole
/// request: no session is opened by a request that breaks its schema.
pub fn create_session(request: &v1::CreateSessionRequest) -> PecrResult<()> {
    if request.calls.len() > MAX_BATCH_CALLS {
        return Err(PecrError::invalid_params(format!(
            "calls must hold at most {MAX_BATCH_CALLS} calls"
        )));
    }
    for (index, call) in request.calls.iter().enumerate() {
        if Operator::parse(call.op_name.trim()).is_none() {
            return Err(PecrError::invalid_params(format!(
                "invalid calls[{index}].op_name: not an allowlisted operator"
            )));
        }
        batch_call(&call.op_name, &call.params).map_err(|error| {
            PecrError::invalid_params(format!("calls[{index}]: {}", error.message))
        })?;
    }
    Ok(())
}

pub fn call_operators(request: &v1::CallOperatorsRequest) -> PecrResult<()> {
    check("session_id", ids::check_id(&request.session_id))?;
    if request.calls.is_empty() || request.calls.len() > MAX_BATCH_CALLS {
        return Err(PecrError::invalid_params(format!(
            "calls must hold 1 to {MAX_BATCH_CALLS} calls"
        )));
    }
    Ok(())
}

/// One call of a batch: its params, parsed and checked as CallOperator's.
pub fn batch_call(op_name: &str, params: &str) -> PecrResult<Value> {
    check("op_name", ids::check_id(op_name))?;
    let params = json_params(params)?;
    operator_params(&params)?;
    Ok(params)
}

/// Most evidence ids a run record may list (the proto's `max_items`).
const MAX_RUN_EVIDENCE_IDS: usize = 4096;

pub fn finalize(request: &v1::FinalizeRequest) -> PecrResult<()> {
    check("session_id", ids::check_id(&request.session_id))?;
    check("response_text", ids::check_text(&request.response_text))?;
    if let Some(run) = &request.run {
        check("run.query", ids::check_text(&run.query))?;
        if let Some(text) = &run.loop_response_text {
            check("run.loop_response_text", ids::check_text(text))?;
        }
        if run.evidence_unit_ids.len() > MAX_RUN_EVIDENCE_IDS {
            return Err(PecrError::invalid_params(format!(
                "run.evidence_unit_ids holds more than {MAX_RUN_EVIDENCE_IDS} ids"
            )));
        }
        for id in &run.evidence_unit_ids {
            check("run.evidence_unit_ids", ids::check_id(id))?;
        }
    }
    let Some(claim_map) = &request.claim_map else {
        return Ok(());
    };
    check(
        "claim_map.claim_map_id",
        ids::check_id(&claim_map.claim_map_id),
    )?;
    if let Some(notes) = &claim_map.notes {
        check("claim_map.notes", ids::check_text(notes))?;
    }
    for claim in &claim_map.claims {
        if !claim.claim_id.is_empty() {
            check("claim.claim_id", ids::check_id(&claim.claim_id))?;
        }
        check("claim.claim_text", ids::check_text(&claim.claim_text))?;
        for id in &claim.evidence_unit_ids {
            check("claim.evidence_unit_ids", ids::check_id(id))?;
        }
    }
    Ok(())
}

/// The params JSON, with no NUL in any member name or string.
fn json_params(text: &str) -> PecrResult<Value> {
    let params: Value =
        serde_json::from_str(text).map_err(|_| PecrError::invalid_params("invalid JSON body"))?;
    let mut pending = vec![&params];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) => check("params", ids::check_text(text))?,
            Value::Array(items) => pending.extend(items),
            Value::Object(members) => {
                for (name, member) in members {
                    check("params", ids::check_text(name))?;
                    pending.push(member);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    Ok(params)
}

/// The id-like members of operator params, where they have the JSON type
/// the operators read (other types are the operators' own 400s).
fn operator_params(params: &Value) -> PecrResult<()> {
    for name in ID_MEMBERS {
        if let Some(id) = params.get(name).and_then(Value::as_str) {
            check(&format!("params.{name}"), ids::check_id(id))?;
        }
    }
    for name in ID_LIST_MEMBERS {
        let items = params.get(name).and_then(Value::as_array);
        for id in items.into_iter().flatten().filter_map(Value::as_str) {
            check(&format!("params.{name}"), ids::check_id(id))?;
        }
    }
    if let Some(object_id) = params.get("object_id").and_then(Value::as_str) {
        check(
            "params.object_id",
            ids::check_label(object_id, ids::OBJECT_ID_MAX_LEN),
        )?;
    }
    if let Some(filters) = params.get("filter_spec").and_then(Value::as_object) {
        for (name, value) in filters {
            check("params.filter_spec field", ids::check_id(name.trim()))?;
            if let Some(text) = value.as_str() {
                check("params.filter_spec value", label(text))?;
            }
        }
    }
    let metrics = params.get("metrics").and_then(Value::as_array);
    for metric in metrics.into_iter().flatten() {
        for name in ["name", "field"] {
            if let Some(id) = metric.get(name).and_then(Value::as_str) {
                check(&format!("params.metrics.{name}"), ids::check_id(id))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

    fn operator(op_name: &str, session_id: &str, params: &str) -> PecrResult<()> {
        call_operator(&v1::CallOperatorRequest {
            op_name: op_name.into(),
            session_id: session_id.into(),
            params: params.into(),
        })
        .map(|_| ())
    }

    fn message(result: PecrResult<()>) -> String {
        result.err().map(|err| err.message).unwrap_or_default()
    }

    #[test]
    fn operator_calls_need_shaped_ids() {
        let rows = r#"{"view_id":"safe_customer_view_public","fields":["status"],"filter_spec":{"status":"active"}}"#;
        assert_eq!(operator("fetch_rows", SESSION, rows), Ok(()));
        assert_eq!(
            message(operator("fetch_rows", &"a".repeat(129), rows)),
            "invalid session_id: must be 1..=128 characters of [A-Za-z0-9._-]"
        );
        for bad in ["", "a b", "a\0b", "a\u{1}"] {
            assert!(operator("fetch_rows", bad, rows).is_err(), "{bad:?}");
            assert!(operator(bad, SESSION, rows).is_err(), "{bad:?}");
        }
        assert_eq!(
            message(operator("fetch_rows", SESSION, "{")),
            "invalid JSON body"
        );
    }

    #[test]
    fn params_hold_no_nul_and_shaped_members() {
        let cases = [
            (
                r#"{"query":"a\u0000"}"#,
                "invalid params: must not contain NUL characters",
            ),
            (
                r#"{"a\u0000":1}"#,
                "invalid params: must not contain NUL characters",
            ),
            (
                r#"[[["\u0000"]]]"#,
                "invalid params: must not contain NUL characters",
            ),
            (
                r#"{"filter_spec":{"status":"a\u0001"}}"#,
                "invalid params.filter_spec value: must be 1..=256 characters without control characters",
            ),
            (
                r#"{"filter_spec":{"st atus":"a"}}"#,
                "invalid params.filter_spec field: must be 1..=128 characters of [A-Za-z0-9._-]",
            ),
            (
                r#"{"view_id":"v w"}"#,
                "invalid params.view_id: must be 1..=128 characters of [A-Za-z0-9._-]",
            ),
            (
                r#"{"fields":["ok","b\tc"]}"#,
                "invalid params.fields: must be 1..=128 characters of [A-Za-z0-9._-]",
            ),
            (
                r#"{"object_id":"public/\u0007.txt"}"#,
                "invalid params.object_id: must be 1..=1024 characters without control characters",
            ),
            (
                r#"{"metrics":[{"name":"n","field":"x y"}]}"#,
                "invalid params.metrics.field: must be 1..=128 characters of [A-Za-z0-9._-]",
            ),
        ];
        for (params, expected) in cases {
            assert_eq!(message(operator("search", SESSION, params)), expected);
        }
        // Wrong JSON types are left to the operators' own messages.
        assert_eq!(operator("fetch_rows", SESSION, r#"{"view_id":7}"#), Ok(()));
        assert_eq!(
            operator(
                "fetch_span",
                SESSION,
                r#"{"object_id":"public/public_1.txt"}"#
            ),
            Ok(())
        );
    }

    #[test]
    fn finalize_checks_the_claim_map() {
        let request = |claim_text: &str, evidence: &str| v1::FinalizeRequest {
            session_id: SESSION.into(),
            response_text: "answer".into(),
            claim_map: Some(v1::ClaimMap {
                claim_map_id: SESSION.into(),
                claims: vec![v1::Claim {
                    claim_id: String::new(),
                    claim_text: claim_text.into(),
                    status: 1,
                    evidence_unit_ids: vec![evidence.into()],
                }],
                ..v1::ClaimMap::default()
            }),
            run: None,
        };
        assert_eq!(finalize(&request("claim", &"a".repeat(64))), Ok(()));
        assert_eq!(
            message(finalize(&request("cl\0aim", "e"))),
            "invalid claim.claim_text: must not contain NUL characters"
        );
        assert!(finalize(&request("claim", "e\0")).is_err());
        let mut no_map_id = request("claim", "e");
        if let Some(map) = no_map_id.claim_map.as_mut() {
            map.claim_map_id = String::new();
        }
        assert!(finalize(&no_map_id).is_err());
    }

    #[test]
    fn simulations_need_a_label_action() {
        let request = |action: &str, params: &str| v1::SimulatePolicyRequest {
            action: action.into(),
            params: params.into(),
            ..v1::SimulatePolicyRequest::default()
        };
        assert_eq!(simulate_policy(&request("operator_call", "{}")), Ok(()));
        assert!(simulate_policy(&request("op\0", "{}")).is_err());
        assert!(simulate_policy(&request("op", r#"{"x":"\u0000"}"#)).is_err());
    }
}

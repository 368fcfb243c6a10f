//! Policy inputs shaped as the gateway builds them (spec 20 §4.1, §2.5).

use serde_json::{Value, json};

pub const SNAPSHOT_HASH: &str = "fbaa1a39f1f98474a7eded447a9d1df4c7f150a9fb1e9e4e87d70057e8f5c5df";
pub const AS_OF: &str = "1970-01-01T00:00:00Z";

pub fn bundle_label() -> String {
    "a".repeat(64)
}

pub fn create_session(principal: &str) -> Value {
    json!({
        "action": "create_session",
        "principal_id": principal,
        "policy_snapshot_hash": SNAPSHOT_HASH,
        "policy_bundle_hash": bundle_label(),
        "as_of_time": AS_OF,
        "budget_hash": "b".repeat(64),
        "request_id": "req-1",
    })
}

pub fn finalize(principal: &str) -> Value {
    json!({
        "action": "finalize",
        "principal_id": principal,
        "trace_id": "trace-1",
        "session_id": "session-1",
        "policy_snapshot_id": "snapshot-1",
        "policy_snapshot_hash": SNAPSHOT_HASH,
        "policy_bundle_hash": bundle_label(),
        "as_of_time": AS_OF,
        "request_id": "req-1",
    })
}

/// An `operator_call` input; `object_id`/`view_id` are JSON (null when absent).
pub fn operator_call(principal: &str, op: &str, object_id: Value, view_id: Value) -> Value {
    json!({
        "action": "operator_call",
        "principal_id": principal,
        "trace_id": "trace-1",
        "session_id": "session-1",
        "policy_snapshot_id": "snapshot-1",
        "policy_snapshot_hash": SNAPSHOT_HASH,
        "policy_bundle_hash": bundle_label(),
        "as_of_time": AS_OF,
        "op_name": op,
        "params_hash": "c".repeat(64),
        "params_bytes": 42,
        "object_id": object_id,
        "view_id": view_id,
        "fields_hash": null,
        "filter_fingerprint": null,
        "request_id": "req-1",
    })
}

pub fn fs_call(principal: &str, op: &str, object_id: &str) -> Value {
    operator_call(principal, op, json!(object_id), Value::Null)
}

pub fn db_call(principal: &str, op: &str, view_id: &str) -> Value {
    operator_call(principal, op, Value::Null, json!(view_id))
}

/// A simulate input (§2.5 step 5): fixed fields first, then every
/// top-level key of `params` that is not `params` and not already present.
pub fn simulate(principal: &str, action: &str, params: Value) -> Value {
    let mut input = json!({
        "action": action,
        "principal_id": principal,
        "request_id": "req-sim",
        "params": params.clone(),
        "policy_bundle_hash": bundle_label(),
        "as_of_time": AS_OF,
    });
    if let (Some(fields), Some(extra)) = (input.as_object_mut(), params.as_object()) {
        for (key, value) in extra {
            if key != "params" && !fields.contains_key(key) {
                fields.insert(key.clone(), value.clone());
            }
        }
    }
    input
}

pub const ALL_OPS: [&str; 7] = [
    "search",
    "list_versions",
    "fetch_span",
    "diff",
    "fetch_rows",
    "aggregate",
    "redact",
];

/// A broad spread of inputs over every action, principal, op, prefix and
/// view the policies distinguish (used for parity checks).
pub fn corpus() -> Vec<Value> {
    let principals = ["dev", "support", "guest", "redacted", "mallory", ""];
    let objects = [
        json!("public/public_1.txt"),
        json!("injection/injection_1.txt"),
        json!("restricted/restricted_1.txt"),
        Value::Null,
    ];
    let views = [
        json!("safe_customer_view_public"),
        json!("safe_customer_view_support"),
        json!("safe_customer_view_admin"),
        Value::Null,
    ];
    let mut all = vec![
        json!({}),
        json!({"action": "health"}),
        json!({"action": "nope"}),
    ];
    for principal in principals {
        all.push(create_session(principal));
        all.push(finalize(principal));
        for op in ALL_OPS.iter().copied().chain(["drop_database"]) {
            for object in &objects {
                all.push(operator_call(principal, op, object.clone(), Value::Null));
            }
            for view in &views {
                all.push(operator_call(principal, op, Value::Null, view.clone()));
            }
        }
    }
    all
}

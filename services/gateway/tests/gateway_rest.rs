//! The gateway's REST edge (spec 20 §1.3–§2.7) on its HTTP port, with the
//! testkit HTTP client against real PostgreSQL, Rego and ledger-writer.

mod common;

use common::*;
use pecr_contracts::evidence::EvidenceUnit;
use pecr_contracts::is_sha256_hex;
use pecr_testkit::{http_post_json, http_request};
use serde_json::{Value, json};

const INVALID_BODY: (&str, &str, &str, bool) = (
    "ERR_INVALID_PARAMS",
    "invalid JSON body",
    "INSUFFICIENT_EVIDENCE",
    false,
);

/// The edge's 400 for a body it cannot read: `detail` names the member.
fn invalid_body_naming(field: Option<&str>, reason: &str) -> String {
    let (code, message, hint, retryable) = INVALID_BODY;
    let detail = match field {
        Some(field) => json!({"field": field, "reason": reason}),
        None => json!({"reason": reason}),
    };
    let plain = error_body(code, message, hint, retryable);
    format!("{},\"detail\":{detail}}}", plain.trim_end_matches('}'))
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Deserializes a unit and recomputes its content hash and id.
fn verified_unit(unit: &Value) -> EvidenceUnit {
    let parsed: EvidenceUnit = serde_json::from_value(unit.clone())
        .unwrap_or_else(|err| panic!("not an EvidenceUnit ({err}): {unit}"));
    parsed
        .verify()
        .unwrap_or_else(|err| panic!("unit does not verify ({err}): {unit}"));
    parsed
}

#[tokio::test]
async fn rest_session_operator_and_finalize_round_trip() {
    let mesh = Mesh::start(Policy::Test).await;

    // Scenario 13 over REST.
    let dev = mesh.rest_session("dev", budget_json(10, 1_048_576)).await;
    // 256 random bits as hex: nothing like the session's ids.
    assert!(
        dev.token.len() == 64 && dev.token.bytes().all(|b| b.is_ascii_hexdigit()),
        "token header: {:?}",
        dev.token
    );
    assert_eq!(
        keys(&dev.body),
        ["budget", "policy_snapshot_id", "session_id", "trace_id"]
    );
    assert!(pecr_contracts::ids::parse_ulid(&dev.session_id).is_some());
    assert!(pecr_contracts::ids::parse_ulid(&dev.trace_id).is_some());
    assert_eq!(
        dev.body["budget"],
        json!({"max_operator_calls": 10, "max_bytes": 1_048_576, "max_wallclock_ms": 1000, "max_recursion_depth": 3}),
        "budget numbers are JSON numbers; an unsent max_parallelism is omitted"
    );
    assert!(
        !dev.body.to_string().contains(&dev.token),
        "the token travels only in the header"
    );
    let snapshot_id = dev.body["policy_snapshot_id"].clone();

    // fetch_rows: the result is an embedded JSON array of verifiable units.
    let answer = mesh
        .rest_op(
            &dev,
            "fetch_rows",
            json!({"view_id": "safe_customer_view_admin", "fields": ["admin_note", "status"]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("application/json"));
    assert!(
        answer
            .body
            .starts_with(r#"{"terminal_mode":"SUPPORTED","result":["#),
        "{}",
        answer.body
    );
    let body = answer.json();
    assert_eq!(keys(&body), ["policy_decision", "result", "terminal_mode"]);
    assert_eq!(
        body["policy_decision"],
        json!({"allow": true, "cacheable": true, "reason": "test_allow", "redaction": {}})
    );
    let rows = body["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{body}");
    for unit in &rows {
        let spec = &unit["span_or_row_spec"];
        assert!(spec.is_object(), "span_or_row_spec is an object: {unit}");
        assert_eq!(spec["type"], "db_row");
        assert_eq!(spec["view_id"], "safe_customer_view_admin");
        assert_eq!(unit["policy_snapshot_id"], snapshot_id);
        let parsed = verified_unit(unit);
        assert_eq!(parsed.source_system, "pg_safeview");
    }

    // fetch_span: integers in the span stay integers.
    let answer = mesh
        .rest_op(
            &dev,
            "fetch_span",
            json!({"object_id": "public/public_1.txt"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let unit = answer.json()["result"].clone();
    let spec = &unit["span_or_row_spec"];
    assert_eq!(spec["type"], "text_span");
    for (field, expected) in [
        ("start_byte", 0),
        ("end_byte", 128),
        ("line_start", 1),
        ("line_end", 5),
    ] {
        assert!(
            spec[field].is_u64(),
            "{field} must be a JSON integer: {}",
            answer.body
        );
        assert_eq!(spec[field], json!(expected), "{field}");
    }
    assert!(
        answer.body.contains(r#""end_byte":128,"#),
        "{}",
        answer.body
    );
    let span = verified_unit(&unit);
    let id = span.evidence_unit_id.clone();
    assert!(is_sha256_hex(&id));

    // Finalize over REST.
    let claim_map = json!({
        "claim_map_id": format!("cm-{}", dev.session_id),
        "terminal_mode": "INSUFFICIENT_EVIDENCE",
        "claims": [{"claim_id": "", "claim_text": "public doc retrieved", "status": "SUPPORTED", "evidence_unit_ids": [id]}],
        "coverage_threshold": 0.0,
        "coverage_observed": 0.0,
    });
    let finalize = json!({"session_id": dev.session_id, "response_text": "the answer", "claim_map": claim_map});
    let answer = mesh
        .post("/v1/finalize", "dev", Some(&dev.token), &finalize)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(
        keys(&body),
        ["claim_map", "response_text", "terminal_mode", "trace_id"]
    );
    assert_eq!(body["terminal_mode"], "SUPPORTED");
    assert_eq!(body["trace_id"], json!(dev.trace_id));
    assert_eq!(body["response_text"], "the answer");
    let claims = &body["claim_map"]["claims"];
    assert_eq!(claims[0]["status"], "SUPPORTED");
    assert_eq!(claims[0]["evidence_unit_ids"], json!([id]));
    assert!(is_sha256_hex(
        claims[0]["claim_id"].as_str().unwrap_or_default()
    ));
    assert_eq!(body["claim_map"]["coverage_observed"].as_f64(), Some(1.0));
    assert_eq!(body["claim_map"]["coverage_threshold"].as_f64(), Some(0.95));

    // Scenario 41 over REST: after finalize, 409 on both routes.
    let finalized = error_body(
        "ERR_INVALID_PARAMS",
        "session already finalized",
        "INSUFFICIENT_EVIDENCE",
        false,
    );
    let answer = mesh
        .rest_op(
            &dev,
            "list_versions",
            json!({"object_id": "public/public_1.txt"}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (409, finalized.as_str())
    );
    let answer = mesh
        .post("/v1/finalize", "dev", Some(&dev.token), &finalize)
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (409, finalized.as_str())
    );

    let events = mesh.events(&dev.trace_id).await;
    for kind in ["OPERATOR_CALL", "EVIDENCE_EMITTED", "FINALIZE_RESULT"] {
        assert!(events.iter().any(|(t, _)| t == kind), "{kind}: {events:?}");
    }
}

#[tokio::test]
async fn the_trace_id_header_is_used_only_when_it_is_a_trace_id() {
    // Spec 20 §1.2 (with our parser refusing a first character above 7),
    // plus the W3C spelling of the same 128 bits.
    let mesh = Mesh::start(Policy::Test).await;
    let url = mesh.url("/v1/sessions");
    let body = json!({"budget": budget_json(10, 1024)}).to_string();
    let w3c = ulid::Ulid(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).to_string();
    for (header, expected) in [
        (
            " 01arz3ndektsv4rrffq69g5fav ",
            Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ),
        ("4bf92f3577b34da6a3ce929d0e0e4736", Some(w3c.as_str())),
        ("not-a-ulid", None),
        ("ZZZZZZZZZZZZZZZZZZZZZZZZZZ", None),
        ("01ARZ3NDEKTSV4RRFFQ69G5FAVX", None),
        ("00000000000000000000000000000000", None),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        ),
    ] {
        let answer = http_post_json(
            &url,
            &[("x-pecr-principal-id", "dev"), ("x-pecr-trace-id", header)],
            &body,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let trace_id = answer.json()["trace_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(pecr_contracts::ids::parse_ulid(&trace_id).is_some());
        match expected {
            Some(expected) => assert_eq!(trace_id, expected),
            None => assert!(
                !trace_id.eq_ignore_ascii_case(header.trim()) && !trace_id.starts_with("7ZZ"),
                "{header:?} → {trace_id}"
            ),
        }
    }

    // A trace is never joined by another principal: asking for dev's trace
    // gives support a fresh one, and nothing support does lands in dev's.
    let dev_trace = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let answer = http_post_json(
        &url,
        &[
            ("x-pecr-principal-id", "support"),
            ("x-pecr-trace-id", dev_trace),
        ],
        &body,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let support_trace = answer.json()["trace_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(support_trace, dev_trace);
    assert!(pecr_contracts::ids::parse_ulid(&support_trace).is_some());
    let principals: Vec<String> = mesh
        .db
        .client()
        .query(
            "SELECT DISTINCT principal_id FROM pecr_sessions WHERE trace_id = $1",
            &[&dev_trace],
        )
        .await
        .expect("sessions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(principals, vec!["dev".to_owned()]);
}

#[tokio::test]
async fn zero_max_bytes_is_unlimited_through_finalize() {
    let mesh = Mesh::start(Policy::Test).await;
    let dev = mesh.rest_session("dev", budget_json(10, 0)).await;
    let answer = mesh
        .rest_op(
            &dev,
            "fetch_span",
            json!({"object_id": "injection/injection_1.txt"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let id = answer.json()["result"]["evidence_unit_id"].clone();
    let finalize = json!({
        "session_id": dev.session_id,
        "response_text": "answer",
        "claim_map": {
            "claim_map_id": format!("cm-{}", dev.session_id),
            "terminal_mode": "INSUFFICIENT_EVIDENCE",
            "claims": [{"claim_id": "", "claim_text": "injection doc retrieved", "status": "SUPPORTED", "evidence_unit_ids": [id]}],
            "coverage_threshold": 0.0,
            "coverage_observed": 0.0,
        },
    });
    let answer = mesh
        .post("/v1/finalize", "dev", Some(&dev.token), &finalize)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["terminal_mode"],
        "SUPPORTED",
        "max_bytes = 0 is no violation at finalize"
    );
    let events = mesh.events(&dev.trace_id).await;
    let counters = events
        .iter()
        .find(|(t, _)| t == "FINALIZE_RESULT")
        .map(|(_, p)| p["budget_counters"].clone())
        .expect("FINALIZE_RESULT");
    assert_eq!(counters["max_bytes"], 0);
    assert!(
        counters["bytes_used"].as_u64().unwrap_or(0) > 0,
        "{counters}"
    );
}

#[tokio::test]
async fn rest_errors_are_exact_error_responses() {
    let mut mesh = Mesh::start(Policy::Test).await;
    let budget = json!({"budget": budget_json(10, 1_048_576)});

    // 401 (a missing principal or token, a wrong or unknown session) and
    // 400 for bad operator params are tested over both doors in
    // gateway_transports.

    // 403: OPA says no; the body names nothing from the source.
    let policy_denied = error_body(
        "ERR_POLICY_DENIED",
        "policy denied",
        "INSUFFICIENT_PERMISSION",
        false,
    );
    let support = mesh
        .rest_session("support", budget_json(10, 1_048_576))
        .await;
    let answer = mesh
        .rest_op(
            &support,
            "fetch_span",
            json!({"object_id": "restricted/restricted_1.txt"}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (403, policy_denied.as_str())
    );
    let answer = mesh.post("/v1/sessions", "mallory", None, &budget).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (403, policy_denied.as_str())
    );

    // 400: a budget out of range.
    let answer = mesh
        .post(
            "/v1/sessions",
            "dev",
            None,
            &json!({"budget": budget_json(10_001, 1024)}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            400,
            error_body(
                "ERR_INVALID_PARAMS",
                "invalid budget: max_operator_calls out of range",
                "INSUFFICIENT_EVIDENCE",
                false
            )
            .as_str()
        )
    );

    // 429: the session's call budget.
    let tight = mesh.rest_session("dev", budget_json(1, 1_048_576)).await;
    let params = json!({"object_id": "public/public_1.txt"});
    let answer = mesh.rest_op(&tight, "list_versions", params.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = mesh.rest_op(&tight, "list_versions", params).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            429,
            error_body(
                "ERR_BUDGET_EXCEEDED",
                "budget exceeded",
                "INSUFFICIENT_EVIDENCE",
                false
            )
            .as_str()
        )
    );

    assert_no_canary("gateway logs", &mesh.logs().join("\n"));
}

#[tokio::test]
async fn rest_edge_refuses_bad_requests_before_the_service() {
    let mesh = Mesh::start(Policy::Test).await;
    let url = mesh.url("/v1/sessions");
    let principal = [("x-pecr-principal-id", "dev")];
    let good = json!({"budget": budget_json(10, 1024)}).to_string();

    // 400: malformed JSON, unknown members, wrong types, missing members;
    // `detail` names the member.
    for body in [r#"{"budget":"#.to_owned(), String::new()] {
        let answer = http_post_json(&url, &principal, &body).await;
        assert_eq!(answer.status, 400, "body {body:?}");
        let error = answer.json();
        assert_eq!(error["message"], "invalid JSON body", "body {body:?}");
        let reason = error["detail"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("malformed JSON: "),
            "body {body:?}: {reason}"
        );
        assert!(error["detail"].get("field").is_none(), "body {body:?}");
    }
    for (body, field, reason) in [
        ("[]".to_owned(), None, "expected an object, found an array"),
        (
            json!({"budget": budget_json(10, 1024), "surprise": 1}).to_string(),
            Some("surprise"),
            "unknown field",
        ),
        (
            json!({"budget": {"max_operator_calls": 10, "max_bytes": 1024, "max_wallclock_ms": 1000, "max_recursion_depth": 3, "extra": true}}).to_string(),
            Some("budget.extra"),
            "unknown field",
        ),
        (
            json!({"budget": {"max_operator_calls": "ten", "max_bytes": 1024, "max_wallclock_ms": 1000, "max_recursion_depth": 3}}).to_string(),
            Some("budget.max_operator_calls"),
            "expected a number, found a string",
        ),
        (
            json!({"budget": {"max_operator_calls": -1, "max_bytes": 1024, "max_wallclock_ms": 1000, "max_recursion_depth": 3}}).to_string(),
            Some("budget.max_operator_calls"),
            "integer out of range",
        ),
        (
            json!({"budget": {"max_bytes": 1024, "max_wallclock_ms": 1000, "max_recursion_depth": 3}}).to_string(),
            Some("budget.max_operator_calls"),
            "missing field",
        ),
    ] {
        let answer = http_post_json(&url, &principal, &body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (400, invalid_body_naming(field, reason).as_str()),
            "body {body:?}"
        );
    }
    let dev = mesh.rest_session("dev", budget_json(10, 1024)).await;
    let answer = mesh
        .post(
            "/v1/operators/search",
            "dev",
            Some(&dev.token),
            &json!({"session_id": dev.session_id, "params": {"query": "x"}, "op_name": "fetch_span"}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            400,
            invalid_body_naming(Some("op_name"), "set by the URL path, not the body").as_str()
        ),
        "the path's op_name cannot be overridden by the body"
    );

    // 415: not JSON by content type.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut headers = vec![("x-pecr-principal-id", "dev")];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        let answer = http_request("POST", &url, &headers, Some(&good)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (
                415,
                error_body(
                    "ERR_INVALID_PARAMS",
                    "invalid JSON body",
                    "INSUFFICIENT_EVIDENCE",
                    false
                )
                .as_str()
            ),
            "content type {content_type:?}"
        );
    }
    // Any application/*+json is JSON (spec 20 §1.5).
    let answer = http_request(
        "POST",
        &url,
        &[
            ("x-pecr-principal-id", "dev"),
            (
                "content-type",
                "application/vnd.pecr.v1+json; charset=utf-8",
            ),
        ],
        Some(&good),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // 413: over 2 MiB.
    let padding = "x".repeat(2 * 1024 * 1024);
    let oversize = json!({"budget": budget_json(10, 1024), "as_of_time": padding}).to_string();
    assert!(oversize.len() > 2 * 1024 * 1024);
    // The edge answers and closes while the client may still be sending the
    // rest of the body, which the client then reports instead of the answer:
    // try until an answer is read (every answer read must be the 413).
    let mut answer = None;
    for _ in 0..10 {
        let sent = pecr_testkit::http_try_request(
            "POST",
            &url,
            &[("content-type", "application/json"), principal[0]],
            Some(&oversize),
        )
        .await;
        if let Ok(read) = sent {
            answer = Some(read);
            break;
        }
    }
    let answer = answer.expect("an answer to the oversized body within 10 tries");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            413,
            error_body(
                "ERR_INVALID_PARAMS",
                "invalid JSON body",
                "INSUFFICIENT_EVIDENCE",
                false
            )
            .as_str()
        )
    );

    // 404 and 405 with empty bodies.
    for (method, path, status) in [
        ("GET", "/v1/nope", 404),
        ("POST", "/v1/nope", 404),
        ("POST", "/v1/operators", 404),
        ("POST", "/v1/operators/search/extra", 404),
        ("GET", "/v1/sessions", 405),
        ("GET", "/v1/operators/search", 405),
        ("PUT", "/v1/finalize", 405),
        ("DELETE", "/v1/policies/simulate", 405),
    ] {
        let answer = http_request(
            method,
            &mesh.url(path),
            &[
                ("x-pecr-principal-id", "dev"),
                ("content-type", "application/json"),
            ],
            Some(&good),
        )
        .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (status, ""),
            "{method} {path}"
        );
    }

    // Only the two well-formed requests reached the service.
    assert_eq!(mesh.db.count("pecr_sessions").await, 2);
}

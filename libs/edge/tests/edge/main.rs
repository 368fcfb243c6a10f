//! The REST edge end to end: a real HTTP client (hyper-util) against the
//! edge router served on 127.0.0.1:0, in front of real tonic services
//! called in-process (the harness in `edge/harness.rs`). Most checks are
//! tables of cases: a request and the status and body it must get.

mod cases;
mod client;
mod cors;
mod harness;
mod stream;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pecr_edge::EdgeConfig;
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::service_names::GATEWAY;
use pecr_proto::v1::gateway_service_server::GatewayServiceServer;
use serde_json::json;

use cases::{Case, Check, get, post, raw, send};
use client::{Edge, edge, start};
use harness::{HarnessGateway, Recorder};

const BUDGET: &str =
    r#"{"max_operator_calls":10,"max_bytes":1024,"max_wallclock_ms":1000,"max_recursion_depth":2}"#;

fn invalid(message: &str) -> String {
    format!(
        r#"{{"code":"ERR_INVALID_PARAMS","message":"{message}","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}}"#
    )
}

/// A 400 the edge answers itself: `detail` names the refused field.
fn invalid_naming(message: &str, field: Option<&str>, reason: &str) -> String {
    let detail = match field {
        Some(field) => json!({"field": field, "reason": reason}),
        None => json!({"reason": reason}),
    };
    format!(
        r#"{{"code":"ERR_INVALID_PARAMS","message":"{message}","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false,"detail":{detail}}}"#
    )
}

const INTERNAL: &str = r#"{"code":"ERR_INTERNAL","message":"internal error","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":false}"#;

fn claim_map(claims: &str) -> String {
    format!(
        r#"{{"claim_map_id":"C-1","terminal_mode":"SUPPORTED","claims":{claims},"coverage_threshold":1,"coverage_observed":0.5}}"#
    )
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_annotated_route_answers_its_method_through_the_grpc_stack() {
    let edge = edge().await;
    let finalize = format!(
        r#"{{"session_id":"S-1","response_text":"r","claim_map":{}}}"#,
        claim_map("[]")
    );
    let posts = [
        (
            "/v1/sessions",
            format!(r#"{{"budget":{BUDGET}}}"#),
            "CreateSession",
        ),
        (
            "/v1/policies/simulate",
            r#"{"action":"read","params":{}}"#.to_owned(),
            "SimulatePolicy",
        ),
        (
            "/v1/operators/echo",
            r#"{"session_id":"S-1","params":{}}"#.to_owned(),
            "CallOperator",
        ),
        (
            "/v1/operator-batches",
            r#"{"session_id":"S-1","calls":[{"op_name":"echo","params":{}}]}"#.to_owned(),
            "CallOperators",
        ),
        ("/v1/finalize", finalize, "Finalize"),
        ("/v1/run", r#"{"query":"q"}"#.to_owned(), "Run"),
        ("/v1/replays/verify", "{}".to_owned(), "VerifyReplays"),
        (
            "/v1/evaluations",
            r#"{"evaluation_name":"e"}"#.to_owned(),
            "SubmitEvaluation",
        ),
    ];
    let gets = [
        ("/v1/replays", "ListReplays"),
        ("/v1/replays/R-1", "GetReplay"),
        ("/v1/evaluations/scorecards", "GetScorecards"),
        ("/v1/evaluations/E-1", "GetEvaluation"),
    ];
    let cases = posts
        .iter()
        .map(|(path, body, rpc)| post(format!("POST {path}"), path, body).with(Check::Reached(rpc)))
        .chain(gets.iter().map(|(path, rpc)| {
            send(format!("GET {path}"), "GET", path, &[], None).with(Check::Reached(rpc))
        }))
        .map(|case| case.with(Check::JsonContentType))
        .collect();
    edge.check(cases).await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_empty_bodies() {
    let edge = edge().await;
    let cases = [
        ("GET", "/v1/nope", 404),
        ("POST", "/v1/sessions/extra", 404),
        ("GET", "/", 404),
        ("GET", "/v1/run/", 404),
        ("GET", "/v1/run", 405),
        ("PUT", "/v1/sessions", 405),
        ("DELETE", "/v1/operators/search", 405),
        ("POST", "/v1/replays", 405),
        ("POST", "/v1/replays/R-1", 405),
        ("POST", "/v1/evaluations/scorecards", 405),
    ]
    .into_iter()
    .map(|(method, path, status)| {
        send(format!("{method} {path}"), method, path, &[], None)
            .answers(status)
            .with(Check::Body(String::new()))
            .with(Check::NotForwarded)
    })
    .collect();
    edge.check(cases).await;
}

#[tokio::test]
async fn paths_and_query_strings_fill_request_fields() {
    let edge = edge().await;
    let request_id = |path: &str, echoed: &str| {
        get(format!("GET {path}"), path).with(Check::Json("/replays/0/request_id", json!(echoed)))
    };
    let mut cases = vec![
        // Static segments win over templates.
        get("a static segment", "/v1/evaluations/scorecards").with(Check::Has("/scorecards")),
        get("a template beside it", "/v1/evaluations/E-9")
            .with(Check::Json("/evaluation_id", json!("E-9"))),
        // Path variables bind request fields, percent-decoded.
        post(
            "a bound op_name",
            "/v1/operators/echo",
            r#"{"session_id":"S-1","params":{"q":"x"}}"#,
        ),
        post(
            "op_name decoded to err_404",
            "/v1/operators/err%5F404",
            r#"{"session_id":"S-1","params":{}}"#,
        )
        .answers(404),
        get("a decoded space", "/v1/evaluations/a%20b")
            .with(Check::Json("/evaluation_id", json!("a b"))),
        post(
            "a path-bound field may not also come in a `*` body",
            "/v1/operators/echo",
            r#"{"op_name":"err_400","session_id":"S-1","params":{}}"#,
        )
        .refused_naming(
            "invalid JSON body",
            Some("op_name"),
            "set by the URL path, not the body",
        ),
        raw(
            "percent-encoded bytes that are not UTF-8",
            b"GET /v1/replays/%FF HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .refused_naming("invalid path parameter", Some("run_id"), "not valid UTF-8"),
        // GET query parameters fill scalar fields; unknown parameters are
        // ignored, empty strings are strings.
        request_id(
            "/v1/replays?limit=5&engine_mode=rlm",
            r#"limit=Some(5);engine=Some("rlm")"#,
        ),
        request_id("/v1/replays", "limit=None;engine=None"),
        request_id(
            "/v1/replays?engine_mode=&cache=1&limit=0",
            r#"limit=Some(0);engine=Some("")"#,
        ),
        get(
            "scorecard parameters",
            "/v1/evaluations/scorecards?limit=3&engine_mode=baseline",
        )
        .with(Check::Json("/scorecards/0/engine_mode", json!("baseline")))
        .with(Check::Json("/scorecards/0/run_count", json!(3))),
        // A static segment beside the `{run_id}` template, on another method.
        post(
            "replay verification fields",
            "/v1/replays/verify",
            r#"{"since_unix_ms":1700000000000,"limit":5,"engine_mode":"rlm"}"#,
        )
        .with(Check::Json("/verified", json!(2)))
        .with(Check::Json(
            "/differences/0/differences/0",
            json!(r#"since=Some(1700000000000);limit=Some(5);engine=Some("rlm")"#),
        )),
    ];
    for (bad, reason) in [
        ("limit=abc", "expected an integer"),
        ("limit=-1", "integer out of range"),
        ("limit=1.5", "expected an integer"),
        ("limit=", "expected an integer"),
        ("limit=1&limit=2", "given twice"),
        ("limit=4294967296", "integer out of range"),
    ] {
        cases.push(
            get(format!("query {bad}"), &format!("/v1/replays?{bad}")).refused_naming(
                "invalid query string",
                Some("limit"),
                reason,
            ),
        );
    }
    edge.check(cases).await;
}

// ---------------------------------------------------------------------------
// Bodies and JSON mapping
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bodies_map_to_the_contract_json() {
    let edge = edge().await;
    let bad_body = "invalid JSON body";
    let operator = |name: String, op_name: &str, params: &str| {
        post(
            name,
            &format!("/v1/operators/{op_name}"),
            &format!(r#"{{"session_id":"S-1","params":{params}}}"#),
        )
    };
    let finalize = |name: String, claims: &str| {
        post(
            name,
            "/v1/finalize",
            &format!(
                r#"{{"session_id":"S-1","response_text":"r","claim_map":{}}}"#,
                claim_map(claims)
            ),
        )
    };
    let claims = r#"[{"claim_id":"","claim_text":"a","status":"SUPPORTED","evidence_unit_ids":["e1"]},{"claim_id":"x","claim_text":"b","status":"ASSUMPTION","evidence_unit_ids":[]}]"#;
    let open_claims = r#"[{"claim_id":"","claim_text":"a","status":"UNKNOWN","evidence_unit_ids":[],"note":"x"}]"#;
    let open_map = format!(
        r#"{{"claim_map_id":"C-1","terminal_mode":"SUPPORTED","claims":{open_claims},"coverage_threshold":1,"coverage_observed":0,"extra":[1]}}"#
    );
    let mut cases = vec![
        // `response_body` and `body` fields select the bare contract
        // objects: GetReplay answers the bare ReplayBundle, with every
        // non-optional field present (zeros, empty lists) and optional ones
        // omitted.
        get("GetReplay answers the bare bundle", "/v1/replays/R-7").with(Check::Body(
            concat!(
                r#"{"metadata":{"schema_version":1,"run_id":"R-7","trace_id":"T-1","request_id":"Q-1","#,
                r#""principal_id_hash":"h","engine_mode":"baseline","recorded_at_unix_ms":18446744073709551615,"#,
                r#""terminal_mode":"SUPPORTED","quality_score":87.5,"bundle_hash":"b"},"query":"what","#,
                r#""budget":{"max_operator_calls":10,"max_bytes":67108864,"max_wallclock_ms":1000,"max_recursion_depth":0},"#,
                r#""session_id":"S-1","policy_snapshot_id":"P-1","loop_terminal_mode":"INSUFFICIENT_EVIDENCE","#,
                r#""response_text":"","claim_map":{"claim_map_id":"C-1","terminal_mode":"INSUFFICIENT_EVIDENCE","#,
                r#""claims":[],"coverage_threshold":0.95,"coverage_observed":0.0},"operator_calls_used":0,"#,
                r#""bytes_used":0,"depth_used":0,"evidence_ref_count":0,"evidence_unit_ids":[]}"#
            )
            .into(),
        )),
        post(
            "SubmitEvaluation takes the bare submission and answers the bare result",
            "/v1/evaluations",
            r#"{"evaluation_name":"nightly","replay_ids":["R-1","R-2"],"engine_mode":"rlm","min_quality_score":50,"max_source_unavailable_rate":0.25}"#,
        )
        .with(Check::Body(
            concat!(
                r#"{"evaluation_id":"E-1","evaluation_name":"nightly","#,
                r#""principal_id_hash":"ids=[\"R-1\", \"R-2\"];engine=Some(\"rlm\");min=Some(50.0);max=Some(0.25)","#,
                r#""created_at_unix_ms":1700000000000,"replay_ids":["R-1","R-2"],"missing_replay_ids":[],"#,
                r#""run_results":[],"scorecards":[],"overall_pass":true}"#
            )
            .into(),
        )),
        post(
            "the wrapper is not accepted: the body is the submission itself",
            "/v1/evaluations",
            r#"{"submission":{"evaluation_name":"e"}}"#,
        )
        .refused_naming(bad_body, Some("submission"), "unknown field"),
        post(
            "absent optional members stay absent in the request",
            "/v1/evaluations",
            r#"{"evaluation_name":"e","min_quality_score":null}"#,
        )
        .with(Check::Contains("ids=[];engine=None;min=None;max=None".into())),
        // json_text round-trips with number kinds kept.
        operator("numbers keep their kind".into(), "echo", r#"{"a":1,"b":1.0,"c":[100]}"#)
            .with(Check::Body(
                concat!(
                    r#"{"terminal_mode":"SUPPORTED","result":{"a":1,"b":1.0,"c":[100]},"#,
                    r#""policy_decision":{"allow":true,"cacheable":true,"reason":"{\"a\":1,\"b\":1.0,\"c\":[100]}","redaction":{}}}"#
                )
                .into(),
            )),
        post(
            "insignificant whitespace goes, spellings and member order stay",
            "/v1/operators/echo",
            "{ \"session_id\" : \"S-1\", \"params\" : { \"z\" : 1e2 , \"a\" : [ -0.50 , \"x y\" ] } }",
        )
        .with(Check::Json(
            "/policy_decision/reason",
            json!(r#"{"z":1e2,"a":[-0.50,"x y"]}"#),
        ))
        .with(Check::Contains(r#""result":{"z":1e2,"a":[-0.50,"x y"]}"#.into())),
        post(
            "simulate: json_text input, optional json_text output",
            "/v1/policies/simulate",
            r#"{"action":"redact","params":{"deny_fields":["email"],"n":3}}"#,
        )
        .with(Check::Body(
            r#"{"allow":false,"cacheable":false,"redaction":{"deny_fields":["email"],"n":3}}"#.into(),
        )),
        // A batch answers one result or error object per call.
        post(
            "a batch",
            "/v1/operator-batches",
            r#"{"session_id":"S-1","calls":[{"op_name":"echo","params":{"a":1.0}},{"op_name":"nope","params":{}}]}"#,
        )
        .with(Check::Body(
            concat!(
                r#"{"outcomes":[{"ok":{"terminal_mode":"SUPPORTED","result":{"a":1.0},"#,
                r#""policy_decision":{"allow":false,"cacheable":false}}},"#,
                r#"{"error":{"error":{"code":"ERR_INVALID_PARAMS","message":"operator not allowlisted","#,
                r#""terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false},"http_status":400}}]}"#
            )
            .into(),
        )),
        // Zero values are present and unset optionals omitted.
        post(
            "zero values: simulate",
            "/v1/policies/simulate",
            r#"{"action":"read","params":{}}"#,
        )
        .with(Check::Body(r#"{"allow":true,"cacheable":false}"#.into())),
        post("zero values: run", "/v1/run", r#"{"query":""}"#).with(Check::Body(
            concat!(
                r#"{"terminal_mode":"INSUFFICIENT_EVIDENCE","trace_id":"T-1","claim_map":{"claim_map_id":"C-1","#,
                r#""terminal_mode":"INSUFFICIENT_EVIDENCE","claims":[],"coverage_threshold":0.95,"coverage_observed":0.0},"#,
                r#""response_text":"","run_id":"R-1","stop_reason":"budget=None","cited_evidence":[]}"#
            )
            .into(),
        )),
        get("zero values: an error", "/v1/replays/missing")
            .answers(404)
            .with(Check::Body(
                r#"{"code":"ERR_REPLAY_NOT_FOUND","message":"replay not found","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#.into(),
            )),
        // Sixty-four bit integers are numbers both ways.
        get("a u64 out", "/v1/replays").with(Check::Contains(
            r#""recorded_at_unix_ms":18446744073709551615,"#.into(),
        )),
        post(
            "a u64 in",
            "/v1/sessions",
            r#"{"budget":{"max_operator_calls":10,"max_bytes":18446744073709551615,"max_wallclock_ms":300000,"max_recursion_depth":20,"max_parallelism":null},"as_of_time":null}"#,
        )
        .with(Check::Body(
            r#"{"session_id":"S-1","trace_id":"T-1","policy_snapshot_id":"P-default","budget":{"max_operator_calls":10,"max_bytes":18446744073709551615,"max_wallclock_ms":300000,"max_recursion_depth":20}}"#.into(),
        )),
        post(
            "a zero parallelism is present",
            "/v1/sessions",
            r#"{"budget":{"max_operator_calls":0,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0,"max_parallelism":0},"as_of_time":"2026-01-01T00:00:00Z"}"#,
        )
        .with(Check::EndsWith(
            r#""max_recursion_depth":0,"max_parallelism":0}}"#.into(),
        ))
        .with(Check::Contains("P-2026-01-01T00:00:00Z".into())),
    ];
    // Any JSON value as json_text, including null, a string or a number.
    for params in ["null", "\"text\"", "7", "[]"] {
        cases.push(
            operator(format!("params {params}"), "echo", params)
                .with(Check::Contains(format!(r#""result":{params},"#))),
        );
    }
    for (budget, field, reason) in [
        (
            r#"{"max_operator_calls":"10","max_bytes":1024,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
            "budget.max_operator_calls",
            "expected a number, found a string",
        ),
        (
            r#"{"max_operator_calls":10,"max_bytes":18446744073709551616,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
            "budget.max_bytes",
            "integer out of range",
        ),
        (
            r#"{"max_operator_calls":10,"maxBytes":"1e3","max_wallclock_ms":1,"max_recursion_depth":1}"#,
            "budget.maxBytes",
            "expected an integer",
        ),
        (
            r#"{"max_operator_calls":-1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
            "budget.max_operator_calls",
            "integer out of range",
        ),
        (
            r#"{"max_operator_calls":1.5,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
            "budget.max_operator_calls",
            "expected an integer",
        ),
        (
            r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1}"#,
            "budget.max_recursion_depth",
            "missing field",
        ),
        (
            r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"extra":1}"#,
            "budget.extra",
            "unknown field",
        ),
        (
            r#"{"max_operator_calls":1,"max_bytes":1,"maxBytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
            "budget.maxBytes",
            "duplicate field",
        ),
    ] {
        cases.push(
            post(
                format!("budget {budget}"),
                "/v1/sessions",
                &format!(r#"{{"budget":{budget}}}"#),
            )
            .refused_naming(bad_body, Some(field), reason),
        );
    }
    // proto3 JSON on input: lowerCamelCase names, 64-bit integers as
    // strings; the answer is written as always.
    for budget in [
        r#"{"maxOperatorCalls":10,"maxBytes":"1024","maxWallclockMs":"1000","maxRecursionDepth":2}"#,
        r#"{"max_operator_calls":10,"maxBytes":1024,"max_wallclock_ms":"1000","maxRecursionDepth":2}"#,
    ] {
        cases.push(
            post(
                format!("proto3 JSON budget {budget}"),
                "/v1/sessions",
                &format!(r#"{{"budget":{budget}}}"#),
            )
            .with(Check::Contains(format!(r#""budget":{BUDGET}"#)))
            .with(Check::Reached("CreateSession")),
        );
    }
    // Enums are value names both ways, and unspecified is refused.
    cases.push(finalize("enum names both ways".into(), claims).with(Check::Body(format!(
        r#"{{"terminal_mode":"SUPPORTED","trace_id":"T-1","claim_map":{{"claim_map_id":"C-1","terminal_mode":"SUPPORTED","claims":{claims},"coverage_threshold":1.0,"coverage_observed":0.5}},"response_text":"r"}}"#
    ))));
    // An enum number is read as its value, and answered by name.
    let numbered = claims
        .replace(r#""status":"SUPPORTED""#, r#""status":1"#)
        .replace(r#""status":"ASSUMPTION""#, r#""status":2"#);
    cases.push(
        finalize("enum numbers in, names out".into(), &numbered)
            .with(Check::Contains(format!(r#""claims":{claims},"#))),
    );
    for (status, reason) in [
        (
            "\"STATUS_UNSPECIFIED\"",
            "the unspecified enum value is not accepted",
        ),
        ("0", "the unspecified enum value is not accepted"),
        ("\"supported\"", "unknown enum value"),
        ("\"NOPE\"", "unknown enum value"),
        ("9", "unknown enum value"),
        ("null", "null for a field that is not optional"),
    ] {
        let claims = format!(
            r#"[{{"claim_id":"","claim_text":"a","status":{status},"evidence_unit_ids":[]}}]"#
        );
        cases.push(
            finalize(format!("claim status {status}"), &claims).refused_naming(
                bad_body,
                Some("claim_map.claims[0].status"),
                reason,
            ),
        );
    }
    cases.extend([
        post(
            "an unspecified terminal mode",
            "/v1/finalize",
            r#"{"session_id":"S-1","response_text":"r","claim_map":{"claim_map_id":"C","terminal_mode":"TERMINAL_MODE_UNSPECIFIED","claims":[],"coverage_threshold":1,"coverage_observed":0}}"#,
        )
        .answers(400),
        operator(
            "a required enum still unset on output is an internal error".into(),
            "unspecified",
            "{}",
        )
        .answers(500)
        .with(Check::Body(INTERNAL.into())),
        operator("a result that is not JSON".into(), "not_json", "{}")
            .answers(500)
            .with(Check::Body(INTERNAL.into())),
        // Unknown fields are refused, except where the spec keeps objects
        // open. Closed: gateway top-level bodies, budget, the evaluation
        // submission.
        post(
            "closed: a gateway body",
            "/v1/sessions",
            &format!(r#"{{"budget":{BUDGET},"extra":true}}"#),
        )
        .refused_naming(bad_body, Some("extra"), "unknown field"),
        post(
            "closed: a budget",
            "/v1/run",
            r#"{"query":"q","budget":{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"x":1}}"#,
        )
        .answers(400),
        post(
            "closed: the evaluation submission",
            "/v1/evaluations",
            r#"{"evaluation_name":"e","x":1}"#,
        )
        .answers(400),
        // Open: the run request's top level, claim maps and claims.
        post(
            "open: the run request",
            "/v1/run",
            &format!(r#"{{"query":"q","budget":{BUDGET},"client_hint":{{"a":1}}}}"#),
        )
        .with(Check::Contains(r#""stop_reason":"budget=Some(10)""#.into())),
        post(
            "open: claim maps and claims",
            "/v1/finalize",
            &format!(r#"{{"session_id":"S-1","response_text":"r","claim_map":{open_map}}}"#),
        )
        .with(Check::Lacks("extra")),
        post(
            "closed: the finalize request",
            "/v1/finalize",
            &format!(
                r#"{{"session_id":"S-1","response_text":"r","claim_map":{open_map},"extra":1}}"#
            ),
        )
        .answers(400),
    ]);
    edge.check(cases).await;
}

// ---------------------------------------------------------------------------
// Headers and metadata
// ---------------------------------------------------------------------------

#[tokio::test]
async fn headers_become_metadata_and_pecr_metadata_becomes_headers() {
    let edge = edge().await;
    let reply = edge
        .send(
            "POST",
            "/v1/sessions",
            &[
                ("content-type", "application/json"),
                ("x-pecr-principal-id", "alice"),
                ("x-pecr-local-auth-secret", "s3cret"),
                ("x-pecr-request-id", "req-1"),
                ("x-pecr-trace-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                ("authorization", "Bearer abc.def.ghi"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "vendor=1"),
                ("cookie", "session=1"),
                ("x-request-id", "other"),
            ],
            Some(&format!(r#"{{"budget":{BUDGET}}}"#)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = edge.recorder.last();
    for (key, value) in [
        ("x-pecr-principal-id", "alice"),
        ("x-pecr-local-auth-secret", "s3cret"),
        ("x-pecr-request-id", "req-1"),
        ("x-pecr-trace-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ("authorization", "Bearer abc.def.ghi"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=1"),
    ] {
        assert_eq!(
            seen.metadata.get(key),
            Some(&vec![value.to_owned()]),
            "{key}"
        );
    }
    assert!(!seen.metadata.contains_key("cookie"));
    assert!(!seen.metadata.contains_key("x-request-id"));
    // The REST client's address reaches the gRPC stack (loopback rules).
    assert_eq!(seen.remote.map(|addr| addr.ip().is_loopback()), Some(true));
    // Response metadata x-pecr-* → headers; other metadata stays inside.
    assert_eq!(
        reply
            .headers
            .get("x-pecr-session-token")
            .map(|v| v.as_bytes()),
        Some(&b"tok-1"[..])
    );
    assert!(reply.headers.get("x-internal").is_none());
    assert!(!reply.body.contains("tok-1"));
    assert!(
        reply
            .body
            .contains(r#""trace_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV""#)
    );

    // An identity header that is not visible ASCII still reaches the
    // service (whose auth check refuses it with 400); other such headers
    // are dropped.
    let raw = edge
        .raw(
            format!(
                "POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-pecr-principal-id: al\u{e9}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{{\"budget\":{BUDGET}}}",
                BUDGET.len() + 11
            )
            .as_bytes(),
        )
        .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn errors_are_error_response_bodies() {
    const RUN: &str = r#"{"query":"q"}"#;
    let edge = edge().await;
    let bad_body = "invalid JSON body";
    // PECR error statuses become their HTTP status and body.
    let mut cases: Vec<Case> = [
        (
            "err_400",
            400,
            r#"{"code":"ERR_INVALID_PARAMS","message":"operator not allowlisted","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#,
        ),
        (
            "err_401",
            401,
            r#"{"code":"ERR_POLICY_DENIED","message":"missing or invalid session token","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#,
        ),
        (
            "err_403",
            403,
            r#"{"code":"ERR_POLICY_DENIED","message":"policy denied","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#,
        ),
        (
            "err_404",
            404,
            r#"{"code":"ERR_INVALID_PARAMS","message":"unknown session_id","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#,
        ),
        (
            "err_409",
            409,
            r#"{"code":"ERR_INVALID_PARAMS","message":"session already finalized","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#,
        ),
        (
            "err_429",
            429,
            r#"{"code":"ERR_RATE_LIMITED","message":"rate limit exceeded for operator calls","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":true}"#,
        ),
        (
            "err_502",
            502,
            r#"{"code":"ERR_SOURCE_UNAVAILABLE","message":"gateway request failed","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":true}"#,
        ),
        (
            "err_503",
            503,
            r#"{"code":"ERR_SOURCE_UNAVAILABLE","message":"policy engine unavailable","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":true}"#,
        ),
        (
            "err_504",
            504,
            r#"{"code":"ERR_SOURCE_TIMEOUT","message":"policy engine timed out","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":true}"#,
        ),
        ("no_detail", 500, INTERNAL),
        // A set `detail` is carried as its JSON value.
        (
            "with_detail",
            409,
            r#"{"code":"ERR_INVALID_PARAMS","message":"claim_map_id already exists","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false,"detail":{"k":1,"f":1.0}}"#,
        ),
    ]
    .into_iter()
    .map(|(op_name, status, body)| {
        post(
            op_name,
            &format!("/v1/operators/{op_name}"),
            r#"{"session_id":"S-1","params":{}}"#,
        )
        .answers(status)
        .with(Check::Body(body.into()))
        .with(Check::JsonContentType)
    })
    .collect();
    // Malformed bodies are 400 error responses and never reach gRPC.
    for body in [
        "",
        "{",
        "not json",
        r#"{"query":"q"} trailing"#,
        "{\"query\":\"\u{0}\"}",
    ] {
        cases.push(
            post(format!("run body {body:?}"), "/v1/run", body)
                .refused_malformed()
                .with(Check::NotForwarded),
        );
    }
    for (body, field, reason) in [
        ("[]", None, "expected an object, found an array"),
        ("null", None, "expected an object, found null"),
        (
            r#"{"query":1}"#,
            Some("query"),
            "expected a string, found a number",
        ),
        (
            r#"{"query":"q","budget":[]}"#,
            Some("budget"),
            "expected an object, found an array",
        ),
        (
            r#"{"query":"q","query":"r"}"#,
            Some("query"),
            "duplicate field",
        ),
        (r#"{}"#, Some("query"), "missing field"),
    ] {
        cases.push(
            post(format!("run body {body:?}"), "/v1/run", body)
                .refused_naming(bad_body, field, reason)
                .with(Check::NotForwarded),
        );
    }
    cases.extend([
        post(
            "a gateway body missing a required member",
            "/v1/operators/echo",
            r#"{"session_id":"S-1"}"#,
        )
        .refused_naming(bad_body, Some("params"), "missing field")
        .with(Check::NotForwarded),
        raw(
            "invalid UTF-8 in the body",
            b"POST /v1/run HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 13\r\nconnection: close\r\n\r\n{\"query\":\"\xff\"}",
        )
        .refused_naming(bad_body, None, "body is not UTF-8")
        .with(Check::NotForwarded),
    ]);
    // The content type must be JSON.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("text/json"),
    ] {
        let mut headers = vec![("x-pecr-principal-id", "dev")];
        headers.extend(content_type.map(|value| ("content-type", value)));
        cases.push(
            send(
                format!("content type {content_type:?}"),
                "POST",
                "/v1/run",
                &headers,
                Some(RUN),
            )
            .refused(415, bad_body),
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "APPLICATION/JSON",
    ] {
        cases.push(send(
            format!("content type {content_type}"),
            "POST",
            "/v1/run",
            &[("content-type", content_type)],
            Some(RUN),
        ));
    }
    cases.push(
        send(
            "no body at all and no content type: the content type is checked first",
            "POST",
            "/v1/finalize",
            &[],
            None,
        )
        .answers(415),
    );
    edge.check(cases).await;
}

#[tokio::test]
async fn oversize_bodies_are_413_error_responses() {
    let edge = start(EdgeConfig {
        max_body_bytes: 64,
        ..EdgeConfig::default()
    })
    .await;
    let fits = r#"{"query":"q"}"#;
    assert_eq!(edge.post("/v1/run", fits).await.status, 200);
    let big = format!(r#"{{"query":"{}"}}"#, "x".repeat(100));
    let reply = edge.post("/v1/run", &big).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (413, invalid("invalid JSON body").as_str())
    );
    // Without a content-length the limit applies while reading.
    let chunk = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let raw = edge
        .raw(
            format!(
                "POST /v1/run HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}"
            )
            .as_bytes(),
        )
        .await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.ends_with(&invalid("invalid JSON body")), "{raw}");

    // The 2 MiB default.
    let default = start(EdgeConfig::default()).await;
    let huge = format!(r#"{{"query":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    assert_eq!(default.post("/v1/run", &huge).await.status, 413);
    let just = format!(r#"{{"query":"{}"}}"#, "x".repeat(2 * 1024 * 1024 - 12));
    assert_eq!(default.post("/v1/run", &just).await.status, 200);
}

#[tokio::test]
async fn the_router_refuses_bad_inputs_without_panicking() {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let routes = tonic::service::Routes::new(GatewayServiceServer::new(HarnessGateway {
        recorder: Recorder::default(),
    }));
    let error = pecr_edge::router(
        &pool,
        &["pecr.v1.Missing"],
        routes.clone(),
        EdgeConfig::default(),
    )
    .err();
    assert_eq!(
        error,
        Some(pecr_edge::EdgeError::UnknownService(
            "pecr.v1.Missing".into()
        ))
    );
    // The ledger has no HTTP rules: an empty router.
    assert!(
        pecr_edge::router(
            &pool,
            &[pecr_proto::service_names::LEDGER],
            routes,
            EdgeConfig::default()
        )
        .is_ok()
    );
}

#[tokio::test]
async fn the_api_fits_a_service_host() {
    // The config literal and the error renderer as a service host uses them.
    let config = EdgeConfig {
        max_body_bytes: 2 * 1024 * 1024,
        cors: pecr_edge::CorsOrigins::None,
        sse_keep_alive: std::time::Duration::from_secs(15),
    };
    assert_eq!(config, EdgeConfig::default());
    let authenticate = |secret: Option<&str>| match secret {
        Some(_) => Ok(()),
        None => Err(PecrError::new(
            ErrorCode::AuthRequired,
            "missing local auth secret",
        )),
    };
    let guarded: Result<(), axum::response::Response> =
        authenticate(None).map_err(pecr_edge::error_response);
    let response = guarded.expect_err("an error response");
    assert_eq!(response.status(), 401);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        body,
        r#"{"code":"ERR_AUTH_REQUIRED","message":"missing local auth secret","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#
    );

    // Merged beside admin routes, 404/405 stay empty and both parts answer.
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let routes = tonic::service::Routes::new(GatewayServiceServer::new(HarnessGateway {
        recorder: Recorder::default(),
    }));
    let rest = pecr_edge::router(&pool, &[GATEWAY], routes, config).expect("router");
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(rest);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let edge = Edge {
        addr,
        recorder: Recorder::default(),
        calls: Arc::new(AtomicUsize::new(0)),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    assert_eq!(edge.get("/healthz").await.body, "ok");
    let reply = edge
        .post("/v1/sessions", &format!(r#"{{"budget":{BUDGET}}}"#))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = edge.get("/v1/run").await;
    assert_eq!((reply.status, reply.body.as_str()), (404, ""));
    let reply = edge.get("/v1/sessions").await;
    assert_eq!((reply.status, reply.body.as_str()), (405, ""));
}

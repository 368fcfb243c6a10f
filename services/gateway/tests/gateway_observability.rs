//! What the gateway exposes about itself (spec 20 §2.3, §6.4, §12; scenarios
//! 32–34 and 45): caches and their counters, metrics with closed labels,
//! logs and metrics free of source content, and grpcurl through reflection.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use pecr_testkit::{http_get, http_request, tool_path};
use serde_json::{Value, json};

const TITLES: [&str; 2] = [
    "Restricted fixture document (restricted_1).",
    "Injection fixture document (injection_1).",
];

const OPERATORS: [&str; 7] = [
    "search",
    "list_versions",
    "fetch_span",
    "diff",
    "fetch_rows",
    "aggregate",
    "redact",
];

/// `object_id → evidence_unit_id` of a search result.
fn refs(result: &Value) -> Vec<(String, String)> {
    result["refs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["object_id"].as_str().unwrap_or_default().to_owned(),
                r["evidence_unit_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// The value of the metric line that starts with `series` exactly.
fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

#[tokio::test]
async fn search_results_are_cached_per_principal() {
    // Scenario 32. Search refs are filtered per object by policy
    // (decision 1), so support never sees restricted_1: the
    // cross-principal comparison runs on the objects both may read.
    let mesh = Mesh::start_with(
        Policy::Test,
        &[
            ("PECR_CACHE_MAX_ENTRIES", "128".into()),
            ("PECR_CACHE_TTL_MS", "60000".into()),
        ],
    )
    .await;
    let mut dev = mesh.session("dev").await;
    let mut support = mesh.session("support").await;
    let restricted = json!({"query": "Restricted fixture document", "limit": 50});
    let shared = json!({"query": "fixture document", "limit": 50});

    let mut results = Vec::new();
    for session in [&mut dev, &mut support] {
        let mut per_query = Vec::new();
        for params in [&restricted, &shared] {
            let first = session.op("search", params.clone()).await.expect("search");
            let again = session.op("search", params.clone()).await.expect("repeat");
            assert_eq!(
                first, again,
                "{}: repeat results are identical",
                session.principal
            );
            per_query.push(refs(&first));
        }
        results.push(per_query);
    }
    let (dev_refs, support_refs) = (&results[0], &results[1]);
    let objects = |refs: &[(String, String)]| -> Vec<String> {
        refs.iter().map(|(object, _)| object.clone()).collect()
    };
    assert_eq!(objects(&dev_refs[0]), ["restricted/restricted_1.txt"]);
    assert!(
        support_refs[0].is_empty(),
        "support may not read restricted/: {support_refs:?}"
    );
    // Ranked (BM25): each file holds both terms once, the shortest first.
    assert_eq!(
        objects(&dev_refs[1]),
        [
            "public/public_1.txt",
            "restricted/restricted_1.txt",
            "injection/injection_1.txt"
        ]
    );
    assert_eq!(
        objects(&support_refs[1]),
        ["public/public_1.txt", "injection/injection_1.txt"]
    );
    for (object, support_id) in &support_refs[1] {
        let dev_id = dev_refs[1]
            .iter()
            .find(|(o, _)| o == object)
            .map(|(_, id)| id)
            .expect("dev sees it too");
        assert_ne!(
            dev_id, support_id,
            "{object}: evidence ids differ between principals"
        );
    }
    // A ref's id is the id a whole-file fetch_span gets.
    let unit = dev
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("fetch_span");
    let public_ref = dev_refs[1]
        .iter()
        .find(|(o, _)| o == "public/public_1.txt")
        .map(|(_, id)| id.clone());
    assert_eq!(
        unit["evidence_unit_id"].as_str().map(str::to_owned),
        public_ref
    );

    let metrics = mesh.metrics().await;
    let hits = metric_value(
        &metrics,
        r#"pecr_gateway_operator_cache_hits_total{operator_name="search"}"#,
    )
    .unwrap_or_else(|| panic!("no search cache hits in\n{metrics}"));
    assert!(hits >= 2.0, "{hits}");

    // The ledger tells first calls from cache hits.
    for session in [&dev, &support] {
        let hits: Vec<Value> = mesh
            .events(&session.trace_id)
            .await
            .into_iter()
            .filter(|(t, p)| t == "OPERATOR_CALL" && p["op_name"] == "search")
            .map(|(_, p)| p["cache_hit"].clone())
            .collect();
        assert_eq!(
            hits,
            [json!(false), json!(true), json!(false), json!(true)],
            "{}",
            session.principal
        );
    }
}

#[tokio::test]
async fn logs_and_metrics_never_carry_source_content() {
    // Scenario 33.
    let mut mesh = Mesh::start(Policy::Test).await;
    let mut dev = mesh.session("dev").await;
    let mut seen = String::new();
    let mut ids = Vec::new();
    for object_id in ["restricted/restricted_1.txt", "injection/injection_1.txt"] {
        let unit = dev
            .op("fetch_span", json!({"object_id": object_id}))
            .await
            .expect("fetch_span");
        ids.push(
            unit["evidence_unit_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        seen.push_str(&unit.to_string());
    }
    for (view, field) in [
        ("safe_customer_view_admin", "admin_note"),
        ("safe_customer_view_support", "support_note"),
    ] {
        let rows = dev
            .op(
                "fetch_rows",
                json!({"view_id": view, "fields": [field], "filter_spec": {"customer_id": "cust_public_1"}}),
            )
            .await
            .expect("fetch_rows");
        for unit in rows.as_array().into_iter().flatten() {
            ids.push(
                unit["evidence_unit_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        seen.push_str(&rows.to_string());
    }
    let canaries = [
        "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f",
        "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c",
        "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76",
        "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f",
    ];
    for text in canaries.iter().chain(TITLES.iter()) {
        assert!(seen.contains(text), "the reads really returned {text}");
    }
    assert_eq!(ids.len(), 4);

    dev.finalize(vec![]).await.expect("finalize");
    let metrics = mesh.metrics().await;
    let logs = mesh.logs_until("gateway.finalize").await;
    assert!(logs.contains(&dev.trace_id), "the calls were logged");
    for (what, text) in [("logs", &logs), ("metrics", &metrics)] {
        for secret in canaries.iter().chain(TITLES.iter()) {
            assert!(!text.contains(secret), "{what} contain {secret}");
        }
        assert_no_canary(what, text);
        for id in &ids {
            assert!(
                !text.contains(id.as_str()),
                "{what} contain evidence id {id}"
            );
        }
        assert!(
            !text.contains("cust_public_1"),
            "{what} contain a parameter value"
        );
    }
}

#[tokio::test]
async fn metrics_cover_every_route_with_closed_labels() {
    // Scenario 34.
    let mut mesh = Mesh::start(Policy::Test).await;
    let mut dev = mesh.session("dev").await;
    let unit = dev
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("fetch_span");
    let id = unit["evidence_unit_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let finalized = dev
        .finalize(vec![claim(
            "public doc retrieved",
            pecr_proto::v1::claim::Status::Supported,
            &[&id],
        )])
        .await
        .expect("finalize");
    assert_eq!(
        finalized.terminal_mode,
        pecr_proto::v1::TerminalMode::Supported as i32
    );
    // Unknown operator names, over REST (the raw path segment) and gRPC.
    let rest = mesh.rest_session("dev", budget_json(10, 1024)).await;
    for name in ["zz_unknown_op_7", "drop_database"] {
        let answer = mesh.rest_op(&rest, name, json!({})).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
    }
    dev.op("Fetch_Span_Shouty", json!({}))
        .await
        .expect_err("finalized and unknown");

    let metrics = mesh.metrics().await;
    for name in [
        "pecr_gateway_terminal_modes_total{",
        "pecr_gateway_operator_calls_total{",
        "pecr_gateway_budget_violations_total ",
        "pecr_gateway_http_request_duration_seconds_bucket{",
        "pecr_gateway_http_requests_total{",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    // Never moved, so not exported (decision 7).
    for name in [
        "pecr_gateway_staleness_errors_total",
        "pecr_gateway_leakage_detections_total",
    ] {
        assert!(!metrics.contains(name), "{name} is exported");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pecr_gateway_terminal_modes_total{")
                && l.contains(r#"route="/v1/finalize""#)
                && l.contains(r#"terminal_mode="SUPPORTED""#)),
        "{metrics}"
    );
    let labels: BTreeSet<&str> = metrics
        .split(r#"operator_name=""#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        labels.contains("unknown") && labels.contains("fetch_span"),
        "{labels:?}"
    );
    for label in &labels {
        assert!(
            *label == "unknown" || OPERATORS.contains(label),
            "operator_name={label:?} is outside the closed set"
        );
    }
    for raw in ["zz_unknown_op_7", "drop_database", "Fetch_Span_Shouty"] {
        assert!(!metrics.contains(raw), "{raw} reached /metrics");
    }
    for route in [
        r#"route="/v1/sessions""#,
        r#"route="/v1/operators""#,
        r#"route="/v1/finalize""#,
    ] {
        assert!(metrics.contains(route), "{route}");
    }
    assert!(
        !metrics.contains("route=\"/v1/operators/"),
        "the route label has no operator name"
    );

    // Ledger and logs for the same session.
    let events = mesh.events(&dev.trace_id).await;
    for kind in [
        "POLICY_DECISION",
        "OPERATOR_CALL",
        "EVIDENCE_EMITTED",
        "FINALIZE_RESULT",
    ] {
        assert!(events.iter().any(|(t, _)| t == kind), "{kind}: {events:?}");
    }
    let logs = mesh.logs_until("gateway.finalize").await;
    for field in ["session_id", "principal_id", "policy_snapshot_id"] {
        assert!(logs.contains(field), "logs lack {field}");
    }
}

#[tokio::test]
async fn metrics_auth_follows_the_setting() {
    // Scenario 45: loopback bind, setting unset → open.
    let mesh = Mesh::start(Policy::Test).await;
    let answer = http_get(&mesh.url("/metrics")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/plain; version=0.0.4");
    assert!(
        answer
            .body
            .contains("pecr_gateway_budget_violations_total 0")
    );
    drop(mesh);

    let mesh = Mesh::start_with(Policy::Test, &[("PECR_METRICS_REQUIRE_AUTH", "1".into())]).await;
    let url = mesh.url("/metrics");
    let answer = http_get(&url).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            401,
            error_body(
                "ERR_POLICY_DENIED",
                "missing x-pecr-principal-id header",
                "INSUFFICIENT_PERMISSION",
                false
            )
            .as_str()
        )
    );
    assert!(answer.content_type.starts_with("application/json"));
    let answer = http_request("GET", &url, &[("x-pecr-principal-id", "guest")], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("pecr_gateway_budget_violations_total"));
    // Liveness and readiness stay open.
    let health = http_get(&mesh.url("/healthz")).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    eventually("ready", Duration::from_secs(10), || {
        let url = mesh.url("/readyz");
        async move { (http_get(&url).await.status == 200).then_some(()) }
    })
    .await;
    drop(mesh);

    // With a shared secret, /metrics needs it too.
    let mesh = Mesh::start_with(
        Policy::Test,
        &[
            ("PECR_METRICS_REQUIRE_AUTH", "true".into()),
            ("PECR_LOCAL_AUTH_SHARED_SECRET", "s3cret".into()),
        ],
    )
    .await;
    let url = mesh.url("/metrics");
    let answer = http_request("GET", &url, &[("x-pecr-principal-id", "dev")], None).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            401,
            error_body(
                "ERR_AUTH_REQUIRED",
                "missing local auth secret",
                "INSUFFICIENT_PERMISSION",
                false
            )
            .as_str()
        )
    );
    let answer = http_request(
        "GET",
        &url,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-local-auth-secret", "nope"),
        ],
        None,
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["code"], "ERR_AUTH_INVALID");
    let answer = http_request(
        "GET",
        &url,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-local-auth-secret", "s3cret"),
        ],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Runs grpcurl against the gateway; panics unless it exits 0.
fn grpcurl(mesh: &Mesh, headers: &[String], data: &Value, method: &str) -> String {
    let mut command = std::process::Command::new(tool_path("grpcurl"));
    command.args(["-plaintext", "-v"]);
    for header in headers {
        command.args(["-H", header]);
    }
    command
        .args(["-d", &data.to_string()])
        .arg(mesh.gateway.grpc_addr.to_string())
        .arg(format!("pecr.v1.GatewayService/{method}"));
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("run grpcurl: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {method} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The JSON after grpcurl's "Response contents:" line.
fn response_contents(output: &str) -> Value {
    let json = output
        .split("Response contents:")
        .nth(1)
        .and_then(|rest| rest.split("\nResponse trailers received:").next())
        .unwrap_or_else(|| panic!("no response in:\n{output}"));
    serde_json::from_str(json.trim()).unwrap_or_else(|err| panic!("{err}: {json}"))
}

#[tokio::test]
async fn grpcurl_opens_a_session_and_reads_rows_through_reflection() {
    let mesh = Mesh::start(Policy::Test).await;
    let principal = "x-pecr-principal-id: dev".to_owned();
    let created = grpcurl(
        &mesh,
        std::slice::from_ref(&principal),
        &json!({"budget": {"max_operator_calls": 5, "max_bytes": 1_048_576, "max_wallclock_ms": 1000, "max_recursion_depth": 3}}),
        "CreateSession",
    );
    let token = created
        .lines()
        .find_map(|line| line.trim().strip_prefix("x-pecr-session-token: "))
        .unwrap_or_else(|| panic!("no session token header in:\n{created}"))
        .trim()
        .to_owned();
    let session = response_contents(&created);
    let session_id = session["sessionId"]
        .as_str()
        .or_else(|| session["session_id"].as_str())
        .unwrap_or_else(|| panic!("no session id in {session}"))
        .to_owned();

    let params = json!({"view_id": "safe_customer_view_public", "fields": ["status"], "filter_spec": {"customer_id": "cust_public_1"}});
    let called = grpcurl(
        &mesh,
        &[principal, format!("x-pecr-session-token: {token}")],
        &json!({"op_name": "fetch_rows", "session_id": session_id, "params": params.to_string()}),
        "CallOperator",
    );
    let response = response_contents(&called);
    let result = response["result"]
        .as_str()
        .unwrap_or_else(|| panic!("result is JSON text over gRPC: {response}"));
    assert!(result.contains("db_row"), "{result}");
    let units: Value = serde_json::from_str(result).expect("result text is JSON");
    assert_eq!(units[0]["content"], json!({"status": "active"}));
    assert_eq!(
        response["terminalMode"]
            .as_str()
            .or_else(|| response["terminal_mode"].as_str()),
        Some("SUPPORTED")
    );
}

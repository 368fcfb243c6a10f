//! The controller's REST edge with a plain HTTP client (spec 30 §16
//! scenarios 10, 14, 36, 39–44): status codes, error bodies, replays,
//! evaluations, metrics, readiness and logs.

use pecr_mesh_tests::{Mesh, MeshOptions, assert_no_canary};
use pecr_testkit::{http_get, http_post_json, http_request};
use serde_json::{Value, json};

async fn post_run(mesh: &Mesh, headers: &[(&str, &str)], body: &Value) -> pecr_testkit::HttpAnswer {
    http_post_json(&mesh.url("/v1/run"), headers, &body.to_string()).await
}

async fn get(mesh: &Mesh, principal: &str, path: &str) -> pecr_testkit::HttpAnswer {
    http_request(
        "GET",
        &mesh.url(path),
        &[("x-pecr-principal-id", principal)],
        None,
    )
    .await
}

fn assert_error(answer: &pecr_testkit::HttpAnswer, status: u16, code: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["code"], code, "{}", answer.body);
    body
}

#[tokio::test]
async fn scenario_10_invalid_budget_is_400_with_the_reason() {
    let mesh = Mesh::start().await;
    let body = json!({"query": "q", "budget": {"max_operator_calls": 1, "max_bytes": 67108865, "max_wallclock_ms": 1, "max_recursion_depth": 1}});
    let answer = post_run(&mesh, &[("x-pecr-principal-id", "dev")], &body).await;
    let error = assert_error(&answer, 400, "ERR_INVALID_PARAMS");
    assert_eq!(error["message"], "invalid budget: max_bytes out of range");
    assert_eq!(error["terminal_mode_hint"], "INSUFFICIENT_EVIDENCE");
    assert_eq!(error["retryable"], false);
    // Unknown budget fields are refused; unknown top-level fields are ignored.
    let unknown = json!({"query": "q", "budget": {"max_operator_calls": 1, "max_bytes": 1, "max_wallclock_ms": 1, "max_recursion_depth": 1, "surprise": 1}});
    let answer = post_run(&mesh, &[("x-pecr-principal-id", "dev")], &unknown).await;
    assert_error(&answer, 400, "ERR_INVALID_PARAMS");
    let extra = json!({"query": "smoke", "future_field": true});
    let answer = post_run(&mesh, &[("x-pecr-principal-id", "dev")], &extra).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Framework rejections keep the ErrorResponse envelope.
    let answer = http_post_json(
        &mesh.url("/v1/run"),
        &[("x-pecr-principal-id", "dev")],
        "{not json",
    )
    .await;
    assert_error(&answer, 400, "ERR_INVALID_PARAMS");
}

/// What a run answers that does not change from one run to the next.
fn run_outcome(answer: &pecr_testkit::HttpAnswer) -> Value {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let mut run = answer.json();
    let object = run.as_object_mut().expect("a JSON object");
    for per_run in ["trace_id", "run_id"] {
        object.remove(per_run);
    }
    if let Some(map) = object.get_mut("claim_map").and_then(Value::as_object_mut) {
        map.remove("claim_map_id");
    }
    run
}

#[tokio::test]
async fn proto3_json_bodies_answer_as_proto_names_do() {
    let mesh = Mesh::start().await;
    let dev = [("x-pecr-principal-id", "dev")];
    let query = "What is the customer status and plan tier?";
    let proto_names = json!({"query": query, "budget": {"max_operator_calls": 10, "max_bytes": 1048576, "max_wallclock_ms": 30000, "max_recursion_depth": 3, "max_parallelism": 2}});
    // lowerCamelCase names and 64-bit integers as strings, as proto3 JSON
    // writers send them.
    let json_names = json!({"query": query, "budget": {"maxOperatorCalls": 10, "maxBytes": "1048576", "maxWallclockMs": "30000", "maxRecursionDepth": 3, "maxParallelism": 2}});
    let expected = run_outcome(&post_run(&mesh, &dev, &proto_names).await);
    assert_eq!(expected["terminal_mode"], "SUPPORTED", "{expected}");
    let answer = post_run(&mesh, &dev, &json_names).await;
    // The answer is written as always: proto names, 64-bit numbers.
    assert!(!answer.body.contains("terminalMode"), "{}", answer.body);
    assert_eq!(run_outcome(&answer), expected);

    // The budget is read, not ignored: its values reach the controller's
    // validation, and a type error names the member as the client wrote it.
    let over = json!({"query": query, "budget": {"maxOperatorCalls": 1, "maxBytes": "67108865", "maxWallclockMs": 1, "maxRecursionDepth": 1}});
    let error = assert_error(
        &post_run(&mesh, &dev, &over).await,
        400,
        "ERR_INVALID_PARAMS",
    );
    assert_eq!(error["message"], "invalid budget: max_bytes out of range");
    let typed = json!({"query": query, "budget": {"maxOperatorCalls": 1, "maxBytes": "1e3", "maxWallclockMs": 1, "maxRecursionDepth": 1}});
    let error = assert_error(
        &post_run(&mesh, &dev, &typed).await,
        400,
        "ERR_INVALID_PARAMS",
    );
    assert_eq!(error["message"], "invalid JSON body");
    assert_eq!(
        error["detail"],
        json!({"field": "budget.maxBytes", "reason": "expected an integer"})
    );
    // The same field under both names is refused, as protobuf's parsers do.
    let twice = r#"{"query":"q","budget":{"max_operator_calls":1,"maxOperatorCalls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}}"#;
    let answer = http_post_json(&mesh.url("/v1/run"), &dev, twice).await;
    let error = assert_error(&answer, 400, "ERR_INVALID_PARAMS");
    assert_eq!(
        error["detail"],
        json!({"field": "budget.maxOperatorCalls", "reason": "duplicate field"})
    );
}

#[tokio::test]
async fn scenario_14_runs_are_rate_limited_per_principal() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![("PECR_RATE_LIMIT_RUN_PER_WINDOW", "2".into())],
        ..MeshOptions::default()
    })
    .await;
    let body = json!({"query": "smoke"});
    for _ in 0..2 {
        let answer = post_run(&mesh, &[("x-pecr-principal-id", "dev")], &body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let answer = post_run(&mesh, &[("x-pecr-principal-id", "dev")], &body).await;
    let error = assert_error(&answer, 429, "ERR_RATE_LIMITED");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["terminal_mode_hint"], "INSUFFICIENT_PERMISSION");
    assert!(answer.header("retry-after").is_none());
    // Another principal has its own window.
    let answer = post_run(&mesh, &[("x-pecr-principal-id", "support")], &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn scenario_36_replay_and_evaluation_round_trip() {
    let mesh = Mesh::start().await;
    let run = post_run(
        &mesh,
        &[("x-pecr-principal-id", "dev")],
        &json!({"query": "smoke"}),
    )
    .await;
    assert_eq!(run.status, 200, "{}", run.body);
    let run_id = run.json()["run_id"].as_str().expect("run_id").to_owned();

    let list = get(&mesh, "dev", "/v1/replays?limit=10").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let replays = list.json()["replays"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0]["run_id"], run_id.as_str());

    let bundle = get(&mesh, "dev", &format!("/v1/replays/{run_id}")).await;
    assert_eq!(bundle.status, 200, "{}", bundle.body);
    let bundle = bundle.json();
    assert_eq!(bundle["metadata"]["run_id"], run_id.as_str());
    assert_eq!(bundle["query"], "smoke");
    assert_eq!(
        bundle["metadata"]["principal_id_hash"],
        "5db1c5e4410a534d9875292f115306a3a6e3ea5f0677032ec9e84f69bf35cda7"
    );

    let submission = json!({"evaluation_name": "smoke-eval", "replay_ids": [run_id], "min_quality_score": 0, "max_source_unavailable_rate": 1});
    let evaluation = http_post_json(
        &mesh.url("/v1/evaluations"),
        &[("x-pecr-principal-id", "dev")],
        &submission.to_string(),
    )
    .await;
    assert_eq!(evaluation.status, 200, "{}", evaluation.body);
    let evaluation = evaluation.json();
    assert_eq!(evaluation["replay_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(evaluation["overall_pass"], true);
    let id = evaluation["evaluation_id"].as_str().expect("id").to_owned();

    let fetched = get(&mesh, "dev", &format!("/v1/evaluations/{id}")).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.json()["evaluation_id"], id.as_str());

    let cards = get(&mesh, "dev", "/v1/evaluations/scorecards?limit=10").await;
    assert_eq!(cards.status, 200, "{}", cards.body);
    let cards = cards.json()["scorecards"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["engine_mode"], "baseline");
    assert_eq!(cards[0]["run_count"], 1);

    // Another principal sees none of it.
    assert_error(
        &get(&mesh, "support", &format!("/v1/replays/{run_id}")).await,
        404,
        "ERR_REPLAY_NOT_FOUND",
    );
    assert_error(
        &get(&mesh, "support", &format!("/v1/evaluations/{id}")).await,
        404,
        "ERR_EVALUATION_NOT_FOUND",
    );
    let theirs = get(&mesh, "support", "/v1/replays").await.json();
    assert_eq!(theirs["replays"], json!([]));
}

#[tokio::test]
async fn scenarios_38_to_40_evaluation_rules_and_list_limits() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![("PECR_REPLAY_LIST_LIMIT", "2".into())],
        ..MeshOptions::default()
    })
    .await;
    let mut run_ids = Vec::new();
    for _ in 0..3 {
        let run = post_run(
            &mesh,
            &[("x-pecr-principal-id", "dev")],
            &json!({"query": "smoke"}),
        )
        .await;
        run_ids.push(run.json()["run_id"].as_str().expect("run_id").to_owned());
    }
    // 40: limit 0 is 1; an oversized limit is capped at PECR_REPLAY_LIST_LIMIT.
    let one = get(&mesh, "dev", "/v1/replays?limit=0").await.json();
    assert_eq!(one["replays"].as_array().map(Vec::len), Some(1));
    let capped = get(&mesh, "dev", "/v1/replays?limit=100000").await.json();
    assert_eq!(capped["replays"].as_array().map(Vec::len), Some(2));
    let bad = get(&mesh, "dev", "/v1/replays?limit=abc").await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // 38: a missing id fails the evaluation; the name is kept.
    let submission = json!({"evaluation_name": "strict", "replay_ids": [run_ids[0], "missing-run-id"], "min_quality_score": 99.9, "max_source_unavailable_rate": 0});
    let evaluation = http_post_json(
        &mesh.url("/v1/evaluations"),
        &[("x-pecr-principal-id", "dev")],
        &submission.to_string(),
    )
    .await;
    assert_eq!(evaluation.status, 200, "{}", evaluation.body);
    let evaluation = evaluation.json();
    assert_eq!(evaluation["missing_replay_ids"], json!(["missing-run-id"]));
    assert_eq!(evaluation["overall_pass"], false);
    let id = evaluation["evaluation_id"].as_str().expect("id");
    let fetched = get(&mesh, "dev", &format!("/v1/evaluations/{id}"))
        .await
        .json();
    assert_eq!(fetched["evaluation_name"], "strict");

    // 39: threshold ranges are checked for an authenticated caller (the
    // request stack authenticates first: an anonymous caller gets 401 and
    // learns nothing of the validation); a blank name likewise.
    let out_of_range = json!({"evaluation_name": "x", "min_quality_score": 101});
    let unchecked =
        http_post_json(&mesh.url("/v1/evaluations"), &[], &out_of_range.to_string()).await;
    assert_error(&unchecked, 401, "ERR_POLICY_DENIED");
    for (body, expected) in [
        (
            json!({"evaluation_name": "x", "min_quality_score": 101}),
            "min_quality_score",
        ),
        (
            json!({"evaluation_name": "x", "max_source_unavailable_rate": 1.5}),
            "max_source_unavailable_rate",
        ),
    ] {
        let answer = http_post_json(
            &mesh.url("/v1/evaluations"),
            &[("x-pecr-principal-id", "dev")],
            &body.to_string(),
        )
        .await;
        let error = assert_error(&answer, 400, "ERR_INVALID_PARAMS");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(expected),
            "{error}"
        );
    }
    let blank = http_post_json(
        &mesh.url("/v1/evaluations"),
        &[("x-pecr-principal-id", "dev")],
        r#"{"evaluation_name":"  "}"#,
    )
    .await;
    assert_error(&blank, 400, "ERR_INVALID_PARAMS");
    let anonymous = http_post_json(
        &mesh.url("/v1/evaluations"),
        &[],
        r#"{"evaluation_name":"x"}"#,
    )
    .await;
    assert_error(&anonymous, 401, "ERR_POLICY_DENIED");
    // An empty selection scores the caller's newest runs (capped at the list limit).
    let latest = http_post_json(
        &mesh.url("/v1/evaluations"),
        &[("x-pecr-principal-id", "dev")],
        r#"{"evaluation_name":"latest"}"#,
    )
    .await
    .json();
    assert_eq!(latest["replay_ids"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn scenarios_41_42_smoke_run_logs_and_metrics() {
    let mut mesh = Mesh::start().await;
    let answer = post_run(
        &mesh,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-request-id", "req_smoke_1"),
        ],
        &json!({"query": "smoke"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["terminal_mode"], "INSUFFICIENT_EVIDENCE");
    let trace_id = body["trace_id"].as_str().expect("trace id").to_owned();
    assert_eq!(trace_id.len(), 26);

    let metrics = http_get(&mesh.url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    for needle in [
        "pecr_controller_terminal_modes_total{",
        "pecr_controller_loop_iterations_total ",
        "pecr_controller_budget_violations_total ",
        "pecr_controller_http_request_duration_seconds_bucket{",
        "pecr_controller_budget_stop_reasons_total{reason=\"plan_complete\"} 1",
        "pecr_controller_http_requests_total{method=\"POST\",route=\"/v1/run\",status=\"200\"} 1",
    ] {
        assert!(
            metrics.body.contains(needle),
            "missing {needle}:\n{}",
            metrics.body
        );
    }

    let logs = mesh.logs();
    let joined = logs.join("\n");
    assert_no_canary("logs", &joined);
    let loop_line = logs
        .iter()
        .find(|line| line.contains("controller.context_loop_completed"))
        .unwrap_or_else(|| panic!("no loop line in:\n{joined}"));
    let line: Value = serde_json::from_str(loop_line).expect("JSON log line");
    let fields = &line["fields"];
    assert_eq!(fields["trace_id"], trace_id.as_str());
    assert_eq!(fields["request_id"], "req_smoke_1");
    assert_eq!(fields["stop_reason"], "plan_complete");
    assert_eq!(fields["principal_id"], "dev");
    assert!(
        fields["session_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(
        fields["policy_snapshot_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn scenario_43_readiness_follows_the_gateway() {
    let mut mesh = Mesh::start().await;
    let ready = http_get(&mesh.url("/readyz")).await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (
            200,
            r#"{"checks":{"auth":true,"gateway":true},"status":"ready"}"#
        )
    );
    mesh.stop_gateway().await;
    let down = http_get(&mesh.url("/readyz")).await;
    assert_eq!(
        (down.status, down.body.as_str()),
        (
            503,
            r#"{"checks":{"auth":true,"gateway":false},"status":"not_ready"}"#
        )
    );
    assert_eq!(http_get(&mesh.url("/healthz")).await.status, 200);
}

#[tokio::test]
async fn scenario_44_shared_secret() {
    let secret = vec![("PECR_LOCAL_AUTH_SHARED_SECRET", "s3cret".to_owned())];
    let mesh = Mesh::start_with(MeshOptions {
        gateway: secret.clone(),
        controller: secret,
    })
    .await;
    let body = json!({"query": "smoke"});
    let missing = post_run(&mesh, &[("x-pecr-principal-id", "dev")], &body).await;
    assert_error(&missing, 401, "ERR_AUTH_REQUIRED");
    let wrong = post_run(
        &mesh,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-local-auth-secret", "nope"),
        ],
        &body,
    )
    .await;
    assert_error(&wrong, 401, "ERR_AUTH_INVALID");
    let anonymous = post_run(&mesh, &[("x-pecr-local-auth-secret", "s3cret")], &body).await;
    assert_error(&anonymous, 401, "ERR_POLICY_DENIED");
    // With the secret, the controller forwards it and the gateway accepts the run.
    let ok = post_run(
        &mesh,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-local-auth-secret", "s3cret"),
        ],
        &body,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn correlation_ids_are_sanitized_and_the_trace_id_is_kept() {
    let mut mesh = Mesh::start().await;
    let trace = "01j9z8y7x6w5v4t3s2r1q0p9n8";
    let answer = post_run(
        &mesh,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-trace-id", trace),
            ("x-pecr-request-id", "req 1/2"),
        ],
        &json!({"query": "smoke"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["trace_id"], trace.to_uppercase());
    let logs = mesh.logs().join("\n");
    assert!(logs.contains("\"request_id\":\"req12\""), "{logs}");
    // Not a ULID: a fresh trace id instead.
    let answer = post_run(
        &mesh,
        &[
            ("x-pecr-principal-id", "dev"),
            ("x-pecr-trace-id", "not-a-ulid"),
        ],
        &json!({"query": "smoke"}),
    )
    .await;
    let fresh = answer.json()["trace_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(fresh.len(), 26);
    assert_ne!(fresh, "not-a-ulid");
}

#[tokio::test]
async fn metrics_can_require_the_api_credentials() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![("PECR_METRICS_REQUIRE_AUTH", "1".into())],
        ..MeshOptions::default()
    })
    .await;
    let anonymous = http_get(&mesh.url("/metrics")).await;
    assert_error(&anonymous, 401, "ERR_POLICY_DENIED");
    let scraper = http_request(
        "GET",
        &mesh.url("/metrics"),
        &[("x-pecr-principal-id", "prometheus")],
        None,
    )
    .await;
    assert_eq!(scraper.status, 200);
    assert!(
        scraper.body.contains("pecr_controller_inflight_ops 0"),
        "{}",
        scraper.body
    );
    // Health and readiness stay open.
    assert_eq!(http_get(&mesh.url("/healthz")).await.status, 200);
}

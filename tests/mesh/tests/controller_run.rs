//! `ControllerService/Run` over gRPC against the real gateway and fixtures
//! (spec 30 §16 scenarios 10, 15–22): budgets, the baseline plan, operator
//! failures, gateway loss, and the answer's terminal modes.

use pecr_errors::ErrorCode;
use pecr_mesh_tests::{Mesh, MeshOptions, budget, error_of, replay, roomy_budget, run_request};
use pecr_proto::v1::{self, TerminalMode};

fn mode(response: &v1::RunResponse) -> TerminalMode {
    TerminalMode::try_from(response.terminal_mode).unwrap_or(TerminalMode::Unspecified)
}

async fn run(mesh: &Mesh, principal: &str, query: &str, budget: v1::Budget) -> v1::RunResponse {
    mesh.client()
        .await
        .run(run_request(principal, query, Some(budget)))
        .await
        .unwrap_or_else(|status| panic!("run {query:?}: {status:?}"))
        .into_inner()
}

/// (calls, depth, bytes) recorded in the run's replay.
async fn usage(mesh: &Mesh, principal: &str, response: &v1::RunResponse) -> (u32, u32, u64) {
    let bundle = replay(&mut mesh.client().await, principal, &response.run_id).await;
    (
        bundle.operator_calls_used,
        bundle.depth_used,
        bundle.bytes_used,
    )
}

#[tokio::test]
async fn scenario_10_budgets_outside_the_hard_limits_are_invalid_params() {
    let mesh = Mesh::start().await;
    let mut client = mesh.client().await;
    let cases = [
        (
            budget(10, 67_108_865, 1000, 3, None),
            "invalid budget: max_bytes out of range",
        ),
        (
            budget(10, 1024, 300_001, 3, None),
            "invalid budget: max_wallclock_ms out of range",
        ),
        (
            budget(10, 1024, 1000, 3, Some(0)),
            "invalid budget: max_parallelism out of range",
        ),
        (
            budget(10, 1024, 1000, 3, Some(257)),
            "invalid budget: max_parallelism out of range",
        ),
        (
            budget(10_001, 1024, 1000, 3, None),
            "invalid budget: max_operator_calls out of range",
        ),
        (
            budget(10, 1024, 1000, 21, None),
            "invalid budget: max_recursion_depth out of range",
        ),
    ];
    for (bad, message) in cases {
        let status = client
            .run(run_request("dev", "q", Some(bad)))
            .await
            .expect_err("invalid budget");
        let error = error_of(&status);
        assert_eq!(
            (
                error.code,
                error.http_status,
                error.message.as_str(),
                error.retryable
            ),
            (ErrorCode::InvalidParams, 400, message, false)
        );
        assert_eq!(error.hint, TerminalMode::InsufficientEvidence);
    }
    // The largest budget the limits allow is accepted.
    let widest = run(
        &mesh,
        "dev",
        "smoke",
        budget(10_000, 67_108_864, 0, 20, Some(256)),
    )
    .await;
    assert_eq!(mode(&widest), TerminalMode::InsufficientEvidence);
}

#[tokio::test]
async fn scenarios_15_to_18_and_20_the_default_plan_under_budgets() {
    let mesh = Mesh::start().await;
    // 15: one call allowed: list_versions, then the call budget stops the loop.
    let one_call = run(
        &mesh,
        "dev",
        "smoke",
        budget(1, 1_048_576, 10_000, 10, None),
    )
    .await;
    assert_eq!(one_call.stop_reason, "budget_max_operator_calls");
    assert_eq!(usage(&mesh, "dev", &one_call).await.0, 1);
    // 16: depth 1 allows one step.
    let shallow = run(
        &mesh,
        "dev",
        "smoke",
        budget(100, 1_048_576, 10_000, 1, None),
    )
    .await;
    assert_eq!(shallow.stop_reason, "budget_max_recursion_depth");
    let (calls, depth, _) = usage(&mesh, "dev", &shallow).await;
    assert_eq!((calls, depth), (1, 1));
    // 17: the whole plan; a search without refs makes the fan-out a no-op.
    let whole = run(
        &mesh,
        "dev",
        "smoke",
        budget(100, 1_048_576, 10_000, 4, None),
    )
    .await;
    assert_eq!(whole.stop_reason, "plan_complete");
    let (calls, depth, _) = usage(&mesh, "dev", &whole).await;
    assert_eq!((calls, depth), (3, 4));
    // 18: an unbounded wall clock behaves the same.
    let unbounded = run(&mesh, "dev", "smoke", budget(100, 1_048_576, 0, 4, None)).await;
    assert_eq!(unbounded.stop_reason, "plan_complete");
    let (calls, depth, _) = usage(&mesh, "dev", &unbounded).await;
    assert_eq!((calls, depth), (3, 4));
    // 20: a blank query skips search but spends its depth unit.
    let blank = run(&mesh, "dev", "   ", roomy_budget()).await;
    assert_eq!(blank.stop_reason, "plan_complete");
    let (calls, depth, _) = usage(&mesh, "dev", &blank).await;
    assert_eq!((calls, depth), (2, 4));
    assert_eq!(mode(&blank), TerminalMode::InsufficientEvidence);
}

#[tokio::test]
async fn exact_fit_call_budget_is_not_a_violation() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![(
            "PECR_BASELINE_PLAN",
            r#"[{"kind":"operator","op_name":"search","params":{"query":"$query","limit":2}},{"kind":"search_ref_fetch_span","max_refs":2}]"#.into(),
        )],
        ..MeshOptions::default()
    })
    .await;
    let exact = run(
        &mesh,
        "dev",
        "fixture document",
        budget(3, 1_048_576, 10_000, 10, Some(2)),
    )
    .await;
    assert_eq!(exact.stop_reason, "plan_complete");
    assert_eq!(usage(&mesh, "dev", &exact).await.0, 3);
    let short = run(
        &mesh,
        "dev",
        "fixture document",
        budget(2, 1_048_576, 10_000, 10, Some(2)),
    )
    .await;
    assert_eq!(short.stop_reason, "budget_max_operator_calls");
}

#[tokio::test]
async fn scenario_19_fan_out_fetches_the_search_refs_concurrently() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![(
            "PECR_BASELINE_PLAN",
            r#"[{"kind":"operator","op_name":"search","params":{"query":"$query","limit":2}},{"kind":"search_ref_fetch_span","max_refs":2}]"#.into(),
        )],
        ..MeshOptions::default()
    })
    .await;
    let response = run(
        &mesh,
        "dev",
        "fixture document",
        budget(100, 1_048_576, 10_000, 10, Some(2)),
    )
    .await;
    assert_eq!(response.stop_reason, "plan_complete");
    let bundle = replay(&mut mesh.client().await, "dev", &response.run_id).await;
    assert_eq!(bundle.operator_calls_used, 3);
    assert_eq!(bundle.evidence_ref_count, 2);
    assert_eq!(bundle.evidence_unit_ids.len(), 2);
    // Both spans went through the concurrent dispatcher.
    let metrics = pecr_testkit::http_get(&mesh.url("/metrics")).await.body;
    assert!(
        metrics.contains("pecr_controller_operator_queue_wait_seconds_count 2"),
        "{metrics}"
    );
    // Every term of the query is covered by the spans: an evidence-backed answer.
    assert_eq!(mode(&response), TerminalMode::Supported);
    assert_eq!(response.cited_evidence.len(), 2);
}

#[tokio::test]
async fn scenario_21_a_denied_operator_ends_the_loop_with_insufficient_permission() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![(
            "PECR_BASELINE_PLAN",
            r#"[{"kind":"operator","op_name":"list_versions","params":{"object_id":"public/public_1.txt"}},{"kind":"operator","op_name":"fetch_rows","params":{"view_id":"safe_customer_view_admin","filter_spec":{"customer_id":"cust_public_1"},"fields":["admin_note"]}},{"kind":"operator","op_name":"search","params":{"query":"$query"}}]"#.into(),
        )],
        ..MeshOptions::default()
    })
    .await;
    let response = run(&mesh, "support", "admin note", roomy_budget()).await;
    assert_eq!(response.stop_reason, "operator_error");
    assert_eq!(mode(&response), TerminalMode::InsufficientPermission);
    assert_eq!(
        response.response_text,
        "UNKNOWN: insufficient permission to access required evidence."
    );
    let map = response.claim_map.as_ref().expect("claim map");
    assert_eq!(
        map.terminal_mode,
        TerminalMode::InsufficientPermission as i32
    );
    // The three steps are independent, so they went to the gateway as one
    // batch: the search after the denied call ran too, and counts.
    assert_eq!(usage(&mesh, "support", &response).await.0, 3);
}

#[tokio::test]
async fn scenario_22_an_unreachable_gateway_fails_the_run_and_persists_nothing() {
    let mut mesh = Mesh::start().await;
    mesh.stop_gateway().await;
    let mut client = mesh.client().await;
    let status = client
        .run(run_request("dev", "smoke", None))
        .await
        .expect_err("gateway down");
    let error = error_of(&status);
    assert_eq!(
        (error.code, error.http_status, error.retryable),
        (ErrorCode::SourceUnavailable, 502, true)
    );
    assert_eq!(error.hint, TerminalMode::SourceUnavailable);
    let replays = client
        .list_replays(pecr_mesh_tests::as_principal(
            "dev",
            v1::ListReplaysRequest::default(),
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(replays.replays.is_empty());
}

#[tokio::test]
async fn the_first_query_is_answered_from_cited_evidence() {
    let mesh = Mesh::start().await;
    let response = run(
        &mesh,
        "dev",
        "What is the customer status and plan tier?",
        roomy_budget(),
    )
    .await;
    assert_eq!(mode(&response), TerminalMode::Supported);
    // The question names no customer: every customer's row answers it, with
    // the two fields it asks for (docs/decisions.md, "Usefulness").
    assert_eq!(
        response.response_text,
        "In safe_customer_view_public, customer_id cust_public_1: plan_tier is free, status is active.\n\
         In safe_customer_view_public, customer_id cust_restricted_1: plan_tier is enterprise, status is suspended."
    );
    let map = response.claim_map.as_ref().expect("claim map");
    assert_eq!(map.claims.len(), 2);
    assert!(
        map.claims
            .iter()
            .all(|claim| claim.status == v1::claim::Status::Supported as i32)
    );
    assert_eq!(map.coverage_observed, 1.0);
    let cited = &response.cited_evidence;
    assert_eq!(cited.len(), 2);
    let mut claimed: Vec<&String> = map
        .claims
        .iter()
        .flat_map(|claim| &claim.evidence_unit_ids)
        .collect();
    claimed.sort();
    let listed: Vec<&String> = cited.iter().map(|unit| &unit.evidence_unit_id).collect();
    assert_eq!(claimed, listed);
    assert!(cited.iter().all(|unit| unit.source_system == "pg_safeview"));
    let bundle = replay(&mut mesh.client().await, "dev", &response.run_id).await;
    assert_eq!(
        bundle.metadata.as_ref().map(|m| m.quality_score),
        Some(100.0)
    );
}

#[tokio::test]
async fn an_operator_past_its_timeout_is_a_source_failure_not_an_error() {
    // The slow view sleeps 200 ms; a 100 ms wall clock times the call out.
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![(
            "PECR_BASELINE_PLAN",
            r#"[{"kind":"operator","op_name":"fetch_rows","params":{"view_id":"safe_customer_view_public_slow","fields":["status"]}}]"#.into(),
        )],
        ..MeshOptions::default()
    })
    .await;
    let response = run(&mesh, "dev", "status", budget(10, 0, 100, 5, None)).await;
    assert_eq!(response.stop_reason, "operator_error");
    assert_eq!(mode(&response), TerminalMode::SourceUnavailable);
    assert_eq!(
        response.response_text,
        "UNKNOWN: required sources were unavailable within budget."
    );
}

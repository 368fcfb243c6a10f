//! Replays that re-decide: every replay the mesh stores, run again through
//! the finalize gate by `VerifyReplays` (gRPC) and `POST /v1/replays/verify`
//! (REST), comes out with the terminal mode, coverage and claim statuses it
//! was stored with. A bundle edited so that it would differ fails its hash
//! and is skipped like any tampered bundle, so differing verdicts are
//! covered by pecr-replay's unit tests; here the summary counts are.

use std::collections::BTreeSet;

use pecr_mesh_tests::{Mesh, MeshOptions, as_principal, budget, roomy_budget, run_request};
use pecr_proto::v1::{self, controller_service_client::ControllerServiceClient};
use pecr_testkit::http_post_json;
use serde_json::json;
use tonic::transport::Channel;

async fn verify(
    client: &mut ControllerServiceClient<Channel>,
    principal: &str,
    request: v1::VerifyReplaysRequest,
) -> v1::VerifyReplaysResponse {
    client
        .verify_replays(as_principal(principal, request))
        .await
        .unwrap_or_else(|status| panic!("verify: {status:?}"))
        .into_inner()
}

/// Runs `query` as `principal` and returns the run's terminal mode.
async fn run(
    client: &mut ControllerServiceClient<Channel>,
    principal: &str,
    query: &str,
    run_budget: v1::Budget,
) -> v1::TerminalMode {
    let response = client
        .run(run_request(principal, query, Some(run_budget)))
        .await
        .unwrap_or_else(|status| panic!("run {query:?}: {status:?}"))
        .into_inner();
    assert!(!response.run_id.is_empty(), "{query:?} stored a replay");
    v1::TerminalMode::try_from(response.terminal_mode).expect("a terminal mode")
}

#[tokio::test]
async fn every_stored_replay_re_decides_the_same() {
    let mesh = Mesh::start().await;
    let mut client = mesh.client().await;
    let runs = [
        ("What is the customer status and plan tier?", roomy_budget()),
        ("fixture document", roomy_budget()),
        ("smoke", roomy_budget()),
        (
            "What is the customer status?",
            budget(1, 1_048_576, 10_000, 10, None),
        ),
        (
            "What is the customer status?",
            budget(100, 600, 10_000, 10, None),
        ),
    ];
    let mut modes = BTreeSet::new();
    for (query, run_budget) in &runs {
        modes.insert(run(&mut client, "dev", query, *run_budget).await);
    }
    assert!(
        modes.contains(&v1::TerminalMode::Supported)
            && modes.contains(&v1::TerminalMode::InsufficientEvidence),
        "{modes:?}"
    );
    run(&mut client, "support", "smoke", roomy_budget()).await;

    let all = verify(&mut client, "dev", v1::VerifyReplaysRequest::default()).await;
    assert_eq!(
        all,
        v1::VerifyReplaysResponse {
            verified: runs.len() as u32,
            differing: 0,
            differences: vec![],
        }
    );
    // Only the caller's own replays.
    let theirs = verify(&mut client, "support", v1::VerifyReplaysRequest::default()).await;
    assert_eq!((theirs.verified, theirs.differing), (1, 0));

    // `limit` takes the newest; `since` those recorded at or after it.
    let newest = client
        .list_replays(as_principal(
            "dev",
            v1::ListReplaysRequest {
                limit: Some(1),
                engine_mode: None,
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .replays;
    let newest_at = newest[0].recorded_at_unix_ms;
    let limited = v1::VerifyReplaysRequest {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(verify(&mut client, "dev", limited).await.verified, 2);
    let since = |since_unix_ms| v1::VerifyReplaysRequest {
        since_unix_ms: Some(since_unix_ms),
        ..Default::default()
    };
    let recent = verify(&mut client, "dev", since(newest_at)).await;
    // Runs recorded within the same millisecond count too.
    assert!(recent.verified >= 1, "{recent:?}");
    assert_eq!(recent.differing, 0);
    assert_eq!(
        verify(&mut client, "dev", since(newest_at + 1))
            .await
            .verified,
        0
    );
    let rlm_only = v1::VerifyReplaysRequest {
        engine_mode: Some("rlm".into()),
        ..Default::default()
    };
    assert_eq!(verify(&mut client, "dev", rlm_only).await.verified, 0);

    // The REST edge answers the same.
    let answer = http_post_json(
        &mesh.url("/v1/replays/verify"),
        &[("x-pecr-principal-id", "dev")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"verified": runs.len(), "differing": 0, "differences": []})
    );
    let answer = http_post_json(
        &mesh.url("/v1/replays/verify"),
        &[("x-pecr-principal-id", "dev")],
        &json!({"since_unix_ms": newest_at + 1, "engine_mode": "baseline"}).to_string(),
    )
    .await;
    assert_eq!(answer.json()["verified"], 0, "{}", answer.body);
    let answer = http_post_json(
        &mesh.url("/v1/replays/verify"),
        &[("x-pecr-principal-id", "dev")],
        r#"{"engine_mode": "fast"}"#,
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
}

#[tokio::test]
async fn a_run_that_ended_on_a_denied_call_re_decides_to_its_reported_mode() {
    // The gate decides INSUFFICIENT_EVIDENCE; the run reports the loop's
    // INSUFFICIENT_PERMISSION, and so does its re-decision.
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![(
            "PECR_BASELINE_PLAN",
            r#"[{"kind":"operator","op_name":"list_versions","params":{"object_id":"public/public_1.txt"}},{"kind":"operator","op_name":"fetch_rows","params":{"view_id":"safe_customer_view_admin","filter_spec":{"customer_id":"cust_public_1"},"fields":["admin_note"]}},{"kind":"operator","op_name":"search","params":{"query":"$query"}}]"#.into(),
        )],
        ..MeshOptions::default()
    })
    .await;
    let mut client = mesh.client().await;
    assert_eq!(
        run(&mut client, "support", "admin note", roomy_budget()).await,
        v1::TerminalMode::InsufficientPermission
    );
    let verdict = verify(&mut client, "support", v1::VerifyReplaysRequest::default()).await;
    assert_eq!((verdict.verified, verdict.differing), (1, 0), "{verdict:?}");
}

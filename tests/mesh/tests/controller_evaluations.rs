//! Evaluations cannot amplify into ledger reads: `replay_ids` is capped by
//! `PECR_REPLAY_LIST_LIMIT` (checked before any read), the named bundles
//! are loaded with one ledger call, and evaluations are rate-limited per
//! principal. Ledger reads are counted by ledger-writer's own metrics.

use pecr_errors::ErrorCode;
use pecr_mesh_tests::{Mesh, MeshOptions, as_principal, error_of, run_request};
use pecr_proto::v1;
use pecr_testkit::{ServiceProcess, http_get};

/// `pecr_ledger_rpcs_total` of one RPC, summed over result codes.
async fn ledger_calls(ledger: &ServiceProcess, rpc: &str) -> u64 {
    let metrics = http_get(&ledger.http_url("/metrics")).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let label = format!("rpc=\"{rpc}\"");
    metrics
        .body
        .lines()
        .filter(|line| line.starts_with("pecr_ledger_rpcs_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn submission(
    principal: &str,
    replay_ids: Vec<String>,
) -> tonic::Request<v1::SubmitEvaluationRequest> {
    as_principal(
        principal,
        v1::SubmitEvaluationRequest {
            submission: Some(v1::ReplayEvaluationSubmission {
                evaluation_name: "amplification".into(),
                replay_ids,
                engine_mode: None,
                min_quality_score: None,
                max_source_unavailable_rate: None,
            }),
        },
    )
}

async fn run_ids(mesh: &Mesh, count: usize) -> Vec<String> {
    let mut client = mesh.client().await;
    let mut ids = Vec::new();
    for _ in 0..count {
        let run = client
            .run(run_request("dev", "smoke", None))
            .await
            .unwrap_or_else(|status| panic!("run: {status:?}"))
            .into_inner();
        ids.push(run.run_id);
    }
    ids
}

#[tokio::test]
async fn too_many_replay_ids_are_refused_before_any_ledger_read() {
    let mesh = Mesh::start().await;
    let ids: Vec<String> = (0..10_001).map(|n| format!("run-{n}")).collect();
    let status = mesh
        .client()
        .await
        .submit_evaluation(submission("dev", ids))
        .await
        .expect_err("10001 ids");
    let error = error_of(&status);
    assert_eq!(
        (error.code, error.http_status),
        (ErrorCode::InvalidParams, 400)
    );
    assert_eq!(error.message, "replay_ids must list at most 200 ids");
    for rpc in [
        "LoadReplayBundle",
        "LoadReplayBundles",
        "ListReplayBundles",
        "StoreEvaluation",
    ] {
        assert_eq!(ledger_calls(&mesh.ledger, rpc).await, 0, "{rpc}");
    }

    // The limit itself is accepted (every id missing), still one read.
    let ids: Vec<String> = (0..200).map(|n| format!("run-{n}")).collect();
    let evaluation = mesh
        .client()
        .await
        .submit_evaluation(submission("dev", ids))
        .await
        .expect("200 ids")
        .into_inner()
        .evaluation
        .expect("evaluation");
    assert_eq!(evaluation.missing_replay_ids.len(), 200);
    assert_eq!(ledger_calls(&mesh.ledger, "LoadReplayBundles").await, 1);
    assert_eq!(ledger_calls(&mesh.ledger, "LoadReplayBundle").await, 0);
}

#[tokio::test]
async fn named_replays_are_loaded_with_one_ledger_call() {
    let mesh = Mesh::start().await;
    let runs = run_ids(&mesh, 3).await;
    // Another principal's run is missing for dev, as an unknown id is.
    let theirs = mesh
        .client()
        .await
        .run(run_request("support", "smoke", None))
        .await
        .expect("support's run")
        .into_inner()
        .run_id;
    let before = ledger_calls(&mesh.ledger, "LoadReplayBundles").await;
    let submitted = vec![
        runs[2].clone(),
        "no-such-run".to_owned(),
        runs[0].clone(),
        theirs.clone(),
        runs[2].clone(),
        runs[1].clone(),
    ];
    let evaluation = mesh
        .client()
        .await
        .submit_evaluation(submission("dev", submitted))
        .await
        .expect("evaluation")
        .into_inner()
        .evaluation
        .expect("evaluation");
    assert_eq!(
        ledger_calls(&mesh.ledger, "LoadReplayBundles").await,
        before + 1,
        "one batch read"
    );
    assert_eq!(ledger_calls(&mesh.ledger, "LoadReplayBundle").await, 0);
    // Given order; a duplicate is selected each time it appears.
    assert_eq!(
        evaluation.replay_ids,
        [
            runs[2].clone(),
            runs[0].clone(),
            runs[2].clone(),
            runs[1].clone()
        ]
    );
    assert_eq!(
        evaluation.missing_replay_ids,
        ["no-such-run", theirs.as_str()]
    );
    assert!(!evaluation.overall_pass, "missing ids fail the evaluation");

    // An id no store could hold is refused before any read, not "missing".
    let status = mesh
        .client()
        .await
        .submit_evaluation(submission("dev", vec!["../escape".to_owned()]))
        .await
        .expect_err("unsafe id");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        ledger_calls(&mesh.ledger, "LoadReplayBundles").await,
        before + 1,
        "no read for a refused submission"
    );
}

#[tokio::test]
async fn the_file_store_answers_named_replays_without_the_ledger() {
    let dir = std::env::temp_dir().join(format!("pecr-eval-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![
            ("PECR_REPLAY_STORE", "file".into()),
            ("PECR_REPLAY_STORE_DIR", dir.display().to_string()),
            ("PECR_REPLAY_LIST_LIMIT", "3".into()),
        ],
        ..MeshOptions::default()
    })
    .await;
    let runs = run_ids(&mesh, 2).await;
    let evaluation = mesh
        .client()
        .await
        .submit_evaluation(submission(
            "dev",
            vec![runs[1].clone(), "gone".into(), runs[0].clone()],
        ))
        .await
        .expect("evaluation")
        .into_inner()
        .evaluation
        .expect("evaluation");
    assert_eq!(evaluation.replay_ids, [runs[1].clone(), runs[0].clone()]);
    assert_eq!(evaluation.missing_replay_ids, ["gone"]);
    let status = mesh
        .client()
        .await
        .submit_evaluation(submission("dev", vec!["a".into(); 4]))
        .await
        .expect_err("over the configured limit");
    assert_eq!(
        error_of(&status).message,
        "replay_ids must list at most 3 ids"
    );
    assert_eq!(ledger_calls(&mesh.ledger, "LoadReplayBundles").await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn evaluations_are_rate_limited_per_principal() {
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![("PECR_RATE_LIMIT_EVALUATION_PER_WINDOW", "2".into())],
        ..MeshOptions::default()
    })
    .await;
    let mut client = mesh.client().await;
    for _ in 0..2 {
        client
            .submit_evaluation(submission("dev", Vec::new()))
            .await
            .expect("within the limit");
    }
    let status = client
        .submit_evaluation(submission("dev", vec!["x".into(); 10_001]))
        .await
        .expect_err("over the limit");
    let error = error_of(&status);
    assert_eq!(
        (error.code, error.http_status, error.retryable),
        (ErrorCode::RateLimited, 429, true)
    );
    assert_eq!(error.message, "rate limit exceeded for /v1/evaluations");
    client
        .submit_evaluation(submission("support", Vec::new()))
        .await
        .expect("another principal has its own quota");
    // Runs keep their own bucket.
    client
        .run(run_request("dev", "smoke", None))
        .await
        .expect("a run is not an evaluation");
}

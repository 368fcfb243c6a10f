//! Controller start-up refusals (spec 30 §16 scenarios 1–4, 9), checked on
//! the real binary: `STARTUP_ERROR <code>: …` on stderr and exit status 1.

use pecr_mesh_tests::BUDGET_DEFAULTS;
use pecr_testkit::ServiceProcess;

async fn refuses(extra: &[(&'static str, &str)], code: &str) {
    let mut env: Vec<(&'static str, String)> = vec![
        ("PECR_GATEWAY_URL", "http://127.0.0.1:1".into()),
        pecr_testkit::credentials::controller_ledger_token(),
        ("PECR_BUDGET_DEFAULTS", BUDGET_DEFAULTS.into()),
        ("PECR_CONTROLLER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_CONTROLLER_BIND_ADDR", "127.0.0.1:0".into()),
    ];
    for (key, value) in extra {
        env.retain(|(existing, _)| existing != key);
        env.push((key, (*value).to_owned()));
    }
    let report = ServiceProcess::run_to_exit("pecr-controller", &env).await;
    assert_eq!(report.code, Some(1), "{extra:?}: {}", report.stderr);
    assert!(
        report.stderr.contains(&format!("STARTUP_ERROR {code}: ")),
        "{extra:?} should fail with {code}:\n{}",
        report.stderr
    );
}

#[tokio::test]
async fn scenario_1_budget_defaults_must_be_a_budget() {
    refuses(
        &[("PECR_BUDGET_DEFAULTS", "not-json")],
        "ERR_INVALID_BUDGET_JSON",
    )
    .await;
    refuses(&[("PECR_BUDGET_DEFAULTS", "")], "ERR_MISSING_CONFIG").await;
    refuses(
        &[(
            "PECR_BUDGET_DEFAULTS",
            r#"{"max_operator_calls":1,"max_bytes":67108865,"max_wallclock_ms":1,"max_recursion_depth":1}"#,
        )],
        "ERR_INVALID_BUDGET",
    )
    .await;
    refuses(&[("PECR_GATEWAY_URL", "")], "ERR_MISSING_CONFIG").await;
}

#[tokio::test]
async fn scenario_2_nonlocal_bind_needs_the_override_and_a_secret() {
    refuses(
        &[("PECR_CONTROLLER_BIND_ADDR", "0.0.0.0:0")],
        "ERR_NONLOCAL_BIND_REQUIRES_AUTH",
    )
    .await;
    refuses(
        &[
            ("PECR_CONTROLLER_BIND_ADDR", "10.0.0.5:0"),
            ("PECR_DEV_ALLOW_NONLOCAL_BIND", "1"),
            ("PECR_LOCAL_AUTH_SHARED_SECRET", "dev-secret"),
        ],
        "ERR_NONLOCAL_BIND_REQUIRES_AUTH",
    )
    .await;
}

#[tokio::test]
async fn scenarios_3_4_engine_and_model_provider() {
    refuses(&[("PECR_CONTROLLER_ENGINE", "nope")], "ERR_INVALID_CONFIG").await;
    refuses(
        &[("PECR_MODEL_PROVIDER", "external")],
        "ERR_MODEL_PROVIDER_UNIMPLEMENTED",
    )
    .await;
    refuses(
        &[(
            "PECR_BASELINE_PLAN",
            r#"[{"kind":"search_ref_fetch_span","max_refs":0}]"#,
        )],
        "ERR_INVALID_CONFIG",
    )
    .await;
    refuses(
        &[(
            "PECR_OPERATOR_CONCURRENCY_POLICIES",
            r#"{"search":{"max_in_flight":0}}"#,
        )],
        "ERR_INVALID_CONFIG",
    )
    .await;
}

#[tokio::test]
async fn scenario_9_list_limit_must_be_positive_and_the_file_store_must_be_creatable() {
    refuses(&[("PECR_REPLAY_LIST_LIMIT", "0")], "ERR_INVALID_CONFIG").await;
    refuses(
        &[
            ("PECR_REPLAY_STORE", "file"),
            ("PECR_REPLAY_STORE_DIR", "/proc/pecr-cannot-create"),
        ],
        "ERR_REPLAY_STORE_INIT",
    )
    .await;
}

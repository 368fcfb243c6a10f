//! Gateway fault scenarios (spec 20 §15, 36–39 and 44) and start-up
//! failures: every dependency failure fails closed with a retryable error
//! and `SOURCE_UNAVAILABLE`, and never hands out a result.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::TerminalMode;
use pecr_testkit::{ServiceProcess, TestDatabase, http_get, workspace_root};
use serde_json::{Value, json};
use tokio::sync::watch;

const RESTRICTED_CANARY: &str = "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f";

fn bundle_hash() -> String {
    pecr_policy::bundle_hash(&workspace_root().join("opa/bundle")).expect("bundle hash")
}

/// Remote-OPA settings for `url`, with the bundle hash it requires.
fn remote_opa(url: String, timeout_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("PECR_OPA_URL", url),
        ("PECR_OPA_TIMEOUT_MS", timeout_ms.to_string()),
        ("PECR_POLICY_BUNDLE_HASH", bundle_hash()),
    ]
}

/// A stand-in OPA on 127.0.0.1 that allows everything, but starts out
/// holding every answer until [`FakeOpa::release`]: a slow OPA whose answer
/// comes after any timeout, however the machine schedules the two.
struct FakeOpa {
    url: String,
    held: Arc<watch::Sender<bool>>,
}

impl FakeOpa {
    async fn start_held() -> Self {
        let held = Arc::new(watch::Sender::new(true));
        let (decide_held, health_held) = (Arc::clone(&held), Arc::clone(&held));
        let app = axum::Router::new()
            .route(
                "/v1/data/pecr/authz/decision",
                axum::routing::post(move || {
                    let mut released = decide_held.subscribe();
                    async move {
                        let _ = released.wait_for(|held| !*held).await;
                        axum::Json(json!({"result": {"allow": true, "cacheable": false, "reason": "fake_allow", "redaction": {}}}))
                    }
                }),
            )
            .route(
                "/health",
                axum::routing::get(move || {
                    let mut released = health_held.subscribe();
                    async move {
                        let _ = released.wait_for(|held| !*held).await;
                        "{}"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake OPA bind");
        let url = format!("http://{}", listener.local_addr().expect("fake OPA addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, held }
    }

    /// Answers the held requests, and every later one at once.
    fn release(&self) {
        self.held.send_replace(false);
    }
}

fn assert_source_unavailable(err: &PecrError) {
    assert_eq!(
        (err.hint, err.retryable),
        (TerminalMode::SourceUnavailable, true),
        "{err:?}"
    );
}

/// Waits until `/readyz` reports `expected` checks, then returns the status.
async fn readyz_settles(mesh: &Mesh, expected: Value) -> (u16, Value) {
    let url = mesh.url("/readyz");
    eventually("readyz", Duration::from_secs(10), || {
        let (url, expected) = (url.clone(), expected.clone());
        async move {
            let answer = http_get(&url).await;
            let body: Value = serde_json::from_str(&answer.body).ok()?;
            (body["checks"] == expected).then_some((answer.status, body))
        }
    })
    .await
}

#[tokio::test]
async fn unreachable_opa_fails_closed_and_readiness_says_so() {
    // Scenario 36: nothing listens on the discard port.
    let mesh = Mesh::start_with(
        Policy::Bundle,
        &remote_opa("http://127.0.0.1:9".into(), 100),
    )
    .await;
    let status = mesh
        .session_with("dev", budget(10, 1024), None)
        .await
        .err()
        .expect("no session without policy");
    let err = error(&status);
    assert!(
        matches!(
            (err.code, err.http_status),
            (ErrorCode::SourceUnavailable, 503) | (ErrorCode::SourceTimeout, 504)
        ),
        "{err:?}"
    );
    assert_source_unavailable(&err);

    // The same over REST.
    let answer = mesh
        .post(
            "/v1/sessions",
            "dev",
            None,
            &json!({"budget": budget_json(10, 1024)}),
        )
        .await;
    assert!(matches!(answer.status, 503 | 504), "{}", answer.body);
    let body = answer.json();
    assert_eq!(
        (&body["terminal_mode_hint"], &body["retryable"]),
        (&json!("SOURCE_UNAVAILABLE"), &json!(true))
    );
    assert_eq!(mesh.db.count("pecr_sessions").await, 0);

    // Scenario 44.
    let (status, body) = readyz_settles(
        &mesh,
        json!({"ledger": true, "opa": false, "postgres": true}),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not_ready");
}

#[tokio::test]
async fn slow_opa_is_a_bounded_504() {
    // Scenario 37: OPA answers only after the gateway's 25 ms per attempt
    // (here: not before it is released). The outer 30 s only turns a
    // gateway that waits for OPA into a failure instead of a hang.
    let opa = FakeOpa::start_held().await;
    let mesh = Mesh::start_with(Policy::Bundle, &remote_opa(opa.url.clone(), 25)).await;
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        mesh.session_with("dev", budget(10, 1024), None),
    )
    .await
    .expect("the gateway gave up on OPA by itself")
    .err()
    .expect("timed out");
    let err = error(&status);
    assert_eq!(
        (
            err.code,
            err.http_status,
            err.message.as_str(),
            status.code()
        ),
        (
            ErrorCode::SourceTimeout,
            504,
            "policy engine timeout",
            tonic::Code::DeadlineExceeded
        )
    );
    assert_source_unavailable(&err);
    let (status, _) = readyz_settles(
        &mesh,
        json!({"ledger": true, "opa": false, "postgres": true}),
    )
    .await;
    assert_eq!(status, 503);

    // The same OPA answering in time: the timeout was the only cause.
    opa.release();
    let session = mesh
        .session_with("dev", budget(10, 1024), None)
        .await
        .expect("prompt OPA allows");
    assert!(!session.token.is_empty());
    let (status, _) = readyz_settles(
        &mesh,
        json!({"ledger": true, "opa": true, "postgres": true}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_slow_safe_view_is_a_retryable_503_that_costs_nothing() {
    // Scenario 38.
    let mesh = Mesh::start_with(
        Policy::Test,
        &[("PECR_PG_SAFEVIEW_QUERY_TIMEOUT_MS", "25".into())],
    )
    .await;
    let mut dev = mesh
        .session_with("dev", budget(1, 1_048_576), None)
        .await
        .expect("session");
    let status = dev
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_public_slow", "fields": ["status"], "filter_spec": {"customer_id": "cust_public_1"}}),
        )
        .await
        .expect_err("statement timeout");
    let err = error(&status);
    assert_eq!(
        (err.code, err.http_status),
        (ErrorCode::SourceUnavailable, 503),
        "{err:?}"
    );
    assert_source_unavailable(&err);
    let events = mesh.events(&dev.trace_id).await;
    assert!(
        events.iter().all(|(t, _)| t != "EVIDENCE_EMITTED"),
        "{events:?}"
    );
    // A failed read spends no budget: the one allowed call is still there.
    dev.op(
        "fetch_rows",
        json!({"view_id": "safe_customer_view_public", "fields": ["status"], "filter_spec": {"customer_id": "cust_public_1"}}),
    )
    .await
    .expect("the budget is intact");
}

#[tokio::test]
async fn with_ledger_writer_down_nothing_is_answered() {
    let mut mesh = Mesh::start(Policy::Test).await;
    let mut dev = mesh.session("dev").await;
    mesh.stop_ledger().await;

    let status = dev
        .op(
            "fetch_span",
            json!({"object_id": "restricted/restricted_1.txt"}),
        )
        .await
        .expect_err("no ledger, no answer");
    let err = error(&status);
    assert_eq!(
        (err.code, err.http_status, err.message.as_str()),
        (ErrorCode::LedgerUnavailable, 503, "ledger unavailable")
    );
    assert_source_unavailable(&err);
    assert!(!format!("{status:?}").contains(RESTRICTED_CANARY));

    let answer = mesh
        .post(
            "/v1/sessions",
            "dev",
            None,
            &json!({"budget": budget_json(10, 1024)}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            503,
            error_body(
                "ERR_LEDGER_UNAVAILABLE",
                "ledger unavailable",
                "SOURCE_UNAVAILABLE",
                true
            )
            .as_str()
        )
    );

    let (status, body) = readyz_settles(
        &mesh,
        json!({"ledger": false, "opa": true, "postgres": true}),
    )
    .await;
    assert_eq!((status, &body["status"]), (503, &json!("not_ready")));
    assert_no_canary("gateway logs", &mesh.logs().join("\n"));
}

#[tokio::test]
async fn a_failed_ledger_write_withholds_the_result() {
    let mut mesh = Mesh::start(Policy::Test).await;
    let mut dev = mesh.session("dev").await;
    // The session still loads, but the call's ledger transaction cannot commit.
    mesh.db
        .client()
        .batch_execute("ALTER TABLE pecr_evidence_units RENAME TO pecr_evidence_units_away")
        .await
        .expect("rename");
    let status = dev
        .op(
            "fetch_span",
            json!({"object_id": "restricted/restricted_1.txt"}),
        )
        .await
        .expect_err("unrecorded evidence is not returned");
    let err = error(&status);
    assert_eq!(
        (err.code, err.http_status),
        (ErrorCode::LedgerUnavailable, 503),
        "{err:?}"
    );
    assert_source_unavailable(&err);
    assert!(!format!("{status:?}").contains(RESTRICTED_CANARY));

    mesh.db
        .client()
        .batch_execute("ALTER TABLE pecr_evidence_units_away RENAME TO pecr_evidence_units")
        .await
        .expect("rename back");
    let events = mesh.events(&dev.trace_id).await;
    assert!(
        events
            .iter()
            .all(|(t, _)| t != "EVIDENCE_EMITTED" && t != "OPERATOR_CALL"),
        "the failed call left no half-written record: {events:?}"
    );
    let used: i64 = mesh
        .db
        .client()
        .query_one(
            "SELECT operator_calls_used FROM pecr_session_runtime WHERE session_id = $1",
            &[&dev.session_id],
        )
        .await
        .expect("runtime")
        .get(0);
    assert_eq!(used, 0);
    assert_no_canary("gateway logs", &mesh.logs().join("\n"));
}

#[tokio::test]
async fn a_dropped_schema_is_a_retryable_503() {
    // Scenario 39.
    let mesh = Mesh::start(Policy::Test).await;
    let schema = mesh.db.schema().to_owned();
    mesh.db
        .client()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    let status = mesh
        .session_with("dev", budget(10, 1024), None)
        .await
        .err()
        .expect("no session without tables");
    let err = error(&status);
    assert_eq!(err.http_status, 503, "{err:?}");
    assert!(
        matches!(
            err.code,
            ErrorCode::SourceUnavailable | ErrorCode::LedgerUnavailable | ErrorCode::DbUnavailable
        ),
        "{err:?}"
    );
    assert_source_unavailable(&err);
}

/// The settings a gateway needs to get as far as its database checks.
fn startup_env(db_url: Option<String>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PECR_GATEWAY_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_LEDGER_URL", "http://127.0.0.1:9".to_owned()),
        pecr_testkit::credentials::gateway_ledger_token(),
        (
            "PECR_POLICY_BUNDLE_DIR",
            workspace_root().join("opa/bundle").display().to_string(),
        ),
        (
            "PECR_FS_CORPUS_PATH",
            workspace_root()
                .join("fixtures/fs_corpus")
                .display()
                .to_string(),
        ),
    ];
    if let Some(url) = db_url {
        env.push(("PECR_DB_URL", url));
    }
    env
}

async fn startup_error(env: &[(&'static str, String)], code: &str) -> String {
    let report = ServiceProcess::run_to_exit("pecr-gateway", env).await;
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    let prefix = format!("STARTUP_ERROR {code}:");
    report
        .stderr
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{}", report.stderr))
        .to_owned()
}

#[tokio::test]
async fn start_up_failures_exit_with_their_codes() {
    let db = TestDatabase::create().await;
    pecr_adapters::load_fixture_sql(db.client(), pecr_adapters::SAFEVIEW_FIXTURE_SQL)
        .await
        .expect("fixture");

    // A well-formed hash that is not the bundle's.
    let mut env = startup_env(Some(db.url()));
    let wrong = "0".repeat(64);
    assert_ne!(wrong, bundle_hash());
    env.push(("PECR_POLICY_BUNDLE_HASH", wrong));
    startup_error(&env, "ERR_INVALID_POLICY_BUNDLE_HASH").await;

    // The bundle's real hash starts.
    let mut env = startup_env(Some(db.url()));
    env.push(("PECR_POLICY_BUNDLE_HASH", bundle_hash()));
    let gateway = ServiceProcess::start("pecr-gateway", &env).await;
    gateway.stop().await;

    let line = startup_error(&startup_env(None), "ERR_MISSING_CONFIG").await;
    assert!(line.contains("PECR_DB_URL"), "{line}");

    let mut env = startup_env(Some(db.url()));
    env.push(("PECR_OPA_URL", "http://127.0.0.1:9".into()));
    let line = startup_error(&env, "ERR_MISSING_CONFIG").await;
    assert!(line.contains("PECR_POLICY_BUNDLE_HASH"), "{line}");

    // A schema without the safe views.
    let empty = TestDatabase::create().await;
    let line = startup_error(&startup_env(Some(empty.url())), "ERR_INVALID_CONFIG").await;
    assert!(line.contains("safe_customer_view_public"), "{line}");
}

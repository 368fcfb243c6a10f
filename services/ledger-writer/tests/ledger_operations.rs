//! ledger-writer as an operator meets it: admin endpoints, start-up errors,
//! and the database going away and coming back.

mod common;

use std::time::Duration;

use common::*;
use pecr_errors::ErrorCode;
use pecr_proto::v1;
use pecr_testkit::{ServiceProcess, TcpProxy, TestDatabase, http_get};
use tonic::Code;

#[tokio::test]
async fn admin_endpoints_answer_health_readiness_and_metrics() {
    let mut ledger = start_ledger().await;
    let health = http_get(&ledger.process.http_url("/healthz")).await;
    assert_eq!(
        (
            health.status,
            health.content_type.as_str(),
            health.body.as_str()
        ),
        (200, "text/plain", "ok")
    );

    let ready = http_get(&ledger.process.http_url("/readyz")).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.body,
        r#"{"checks":{"migrations":true,"postgres":true},"status":"ready"}"#
    );

    record_session(&mut ledger, "s-metrics", "dev").await;
    let metrics = http_get(&ledger.process.http_url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.content_type, "text/plain; version=0.0.4");
    assert!(
        metrics
            .body
            .contains(r#"pecr_ledger_rpcs_total{code="OK",rpc="RecordSession"} 1"#),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains(r#"pecr_build_info{service="pecr-ledger-writer""#)
    );
}

async fn expect_startup_error(env: &[(&str, String)], code: &str) -> String {
    let report = ServiceProcess::run_to_exit("pecr-ledger-writer", env).await;
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    assert!(
        report
            .stderr
            .lines()
            .any(|line| line.starts_with(&format!("STARTUP_ERROR {code}: "))),
        "expected {code} in:\n{}",
        report.stderr
    );
    report.stderr
}

#[tokio::test]
async fn bad_configuration_fails_start_up_with_every_error_listed() {
    let stderr = expect_startup_error(
        &[
            ("PECR_LEDGER_GRPC_ADDR", "not-an-address".into()),
            ("PECR_LEDGER_WRITE_TIMEOUT_MS", "0".into()),
        ],
        "ERR_MISSING_CONFIG",
    )
    .await;
    assert!(stderr.contains("STARTUP_ERROR ERR_INVALID_CONFIG: PECR_LEDGER_GRPC_ADDR"));
    assert!(stderr.contains("STARTUP_ERROR ERR_INVALID_CONFIG: PECR_LEDGER_WRITE_TIMEOUT_MS"));

    expect_startup_error(
        &[
            (
                "PECR_DB_URL",
                "postgres://postgres@127.0.0.1:5432/postgres".into(),
            ),
            ("PECR_LEDGER_GRPC_ADDR", "0.0.0.0:0".into()),
        ],
        "ERR_NONLOCAL_BIND_REQUIRES_AUTH",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_database_fails_start_up() {
    let db = TestDatabase::create().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    proxy.cut();
    let url = db.url_through(proxy.addr());
    let mut env = vec![
        ("PECR_DB_URL", url),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".into()),
    ];
    env.extend(pecr_testkit::credentials::ledger_writer_tokens());
    expect_startup_error(&env, "ERR_LEDGER_UNAVAILABLE").await;
}

#[tokio::test]
async fn losing_the_database_is_unavailable_not_a_crash_and_recovers() {
    let db = TestDatabase::create().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let url = db.url_through(proxy.addr());
    let mut ledger = start_ledger_with_url(db, Some(url)).await;
    record_session(&mut ledger, "s-before", "dev").await;

    proxy.cut();
    let status = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "s-before".into(),
        })
        .await
        .expect_err("database is gone");
    assert_eq!(status.code(), Code::Unavailable);
    let error = pecr_error(&status);
    assert_eq!(
        (error.code, error.http_status, error.retryable),
        (ErrorCode::LedgerUnavailable, 503, true)
    );
    assert_eq!(error.message, "ledger unavailable");

    let ready = http_get(&ledger.process.http_url("/readyz")).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains(r#""status":"not_ready""#),
        "{}",
        ready.body
    );

    let status = ledger
        .client
        .record_session(session_request("s-during", "dev"))
        .await
        .expect_err("no writes while the database is gone");
    assert_eq!(status.code(), Code::Unavailable);

    proxy.reopen();
    let mut recovered = false;
    for _ in 0..40 {
        if ledger
            .client
            .get_session(v1::GetSessionRequest {
                session_id: "s-before".into(),
            })
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        recovered,
        "ledger-writer reconnects once the database is back"
    );
    assert_eq!(
        ledger.db.count("pecr_sessions").await,
        1,
        "the failed write left nothing behind"
    );
}

#[tokio::test]
async fn a_write_stuck_on_a_lock_times_out_and_leaves_the_pool_healthy() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-lock", "dev").await;

    // Another transaction holds the session row, as a stuck writer would.
    let (mut blocker, connection) =
        tokio_postgres::connect(&ledger.db.url(), tokio_postgres::NoTls)
            .await
            .expect("blocker connects");
    tokio::spawn(connection);
    let holder = blocker.transaction().await.expect("begin");
    holder
        .execute(
            "SELECT 1 FROM pecr_sessions WHERE session_id = 's-lock' FOR UPDATE",
            &[],
        )
        .await
        .expect("lock the row");

    // The lock is held until the call returns, so only the write timeout
    // can end it; the outer 30 s turns a missing timeout into a failure
    // instead of a hang.
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        ledger
            .client
            .record_operator_call(operator_call(&session, vec![])),
    )
    .await
    .expect("the write timeout ended the call")
    .expect_err("the row is locked");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(pecr_error(&status).code, ErrorCode::LedgerUnavailable);

    holder.rollback().await.expect("release");
    // Every pooled connection still works once the lock is gone.
    for _ in 0..10 {
        ledger
            .client
            .get_session(v1::GetSessionRequest {
                session_id: "s-lock".into(),
            })
            .await
            .expect("pool is healthy");
    }
    ledger
        .client
        .record_operator_call(operator_call(&session, vec![]))
        .await
        .expect("the write goes through now");
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let ledger = start_ledger().await;
    let code = ledger.process.terminate().await;
    assert_eq!(code, Some(0));
}

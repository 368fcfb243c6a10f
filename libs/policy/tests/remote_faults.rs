//! The remote client under faults (spec 20 §4.3, scenarios 36, 37, 44):
//! timeouts, retries, fail-closed errors, the circuit breaker and readiness.
//!
//! Time is tokio's. Where nothing ever answers, the clock is paused from
//! the start, so every timeout and backoff is virtual and the elapsed time
//! is exactly what the client chose to wait. Where the stub must answer
//! over its socket, the clock runs (a paused clock would jump to the next
//! timeout whenever the runtime waits for the socket): a breaker window is
//! crossed with `skip`, never slept through, and a slow OPA is one that
//! holds its answer until the test releases it.

mod common;

use std::time::Duration;

use common::inputs::{create_session, fs_call};
use common::opa_stub::{BlackHole, Mode, OpaStub};
use common::{bundle_dir, remote, remote_config, skip, until};
use pecr_errors::{ErrorCode, PecrError, TerminalMode};
use pecr_policy::{DecisionKey, PolicyEngine, RemoteOpaConfig};
use tokio::time::Instant;

fn key() -> DecisionKey {
    DecisionKey::new("local", "dev", "create_session").with_part("snapshot")
}

async fn decide(engine: &PolicyEngine) -> Result<pecr_policy::Decision, PecrError> {
    engine.decide(&key(), &create_session("dev")).await
}

fn assert_timeout(error: &PecrError) {
    assert_eq!(error.code, ErrorCode::SourceTimeout, "{error}");
    assert_eq!(error.http_status, 504);
    assert_eq!(error.message, "policy engine timeout");
    assert!(error.retryable);
    assert_eq!(error.hint, TerminalMode::SourceUnavailable);
}

fn assert_unavailable(error: &PecrError, message: &str) {
    assert_eq!(error.code, ErrorCode::SourceUnavailable, "{error}");
    assert_eq!(error.http_status, 503);
    assert_eq!(error.message, message);
    assert!(error.retryable);
    assert_eq!(error.hint, TerminalMode::SourceUnavailable);
}

const UNAVAILABLE: &str = "policy engine unavailable";
const OPEN: &str = "policy engine circuit breaker is open";

#[tokio::test(start_paused = true)]
async fn silent_server_times_out_after_every_attempt() {
    let hole = BlackHole::start().await;
    let engine = remote(RemoteOpaConfig {
        timeout_ms: 100,
        retry_max_attempts: 2,
        retry_base_backoff_ms: 50,
        ..remote_config(&hole.url)
    });
    let started = Instant::now();
    let error = decide(&engine).await.expect_err("no answer");
    let waited = started.elapsed();
    assert_timeout(&error);
    // 3 attempts × 100 ms plus backoffs of 25–50 and 50–100 ms (equal
    // jitter), each timer rounded up to the next millisecond.
    assert!(
        (Duration::from_millis(375)..=Duration::from_millis(455)).contains(&waited),
        "{waited:?}"
    );
    until("one connection per attempt", || hole.accepted() == 3).await;
}

/// Scenario 37: OPA answers only after the timeout (25 ms) → 504. The stub
/// holds its answers until released, so the order is certain on any clock.
#[tokio::test]
async fn slow_server_is_a_timeout() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    stub.hold();
    let engine = remote(RemoteOpaConfig {
        timeout_ms: 25,
        retry_max_attempts: 2,
        ..RemoteOpaConfig::new(&stub.url)
    });
    assert_timeout(&decide(&engine).await.expect_err("too slow"));
    until("every attempt reached OPA", || {
        stub.decision_requests() == 3
    })
    .await;
    stub.release();
}

/// Scenario 36: nothing listens on port 9.
#[tokio::test(start_paused = true)]
async fn unreachable_server_is_503_or_504() {
    let engine = remote(RemoteOpaConfig {
        timeout_ms: 100,
        ..RemoteOpaConfig::new("http://127.0.0.1:9")
    });
    let error = decide(&engine).await.expect_err("nothing there");
    assert!(matches!(error.http_status, 503 | 504), "unexpected {error}");
    assert!(matches!(
        error.code,
        ErrorCode::SourceUnavailable | ErrorCode::SourceTimeout
    ));
    assert!(error.retryable);
    assert!(!engine.ready().await);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let stub = OpaStub::start(&bundle_dir(), Mode::FailFirst(2, 500)).await;
    let engine = remote(RemoteOpaConfig {
        retry_max_attempts: 2,
        ..remote_config(&stub.url)
    });
    let decision = decide(&engine).await.expect("third attempt succeeds");
    assert!(decision.allow);
    assert_eq!(decision.reason.as_deref(), Some("create_session_dev"));
    assert_eq!(stub.decision_requests(), 3);
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempts() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Status(503)).await;
    let engine = remote(RemoteOpaConfig {
        retry_max_attempts: 3,
        ..remote_config(&stub.url)
    });
    assert_unavailable(&decide(&engine).await.expect_err("always 503"), UNAVAILABLE);
    assert_eq!(stub.decision_requests(), 4);
}

#[tokio::test]
async fn client_errors_fail_at_once() {
    for status in [400, 404, 403] {
        let stub = OpaStub::start(&bundle_dir(), Mode::Status(status)).await;
        let engine = remote(RemoteOpaConfig {
            retry_max_attempts: 3,
            ..remote_config(&stub.url)
        });
        assert_unavailable(&decide(&engine).await.expect_err("4xx"), UNAVAILABLE);
        assert_eq!(stub.decision_requests(), 1, "status {status}");
    }
}

#[tokio::test]
async fn undecodable_success_fails_closed_without_retry_but_counts_for_the_breaker() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Garbage).await;
    let engine = remote(RemoteOpaConfig {
        retry_max_attempts: 3,
        breaker_failure_threshold: 1,
        breaker_open_ms: 60_000,
        ..remote_config(&stub.url)
    });
    assert_unavailable(&decide(&engine).await.expect_err("garbage"), UNAVAILABLE);
    assert_eq!(stub.decision_requests(), 1);
    assert_unavailable(&decide(&engine).await.expect_err("open"), OPEN);
    assert_eq!(stub.decision_requests(), 1);
}

#[tokio::test]
async fn undefined_decision_fails_closed() {
    // An OPA whose bundle lacks the rule answers 200 `{}`.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("p.rego"), "package pecr.other\n\nx := 1\n").expect("write");
    let stub = OpaStub::start(dir.path(), Mode::Rego).await;
    let engine = remote(remote_config(&stub.url));
    assert_unavailable(&decide(&engine).await.expect_err("undefined"), UNAVAILABLE);
}

#[tokio::test]
async fn breaker_opens_fails_fast_and_lets_one_probe_through() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Status(500)).await;
    let open_ms = 300;
    let engine = remote(RemoteOpaConfig {
        timeout_ms: 5_000,
        retry_max_attempts: 1,
        retry_base_backoff_ms: 1,
        breaker_failure_threshold: 2,
        breaker_open_ms: open_ms,
        ..remote_config(&stub.url)
    });

    // Two failed decisions (two attempts each) open the breaker.
    for _ in 0..2 {
        assert_unavailable(&decide(&engine).await.expect_err("500"), UNAVAILABLE);
    }
    assert_eq!(stub.decision_requests(), 4);

    // While open: refusals without waiting, nothing reaches the server. The
    // clock stands still meanwhile, so "without waiting" is exact.
    tokio::time::pause();
    let started = Instant::now();
    for _ in 0..5 {
        assert_unavailable(&decide(&engine).await.expect_err("open"), OPEN);
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(stub.decision_requests(), 4);
    tokio::time::resume();

    // After the window, with OPA healthy again but holding its answer, so
    // the probe is still in flight: exactly one of a burst gets through.
    stub.hold();
    skip(Duration::from_millis(open_ms)).await;
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { decide(&engine).await })
        })
        .collect();
    until("the probe at OPA, the rest refused", || {
        stub.decision_requests() == 5 && burst.iter().filter(|call| call.is_finished()).count() == 5
    })
    .await;
    stub.release();
    let mut allowed = 0;
    for call in burst {
        match call.await.expect("task ran") {
            Ok(decision) => {
                assert!(decision.allow);
                allowed += 1;
            }
            Err(error) => assert_unavailable(&error, OPEN),
        }
    }
    assert_eq!(allowed, 1, "only the probe is let through");
    assert_eq!(stub.decision_requests(), 5);

    // The probe succeeded: closed again, calls flow.
    stub.set_mode(Mode::Rego);
    for _ in 0..3 {
        decide(&engine).await.expect("closed");
    }
    assert_eq!(stub.decision_requests(), 8);
}

#[tokio::test]
async fn failed_probe_reopens_the_breaker() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Status(500)).await;
    let open = Duration::from_millis(200);
    let engine = remote(RemoteOpaConfig {
        breaker_failure_threshold: 1,
        breaker_open_ms: 200,
        ..remote_config(&stub.url)
    });
    assert_unavailable(&decide(&engine).await.expect_err("500"), UNAVAILABLE);
    assert_unavailable(&decide(&engine).await.expect_err("open"), OPEN);
    assert_eq!(stub.decision_requests(), 1);

    skip(open).await;
    // The probe reaches the server, fails, and re-opens for a new window.
    assert_unavailable(
        &decide(&engine).await.expect_err("probe fails"),
        UNAVAILABLE,
    );
    assert_eq!(stub.decision_requests(), 2);
    assert_unavailable(&decide(&engine).await.expect_err("open again"), OPEN);
    assert_eq!(stub.decision_requests(), 2);

    stub.set_mode(Mode::Rego);
    skip(open).await;
    decide(&engine).await.expect("probe succeeds");
    decide(&engine).await.expect("closed");
    assert_eq!(stub.decision_requests(), 4);
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Status(500)).await;
    let engine = remote(RemoteOpaConfig {
        breaker_failure_threshold: 2,
        breaker_open_ms: 60_000,
        ..remote_config(&stub.url)
    });
    let support_denied = fs_call("support", "fetch_span", "restricted/x");
    for _ in 0..3 {
        stub.set_mode(Mode::Status(500));
        decide(&engine).await.expect_err("one failure");
        stub.set_mode(Mode::Rego);
        // A deny is a successful decision for the breaker.
        let decision = engine
            .decide(&key(), &support_denied)
            .await
            .expect("closed");
        assert!(!decision.allow);
    }
}

/// Scenario 44's `opa` check.
#[tokio::test]
async fn readiness_follows_the_health_endpoint() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote(remote_config(&stub.url));
    assert!(engine.ready().await);
    stub.set_health_status(500);
    assert!(!engine.ready().await);
    stub.set_health_status(204);
    assert!(engine.ready().await);
    assert_eq!(stub.health_checks(), 3);
    // Readiness never touches the decision path or the breaker.
    assert_eq!(stub.decision_requests(), 0);
}

/// A silent OPA is not ready once the check's timeout has passed: on a
/// paused clock, at the timeout (rounded up to the next millisecond).
#[tokio::test(start_paused = true)]
async fn readiness_gives_up_on_a_silent_server_at_the_timeout() {
    let hole = BlackHole::start().await;
    let silent = remote(RemoteOpaConfig {
        timeout_ms: 100,
        ..remote_config(&hole.url)
    });
    let started = Instant::now();
    assert!(!silent.ready().await);
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(100)..=Duration::from_millis(101)).contains(&waited),
        "{waited:?}"
    );
}

#[tokio::test]
async fn trailing_slash_in_url_is_ignored() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote(remote_config(&format!("{}/", stub.url)));
    assert!(decide(&engine).await.expect("decision").allow);
    assert!(engine.ready().await);
}

#[test]
fn start_up_never_contacts_opa_but_checks_the_settings() {
    // Nothing listens there; building the client must still succeed.
    let engine = remote(RemoteOpaConfig::new("http://127.0.0.1:9"));
    assert_eq!(engine.backend(), "opa");
    let build = |config: RemoteOpaConfig| {
        PolicyEngine::new(pecr_policy::PolicyConfig {
            remote: Some(config),
            ..Default::default()
        })
    };
    for bad in [
        RemoteOpaConfig::new("https://127.0.0.1:8181"),
        RemoteOpaConfig::new("not a url"),
        RemoteOpaConfig {
            retry_max_attempts: 11,
            ..RemoteOpaConfig::new("http://127.0.0.1:8181")
        },
        RemoteOpaConfig {
            breaker_failure_threshold: 0,
            ..RemoteOpaConfig::new("http://127.0.0.1:8181")
        },
    ] {
        assert!(build(bad.clone()).is_err(), "{bad:?}");
    }
}

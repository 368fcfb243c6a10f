//! Shared test support: bundle paths, gateway-shaped inputs, and small HTTP
//! servers on 127.0.0.1:0 that play OPA (or a broken OPA).
#![allow(dead_code)] // each test binary uses a different part

pub mod inputs;
pub mod opa_stub;

use std::path::PathBuf;
use std::time::Duration;

use pecr_policy::{PolicyConfig, PolicyEngine, RemoteOpaConfig};

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// `opa/bundle`: the spec's bundle (spec 20 §4.6).
pub fn bundle_dir() -> PathBuf {
    repo_path("opa/bundle")
}

/// `opa/test-bundle`: the test policy T of spec 20 §13.
pub fn test_bundle_dir() -> PathBuf {
    repo_path("opa/test-bundle")
}

pub fn embedded(dir: PathBuf) -> PolicyEngine {
    PolicyEngine::new(PolicyConfig {
        bundle_dir: dir,
        ..PolicyConfig::default()
    })
    .expect("bundle loads")
}

/// A remote config with short timeouts, no retries and a high threshold;
/// tests override what they exercise.
pub fn remote_config(url: &str) -> RemoteOpaConfig {
    RemoteOpaConfig {
        timeout_ms: 500,
        retry_max_attempts: 0,
        retry_base_backoff_ms: 10,
        breaker_failure_threshold: 1_000,
        breaker_open_ms: 1_000,
        ..RemoteOpaConfig::new(url)
    }
}

pub fn remote(config: RemoteOpaConfig) -> PolicyEngine {
    remote_cached(config, 0, 0)
}

pub fn remote_cached(config: RemoteOpaConfig, max_entries: u64, ttl_ms: u64) -> PolicyEngine {
    PolicyEngine::new(PolicyConfig {
        remote: Some(config),
        cache_max_entries: max_entries,
        cache_ttl_ms: ttl_ms,
        ..PolicyConfig::default()
    })
    .expect("remote client builds")
}

/// Moves tokio's clock on by `by` at once. The clock is paused only for
/// the jump, so the stubs' real sockets and the client's timeouts go on in
/// real time afterwards.
pub async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Waits until `done` holds, panicking with `what` after a generous 10 s
/// of wall-clock time. It yields instead of sleeping, so other tasks and
/// the sockets make progress without moving a paused clock.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not reached within 10 s"
        );
        tokio::task::yield_now().await;
    }
}

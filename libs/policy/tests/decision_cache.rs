//! The decision cache, observed from the server side: a cache hit is a
//! decision that did not reach OPA.

mod common;

use std::time::Duration;

use common::inputs::{create_session, fs_call, operator_call};
use common::opa_stub::{Mode, OpaStub};
use common::{bundle_dir, embedded, remote_cached, remote_config, skip};
use pecr_policy::{DecisionKey, PolicyConfig, PolicyEngine, RemoteOpaConfig};
use serde_json::Value;

fn op_key(tenant: &str, principal: &str) -> DecisionKey {
    DecisionKey::new(tenant, principal, "operator_call")
        .with_part("snapshot-hash")
        .with_part("search")
        .with_part("params-hash")
}

fn search(principal: &str) -> Value {
    operator_call(principal, "search", Value::Null, Value::Null)
}

#[tokio::test]
async fn cacheable_decisions_are_reused_for_the_same_key() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote_cached(remote_config(&stub.url), 128, 60_000);
    let first = engine
        .decide(&op_key("local", "dev"), &search("dev"))
        .await
        .expect("decision");
    assert!(first.cacheable);
    for _ in 0..5 {
        let again = engine
            .decide(&op_key("local", "dev"), &search("dev"))
            .await
            .expect("cached");
        assert_eq!(again, first);
    }
    assert_eq!(stub.decision_requests(), 1);
}

#[tokio::test]
async fn keys_differing_only_in_principal_or_tenant_never_share() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote_cached(remote_config(&stub.url), 128, 60_000);
    let dev = engine
        .decide(&op_key("local", "dev"), &search("dev"))
        .await
        .expect("dev");
    assert_eq!(dev.reason.as_deref(), Some("operator_call_dev"));
    // Same parts, other principal: asks OPA and gets support's own answer.
    let support = engine
        .decide(&op_key("local", "support"), &search("support"))
        .await
        .expect("support");
    assert_eq!(
        support.reason.as_deref(),
        Some("operator_call_support_search")
    );
    // Same parts and principal, other tenant: asks OPA again.
    engine
        .decide(&op_key("other-tenant", "dev"), &search("dev"))
        .await
        .expect("tenant");
    assert_eq!(stub.decision_requests(), 3);
    // Each of the three is now cached on its own.
    for (tenant, principal) in [
        ("local", "dev"),
        ("local", "support"),
        ("other-tenant", "dev"),
    ] {
        engine
            .decide(&op_key(tenant, principal), &search(principal))
            .await
            .expect("cached");
    }
    assert_eq!(stub.decision_requests(), 3);
}

#[tokio::test]
async fn non_cacheable_decisions_are_never_cached() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote_cached(remote_config(&stub.url), 128, 60_000);
    let key = DecisionKey::new("local", "dev", "create_session").with_part("snapshot-hash");
    for _ in 0..3 {
        let decision = engine
            .decide(&key, &create_session("dev"))
            .await
            .expect("decision");
        assert!(decision.allow && !decision.cacheable);
    }
    // A default deny is not cacheable either.
    let denied_key = op_key("local", "guest");
    for _ in 0..2 {
        let decision = engine
            .decide(&denied_key, &search("guest"))
            .await
            .expect("deny");
        assert!(!decision.allow && !decision.cacheable);
    }
    assert_eq!(stub.decision_requests(), 5);
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote_cached(remote_config(&stub.url), 128, 60_000);
    let key = op_key("local", "dev");
    engine.decide(&key, &search("dev")).await.expect("decision");
    engine.decide(&key, &search("dev")).await.expect("cached");
    assert_eq!(stub.decision_requests(), 1);
    skip(Duration::from_secs(60)).await;
    engine
        .decide(&key, &search("dev"))
        .await
        .expect("expired, asked again");
    assert_eq!(stub.decision_requests(), 2);
}

#[tokio::test]
async fn zero_entries_or_zero_ttl_turns_the_cache_off() {
    for (entries, ttl) in [(0, 60_000), (128, 0)] {
        let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
        let engine = remote_cached(remote_config(&stub.url), entries, ttl);
        for _ in 0..3 {
            engine
                .decide(&op_key("local", "dev"), &search("dev"))
                .await
                .expect("decision");
        }
        assert_eq!(stub.decision_requests(), 3, "entries={entries} ttl={ttl}");
    }
}

/// Cached decisions stay usable while the breaker is open (the cache is
/// consulted before the breaker); uncached ones are refused.
#[tokio::test]
async fn cached_decisions_are_served_while_the_breaker_is_open() {
    let stub = OpaStub::start(&bundle_dir(), Mode::Rego).await;
    let engine = remote_cached(
        RemoteOpaConfig {
            breaker_failure_threshold: 1,
            breaker_open_ms: 60_000,
            ..remote_config(&stub.url)
        },
        128,
        60_000,
    );
    let warm = engine
        .decide(&op_key("local", "dev"), &search("dev"))
        .await
        .expect("warm");
    stub.set_mode(Mode::Status(500));
    let other = op_key("local", "support");
    engine
        .decide(&other, &search("support"))
        .await
        .expect_err("opens the breaker");
    let refused = engine
        .decide(&other, &search("support"))
        .await
        .expect_err("open");
    assert_eq!(refused.message, "policy engine circuit breaker is open");
    assert_eq!(stub.decision_requests(), 2);

    let cached = engine
        .decide(&op_key("local", "dev"), &search("dev"))
        .await
        .expect("from cache");
    assert_eq!(cached, warm);
    assert_eq!(stub.decision_requests(), 2);
}

#[tokio::test]
async fn failures_are_never_cached() {
    let stub = OpaStub::start(&bundle_dir(), Mode::FailFirst(1, 500)).await;
    let engine = remote_cached(remote_config(&stub.url), 128, 60_000);
    let key = op_key("local", "dev");
    engine
        .decide(&key, &search("dev"))
        .await
        .expect_err("first fails");
    let decision = engine
        .decide(&key, &search("dev"))
        .await
        .expect("then decided");
    assert!(decision.allow);
    engine.decide(&key, &search("dev")).await.expect("cached");
    assert_eq!(stub.decision_requests(), 2);
}

#[tokio::test]
async fn the_embedded_engine_uses_the_cache_too() {
    let engine = PolicyEngine::new(PolicyConfig {
        bundle_dir: bundle_dir(),
        cache_max_entries: 16,
        cache_ttl_ms: 60_000,
        ..PolicyConfig::default()
    })
    .expect("loads");
    // The key, not the input, identifies a cached decision: a caller that
    // reused a key for another input would get the first answer back.
    let key = op_key("local", "support");
    let allowed = fs_call("support", "fetch_span", "public/public_1.txt");
    let first = engine.decide(&key, &allowed).await.expect("decision");
    assert!(first.allow && first.cacheable);
    let denied = fs_call("support", "fetch_span", "restricted/x");
    assert_eq!(engine.decide(&key, &denied).await.expect("cached"), first);
    // Without a cache the input decides.
    assert!(
        !embedded(bundle_dir())
            .decide(&key, &denied)
            .await
            .expect("deny")
            .allow
    );
}

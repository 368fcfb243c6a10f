//! The spec's bundle (spec 20 §4.6) row by row, the test policy T (§13)
//! and scenario 42, all through the embedded engine.

mod common;

use common::inputs::{self, ALL_OPS, create_session, db_call, finalize, fs_call, operator_call};
use common::{bundle_dir, embedded, test_bundle_dir};
use pecr_policy::{Decision, DecisionKey, PolicyEngine};
use serde_json::{Value, json};

fn decision(allow: bool, cacheable: bool, reason: &str, redaction: Value) -> Decision {
    Decision {
        allow,
        cacheable,
        reason: Some(reason.to_owned()),
        redaction: Some(redaction),
    }
}

fn default_deny() -> Decision {
    decision(false, false, "default_deny", json!({}))
}

fn support_redaction() -> Value {
    json!({"deny_fields": ["admin_note", "injection_note"]})
}

async fn decide(engine: &PolicyEngine, input: &Value) -> Decision {
    let key = DecisionKey::new("local", "any", "test");
    engine.decide(&key, input).await.expect("embedded decision")
}

async fn assert_rows(engine: &PolicyEngine, rows: &[(Value, Decision)]) {
    for (input, expected) in rows {
        assert_eq!(&decide(engine, input).await, expected, "input: {input}");
    }
}

#[tokio::test]
async fn health_is_allowed_for_anyone() {
    let engine = embedded(bundle_dir());
    let health = decision(true, true, "health", json!({}));
    assert_rows(
        &engine,
        &[
            (json!({"action": "health"}), health.clone()),
            (
                json!({"action": "health", "principal_id": "dev"}),
                health.clone(),
            ),
            (
                json!({"action": "health", "principal_id": "mallory"}),
                health,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn sessions_and_finalize_for_known_principals_only() {
    let engine = embedded(bundle_dir());
    for principal in ["dev", "support", "guest"] {
        assert_rows(
            &engine,
            &[
                (
                    create_session(principal),
                    decision(true, false, "create_session_dev", json!({})),
                ),
                (
                    finalize(principal),
                    decision(true, false, "finalize_dev", json!({})),
                ),
            ],
        )
        .await;
    }
    for principal in ["mallory", "redacted", "", "Dev"] {
        assert_rows(
            &engine,
            &[
                (create_session(principal), default_deny()),
                (finalize(principal), default_deny()),
            ],
        )
        .await;
    }
    let mut no_principal = create_session("dev");
    no_principal
        .as_object_mut()
        .expect("object")
        .remove("principal_id");
    assert_rows(&engine, &[(no_principal, default_deny())]).await;
}

#[tokio::test]
async fn dev_may_call_the_seven_operators_on_anything() {
    let engine = embedded(bundle_dir());
    let allow = decision(true, true, "operator_call_dev", json!({}));
    for op in ALL_OPS {
        assert_rows(
            &engine,
            &[
                (
                    fs_call("dev", op, "restricted/restricted_1.txt"),
                    allow.clone(),
                ),
                (
                    db_call("dev", op, "safe_customer_view_admin"),
                    allow.clone(),
                ),
                (
                    operator_call("dev", op, Value::Null, Value::Null),
                    allow.clone(),
                ),
            ],
        )
        .await;
    }
    assert_rows(
        &engine,
        &[
            (
                fs_call("dev", "drop_database", "public/public_1.txt"),
                default_deny(),
            ),
            (fs_call("dev", "", "public/public_1.txt"), default_deny()),
        ],
    )
    .await;
}

#[tokio::test]
async fn support_may_search() {
    let engine = embedded(bundle_dir());
    let allow = decision(true, true, "operator_call_support_search", json!({}));
    assert_rows(
        &engine,
        &[
            (
                operator_call("support", "search", Value::Null, Value::Null),
                allow.clone(),
            ),
            (
                fs_call("support", "search", "restricted/restricted_1.txt"),
                allow,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn support_filesystem_ops_need_a_public_or_injection_prefix() {
    let engine = embedded(bundle_dir());
    let allow = decision(true, true, "operator_call_support_fs", support_redaction());
    for op in ["list_versions", "fetch_span", "diff"] {
        assert_rows(
            &engine,
            &[
                (fs_call("support", op, "public/public_1.txt"), allow.clone()),
                (
                    fs_call("support", op, "injection/injection_1.txt"),
                    allow.clone(),
                ),
                (fs_call("support", op, "public/"), allow.clone()),
                (
                    fs_call("support", op, "restricted/restricted_1.txt"),
                    default_deny(),
                ),
                (fs_call("support", op, "restricted/x"), default_deny()),
                (fs_call("support", op, "public"), default_deny()),
                (fs_call("support", op, "publicity/x"), default_deny()),
                (
                    fs_call("support", op, "Public/public_1.txt"),
                    default_deny(),
                ),
                (
                    fs_call("support", op, " public/public_1.txt"),
                    default_deny(),
                ),
                (
                    operator_call("support", op, Value::Null, Value::Null),
                    default_deny(),
                ),
                (
                    operator_call("support", op, json!(7), Value::Null),
                    default_deny(),
                ),
                (
                    operator_call("support", op, json!(["public/x"]), Value::Null),
                    default_deny(),
                ),
                // A readable view does not make a filesystem call readable.
                (
                    db_call("support", op, "safe_customer_view_public"),
                    default_deny(),
                ),
            ],
        )
        .await;
    }
    let mut missing = fs_call("support", "fetch_span", "public/public_1.txt");
    missing.as_object_mut().expect("object").remove("object_id");
    assert_rows(&engine, &[(missing, default_deny())]).await;
}

#[tokio::test]
async fn support_database_ops_need_an_allowlisted_view() {
    let engine = embedded(bundle_dir());
    let allow = decision(true, true, "operator_call_support_db", support_redaction());
    for op in ["fetch_rows", "aggregate"] {
        assert_rows(
            &engine,
            &[
                (
                    db_call("support", op, "safe_customer_view_public"),
                    allow.clone(),
                ),
                (
                    db_call("support", op, "safe_customer_view_support"),
                    allow.clone(),
                ),
                (
                    db_call("support", op, "safe_customer_view_admin"),
                    default_deny(),
                ),
                (
                    db_call("support", op, "safe_customer_view_injection"),
                    default_deny(),
                ),
                (
                    db_call("support", op, "safe_customer_view_public_slow"),
                    default_deny(),
                ),
                (db_call("support", op, "safe_customer_view"), default_deny()),
                (
                    operator_call("support", op, Value::Null, Value::Null),
                    default_deny(),
                ),
                (
                    fs_call("support", op, "public/public_1.txt"),
                    default_deny(),
                ),
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn support_may_not_redact() {
    let engine = embedded(bundle_dir());
    assert_rows(
        &engine,
        &[
            (
                fs_call("support", "redact", "public/public_1.txt"),
                default_deny(),
            ),
            (
                db_call("support", "redact", "safe_customer_view_public"),
                default_deny(),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn guests_and_unknown_principals_get_no_operator() {
    let engine = embedded(bundle_dir());
    for principal in ["guest", "mallory", "redacted", "", "DEV"] {
        for op in ALL_OPS {
            assert_rows(
                &engine,
                &[
                    (
                        fs_call(principal, op, "public/public_1.txt"),
                        default_deny(),
                    ),
                    (
                        db_call(principal, op, "safe_customer_view_public"),
                        default_deny(),
                    ),
                ],
            )
            .await;
        }
    }
}

#[tokio::test]
async fn unknown_actions_and_empty_input_are_denied() {
    let engine = embedded(bundle_dir());
    assert_rows(
        &engine,
        &[
            (json!({}), default_deny()),
            (
                json!({"action": "delete_everything", "principal_id": "dev"}),
                default_deny(),
            ),
            (json!({"action": "Health"}), default_deny()),
            (json!({"action": 1, "principal_id": "dev"}), default_deny()),
            (json!([1, 2, 3]), default_deny()),
            (Value::Null, default_deny()),
            (json!("operator_call"), default_deny()),
        ],
    )
    .await;
}

/// Scenario 42: simulate as support through the bundle.
#[tokio::test]
async fn scenario_42_simulate_support_fetch_span() {
    let engine = embedded(bundle_dir());
    let public = inputs::simulate(
        "support",
        "operator_call",
        json!({"op_name": "fetch_span", "object_id": "public/public_1.txt"}),
    );
    assert_eq!(
        decide(&engine, &public).await,
        decision(true, true, "operator_call_support_fs", support_redaction())
    );
    let restricted = inputs::simulate(
        "support",
        "operator_call",
        json!({"op_name": "fetch_span", "object_id": "restricted/x"}),
    );
    assert_eq!(decide(&engine, &restricted).await, default_deny());
    // principal_id in params is not copied over the caller's.
    let spoofed = inputs::simulate(
        "support",
        "operator_call",
        json!({"op_name": "fetch_span", "object_id": "restricted/x", "principal_id": "dev"}),
    );
    assert_eq!(spoofed["principal_id"], "support");
    assert_eq!(decide(&engine, &spoofed).await, default_deny());
    // What the simulate endpoint replies: all four fields present here.
    assert_eq!(
        serde_json::to_value(decide(&engine, &public).await).expect("json"),
        json!({
            "allow": true,
            "cacheable": true,
            "reason": "operator_call_support_fs",
            "redaction": {"deny_fields": ["admin_note", "injection_note"]},
        })
    );
}

fn test_allow(cacheable: bool, redaction: Value) -> Decision {
    decision(true, cacheable, "test_allow", redaction)
}

fn test_deny(cacheable: bool) -> Decision {
    decision(false, cacheable, "test_deny", json!({}))
}

#[tokio::test]
async fn test_policy_t_sessions_include_redacted() {
    let engine = embedded(test_bundle_dir());
    for principal in ["dev", "support", "guest", "redacted"] {
        assert_rows(
            &engine,
            &[
                (create_session(principal), test_allow(false, json!({}))),
                (finalize(principal), test_allow(false, json!({}))),
            ],
        )
        .await;
    }
    assert_rows(
        &engine,
        &[
            (create_session("mallory"), test_deny(false)),
            (finalize("mallory"), test_deny(false)),
            (json!({"action": "health"}), test_allow(false, json!({}))),
            (json!({}), test_deny(false)),
            (
                json!({"action": "nope", "principal_id": "dev"}),
                test_deny(false),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn test_policy_t_operator_calls() {
    let engine = embedded(test_bundle_dir());
    let redacted = json!({"deny_fields": ["admin_note"]});
    for op in ALL_OPS.iter().copied().chain(["anything"]) {
        assert_rows(
            &engine,
            &[
                (
                    fs_call("dev", op, "restricted/restricted_1.txt"),
                    test_allow(true, json!({})),
                ),
                (
                    db_call("redacted", op, "safe_customer_view_admin"),
                    test_allow(true, redacted.clone()),
                ),
                (fs_call("guest", op, "public/public_1.txt"), test_deny(true)),
                (
                    fs_call("mallory", op, "public/public_1.txt"),
                    test_deny(true),
                ),
            ],
        )
        .await;
    }
    // Support keeps the bundle's rules but gets no redaction.
    assert_rows(
        &engine,
        &[
            (
                operator_call("support", "search", Value::Null, Value::Null),
                test_allow(true, json!({})),
            ),
            (
                fs_call("support", "fetch_span", "public/public_1.txt"),
                test_allow(true, json!({})),
            ),
            (
                fs_call("support", "diff", "injection/injection_1.txt"),
                test_allow(true, json!({})),
            ),
            (
                fs_call("support", "fetch_span", "restricted/restricted_1.txt"),
                test_deny(true),
            ),
            (
                operator_call("support", "list_versions", Value::Null, Value::Null),
                test_deny(true),
            ),
            (
                db_call("support", "fetch_rows", "safe_customer_view_support"),
                test_allow(true, json!({})),
            ),
            (
                db_call("support", "aggregate", "safe_customer_view_public"),
                test_allow(true, json!({})),
            ),
            (
                db_call("support", "fetch_rows", "safe_customer_view_admin"),
                test_deny(true),
            ),
            (
                db_call("support", "redact", "safe_customer_view_public"),
                test_deny(true),
            ),
        ],
    )
    .await;
}

/// Many tasks on a multi-threaded runtime share one engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_are_independent() {
    let engine = embedded(bundle_dir());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let engine = engine.clone();
        tasks.spawn(async move {
            let (input, expected) = if i % 2 == 0 {
                (
                    fs_call("support", "fetch_span", "public/public_1.txt"),
                    true,
                )
            } else {
                (
                    fs_call("support", "fetch_span", "restricted/restricted_1.txt"),
                    false,
                )
            };
            let key = DecisionKey::new("local", "support", "operator_call");
            let decision = engine.decide(&key, &input).await.expect("decision");
            assert_eq!(decision.allow, expected);
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task ran");
    }
}

//! Gateway acceptance scenarios (spec 20 §15) through gRPC, against real
//! PostgreSQL, real Rego and the real ledger-writer.

mod common;

use std::time::Duration;

use common::*;
use pecr_contracts::hashing::{PolicySnapshotInputs, policy_snapshot_hash};
use pecr_contracts::{is_sha256_hex, sha256_hex};
use pecr_errors::ErrorCode;
use pecr_proto::v1::{self, claim::Status};
use serde_json::{Value, json};
use tonic::Code;

const RESTRICTED_CANARY: &str = "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f";

#[tokio::test]
async fn dev_reads_every_source_and_finalizes_with_cited_evidence() {
    let mut mesh = Mesh::start(Policy::Test).await;
    let mut dev = mesh.session("dev").await;
    // Scenario 13.
    assert!(!dev.token.is_empty());
    assert!(pecr_contracts::ids::parse_ulid(&dev.trace_id).is_some());

    // Scenario 14: versions are the sha256 of the file bytes.
    for object_id in ["restricted/restricted_1.txt", "injection/injection_1.txt"] {
        let bytes = std::fs::read(mesh.corpus.join(object_id)).expect("fixture");
        let result = dev
            .op("list_versions", json!({"object_id": object_id}))
            .await
            .expect("list_versions");
        assert_eq!(
            result["versions"][0]["version_id"],
            json!(sha256_hex(&bytes))
        );
    }

    // Scenario 16.
    let found = dev
        .op("search", json!({"query": RESTRICTED_CANARY, "limit": 5}))
        .await
        .expect("search");
    let objects: Vec<&str> = found["refs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    assert_eq!(objects, ["restricted/restricted_1.txt"]);

    // Scenario 17.
    let unit = dev
        .op(
            "fetch_span",
            json!({"object_id": "restricted/restricted_1.txt"}),
        )
        .await
        .expect("fetch_span");
    assert!(is_sha256_hex(
        unit["evidence_unit_id"].as_str().unwrap_or_default()
    ));
    assert!(
        unit["content"]
            .as_str()
            .unwrap_or_default()
            .contains(RESTRICTED_CANARY)
    );

    // Scenario 18.
    let rows = dev
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_admin", "fields": ["admin_note"]}),
        )
        .await
        .expect("fetch_rows");
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|u| u["span_or_row_spec"]["type"] == "db_row"
                && u["span_or_row_spec"]["view_id"] == "safe_customer_view_admin")
    );
    assert!(rows.iter().any(|u| {
        u["content"]["admin_note"]
            .as_str()
            .is_some_and(|n| n.starts_with("PECR_CANARY_PG_ADMIN_DELTA_"))
    }));

    // Scenario 19.
    let aggregate = dev
        .op(
            "aggregate",
            json!({"view_id": "safe_customer_view_public", "group_by": ["plan_tier"], "metrics": [{"name": "count", "field": "customer_id"}]}),
        )
        .await
        .expect("aggregate");
    assert_eq!(aggregate["span_or_row_spec"]["type"], "db_aggregate");
    assert!(is_sha256_hex(
        aggregate["span_or_row_spec"]["filter_fingerprint"]
            .as_str()
            .unwrap_or_default()
    ));
    let counts: Vec<(String, i64)> = aggregate["content"]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            (
                row["group"]["plan_tier"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                row["metrics"][0]["value"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("enterprise".to_owned(), 1), ("free".to_owned(), 1)]
    );

    // Scenario 26: injection text comes back verbatim and changes nothing.
    let injection = dev
        .op(
            "fetch_span",
            json!({"object_id": "injection/injection_1.txt"}),
        )
        .await
        .expect("injection file");
    assert!(
        injection["content"]
            .as_str()
            .unwrap_or_default()
            .contains("PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c")
    );
    let steering = dev
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_injection", "fields": ["injection_note"], "filter_spec": {"customer_id": "cust_restricted_1"}}),
        )
        .await
        .expect("injection row");
    assert!(
        steering[0]["content"]["injection_note"]
            .as_str()
            .unwrap_or_default()
            .contains("safe_customer_view")
    );

    // Scenario 31: a supported claim citing emitted evidence.
    let mut public = mesh.session("dev").await;
    let unit = public
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("public file");
    let id = unit["evidence_unit_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bundle_hash =
        pecr_policy::bundle_hash(&pecr_testkit::workspace_root().join("opa/test-bundle"))
            .expect("bundle hash");
    let snapshot = policy_snapshot_hash(&PolicySnapshotInputs {
        principal_id: "dev",
        tenant_id: "local",
        principal_roles: &[],
        principal_attrs_hash: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        policy_bundle_hash: &bundle_hash,
        as_of_time: "1970-01-01T00:00:00Z",
    });
    assert_eq!(
        unit["policy_snapshot_hash"],
        json!(snapshot),
        "the snapshot hash follows the recipe"
    );
    let finalized = public
        .finalize(vec![claim(
            "public doc retrieved",
            Status::Supported,
            &[&id],
        )])
        .await
        .expect("finalize");
    assert_eq!(finalized.terminal_mode, v1::TerminalMode::Supported as i32);
    let claim_map = finalized.claim_map.expect("claim map");
    assert!(claim_map.coverage_observed >= claim_map.coverage_threshold);
    assert_eq!(finalized.trace_id, public.trace_id);

    let mut empty = mesh.session("dev").await;
    let unsupported = empty
        .finalize(vec![claim("unsupported claim", Status::Supported, &[])])
        .await
        .expect("finalize");
    assert_eq!(
        unsupported.terminal_mode,
        v1::TerminalMode::InsufficientEvidence as i32
    );
    let claim_map = unsupported.claim_map.expect("claim map");
    assert_eq!(
        claim_map.claims[0].claim_id,
        "aeda7293c2ba8690560507997bade281b49dc52a6c17c5ef51bc255b52591ed7"
    );

    // Scenario 34 (ledger part): the trace has every event type.
    let events = mesh.events(&public.trace_id).await;
    for kind in [
        "POLICY_DECISION",
        "OPERATOR_CALL",
        "EVIDENCE_EMITTED",
        "FINALIZE_RESULT",
    ] {
        assert!(
            events.iter().any(|(t, _)| t == kind),
            "{kind} missing from {events:?}"
        );
    }
    let leaks: i64 = mesh
        .db
        .client()
        .query_one(
            "SELECT count(*) FROM pecr_ledger_events WHERE event_type = 'LEAK_DETECTED'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(leaks, 0);

    // Scenarios 20, 31, 33: correlation in logs; no canary, title or evidence id.
    let logs = mesh.logs().join("\n");
    assert!(
        logs.lines()
            .any(|l| l.contains(&dev.trace_id) && l.contains("req-test-1")),
        "a line carries trace_id and request_id"
    );
    assert!(
        logs.contains("session_id")
            && logs.contains("policy_snapshot_id")
            && logs.contains("principal_id")
    );
    assert_no_canary("gateway logs", &logs);
    assert!(!logs.contains("Restricted fixture document (restricted_1)."));
    assert!(!logs.contains(&id), "evidence ids stay out of logs");
}

#[tokio::test]
async fn leakage_matrix_holds_for_every_principal() {
    let mut mesh = Mesh::start(Policy::Bundle).await;
    // Scenario 21/22 under the production bundle.
    let mut support = mesh.session("support").await;
    let denied = support
        .op(
            "fetch_span",
            json!({"object_id": "restricted/restricted_1.txt"}),
        )
        .await
        .expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let err = error(&denied);
    assert_eq!(
        (err.code, err.http_status, err.message.as_str()),
        (ErrorCode::PolicyDenied, 403, "policy denied")
    );
    assert_no_canary("403 body", &format!("{denied:?}"));
    let denied = support
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_admin", "fields": ["admin_note"]}),
        )
        .await
        .expect_err("admin view denied");
    assert_eq!(error(&denied).http_status, 403);

    // Scenario 28 (bundle): support's DB reads are redacted.
    let rows = support
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_support", "fields": ["support_note", "status"]}),
        )
        .await
        .expect("support view");
    for unit in rows.as_array().into_iter().flatten() {
        assert!(
            unit["content"].get("admin_note").is_none()
                && unit["content"].get("injection_note").is_none()
        );
        assert!(
            unit["content"]["support_note"]
                .as_str()
                .is_some_and(|n| n.starts_with("PECR_CANARY_PG_SUPPORT_EPSILON_"))
        );
    }

    // Search never names an object support may not read: refs are filtered
    // per object by policy (decision 1).
    let refs = support
        .op("search", json!({"query": "fixture document", "limit": 50}))
        .await
        .expect("search");
    let objects: Vec<&str> = refs["refs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    assert!(
        objects.contains(&"public/public_1.txt") && objects.contains(&"injection/injection_1.txt"),
        "{objects:?}"
    );
    assert!(
        !objects.iter().any(|o| o.starts_with("restricted/")),
        "{objects:?}"
    );

    // Scenario 24.
    let mut guest = mesh.session("guest").await;
    let denied = guest
        .op("search", json!({"query": "public", "limit": 1}))
        .await
        .expect_err("guest search");
    assert_eq!(error(&denied).http_status, 403);
    let denied = guest
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_public", "fields": ["status"]}),
        )
        .await
        .expect_err("guest rows");
    let err = error(&denied);
    assert_eq!(
        (err.http_status, err.hint),
        (403, v1::TerminalMode::InsufficientPermission)
    );

    // Unknown principals cannot even open a session.
    let status = mesh
        .session_with("mallory", budget(10, 1024), None)
        .await
        .err()
        .expect("unknown principal");
    assert_eq!(error(&status).http_status, 403);

    // Scenario 25.
    let logs = mesh.logs().join("\n");
    assert_no_canary("gateway logs", &logs);
    for session in [&support, &guest] {
        let events = mesh.events(&session.trace_id).await;
        assert!(events.iter().all(|(t, _)| t != "LEAK_DETECTED"));
        assert!(
            events
                .iter()
                .any(|(t, p)| t == "POLICY_DECISION" && p["decision"] == "deny")
        );
    }
}

#[tokio::test]
async fn the_test_policy_redacts_and_lets_support_see_its_notes() {
    let mesh = Mesh::start(Policy::Test).await;
    // Scenario 23.
    let mut support = mesh.session("support").await;
    let rows = support
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_support", "fields": ["support_note"]}),
        )
        .await
        .expect("support rows");
    assert!(rows.to_string().contains("PECR_CANARY_PG_SUPPORT_EPSILON_"));

    // Scenario 28 (T): principal `redacted` never sees admin_note.
    let mut redacted = mesh.session("redacted").await;
    let rows = redacted
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_admin", "fields": ["admin_note", "status"]}),
        )
        .await
        .expect("redacted rows");
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty());
    for unit in &rows {
        assert!(unit["content"].get("admin_note").is_none());
        assert_eq!(unit["span_or_row_spec"]["fields"], json!(["status"]));
        assert_eq!(unit["transform_chain"][0]["transform_type"], "redaction");
    }
    assert!(
        !Value::Array(rows)
            .to_string()
            .contains("PECR_CANARY_PG_ADMIN_DELTA_")
    );
}

#[tokio::test]
async fn staleness_follows_as_of_time() {
    let mesh = Mesh::start(Policy::Test).await;
    let (t1, t2) = ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
    let path = mesh.corpus.join("public/public_1.txt");
    let original = std::fs::read_to_string(&path).expect("fixture");

    // Scenario 29.
    let mut first = mesh
        .session_with("dev", budget(10, 1_048_576), Some(t1))
        .await
        .expect("t1 session");
    let versions = first
        .op("list_versions", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("versions");
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
    let v1 = versions["versions"][0]["version_id"].clone();
    let span = first
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("t1 span");
    assert_eq!(span["content"], json!(original));

    std::fs::write(&path, format!("{original}STALENESS_MARKER_V2\n")).expect("modify file");
    let mut second = mesh
        .session_with("dev", budget(10, 1_048_576), Some(t2))
        .await
        .expect("t2 session");
    let versions = second
        .op("list_versions", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("versions");
    let listed: Vec<&Value> = versions["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| &v["version_id"])
        .collect();
    assert!(listed.len() >= 2 && listed.contains(&&v1), "{versions}");
    let span = second
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("t2 span");
    assert!(
        span["content"]
            .as_str()
            .unwrap_or_default()
            .contains("STALENESS_MARKER_V2")
    );

    let mut again = mesh
        .session_with("dev", budget(10, 1_048_576), Some(t1))
        .await
        .expect("new t1 session");
    let span = again
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("t1 span again");
    assert_eq!(
        span["content"],
        json!(original),
        "a new session at t1 still sees V1"
    );

    // Scenario 30.
    let params = json!({"view_id": "safe_customer_view_public", "fields": ["status"], "filter_spec": {"customer_id": "cust_public_1"}});
    let mut row_t1 = mesh
        .session_with("dev", budget(10, 1_048_576), Some(t1))
        .await
        .expect("t1");
    let before = row_t1
        .op("fetch_rows", params.clone())
        .await
        .expect("t1 row");
    assert_eq!(before[0]["content"]["status"], "active");
    mesh.db
        .client()
        .batch_execute("UPDATE pecr_fixture_customers SET status = 'STALENESS_ROW_MARKER', updated_at = '2026-02-01T00:00:00Z' WHERE customer_id = 'cust_public_1'")
        .await
        .expect("update row");
    let mut row_t2 = mesh
        .session_with("dev", budget(10, 1_048_576), Some(t2))
        .await
        .expect("t2");
    let after = row_t2
        .op("fetch_rows", params.clone())
        .await
        .expect("t2 row");
    assert_eq!(after[0]["content"]["status"], "STALENESS_ROW_MARKER");
    assert_ne!(after[0]["version_id"], before[0]["version_id"]);
    let mut row_again = mesh
        .session_with("dev", budget(10, 1_048_576), Some(t1))
        .await
        .expect("t1 again");
    let again = row_again
        .op("fetch_rows", params)
        .await
        .expect("t1 row again");
    assert_eq!(
        (&again[0]["version_id"], &again[0]["content"]["status"]),
        (&before[0]["version_id"], &json!("active"))
    );
}

#[tokio::test]
async fn budgets_are_enforced_and_recorded() {
    let mut mesh = Mesh::start(Policy::Test).await;
    // Scenario 35.
    let mut dev = mesh
        .session_with("dev", budget(1, 1_048_576), None)
        .await
        .expect("session");
    dev.op("list_versions", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("first call fits");
    let refused = dev
        .op("list_versions", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect_err("over budget");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let err = error(&refused);
    assert_eq!(
        (err.code, err.http_status, err.hint, err.retryable),
        (
            ErrorCode::BudgetExceeded,
            429,
            v1::TerminalMode::InsufficientEvidence,
            false
        )
    );
    let events = mesh.events(&dev.trace_id).await;
    assert!(
        events
            .iter()
            .any(|(t, p)| t == "BUDGET_VIOLATION" && p["max_operator_calls"] == 1)
    );

    // Bytes are checked before a result is returned (decision 2).
    let mut tight = mesh
        .session_with("dev", budget(10, 200), None)
        .await
        .expect("session");
    let refused = tight
        .op(
            "fetch_span",
            json!({"object_id": "injection/injection_1.txt"}),
        )
        .await
        .expect_err("result too big");
    assert_eq!(error(&refused).code, ErrorCode::BudgetExceeded);
    let session_events = mesh.events(&tight.trace_id).await;
    assert!(
        session_events.iter().all(|(t, _)| t != "EVIDENCE_EMITTED"),
        "no evidence is emitted past the budget"
    );

    // Invalid budgets and times are 400s.
    for (budget, as_of, message) in [
        (
            budget(10_001, 1024),
            None,
            "invalid budget: max_operator_calls out of range",
        ),
        (
            budget(10, 1024),
            Some("2026-13-01T00:00:00Z"),
            "as_of_time is not a valid calendar date and time",
        ),
        (
            budget(10, 1024),
            Some("yesterday"),
            "as_of_time must be RFC3339 UTC (YYYY-MM-DDTHH:MM:SSZ)",
        ),
    ] {
        let status = mesh
            .session_with("dev", budget, as_of)
            .await
            .err()
            .expect("invalid");
        assert_eq!(
            (error(&status).http_status, error(&status).message),
            (400, message.to_owned())
        );
    }
    let metrics = pecr_testkit::http_get(&mesh.gateway.http_url("/metrics"))
        .await
        .body;
    assert!(
        metrics.contains("pecr_gateway_budget_violations_total 2"),
        "{metrics}"
    );
    let _ = mesh.logs();
}

#[tokio::test]
async fn the_gateway_reads_the_safe_views_as_the_limited_safeview_role() {
    let mesh = Mesh::start_least_privilege(Policy::Test).await;
    // Readiness settles once the first checks have run, as the limited role.
    eventually("ready", Duration::from_secs(10), || {
        let url = mesh.url("/readyz");
        async move { (pecr_testkit::http_get(&url).await.status == 200).then_some(()) }
    })
    .await;

    let mut dev = mesh.session("dev").await;
    let rows = dev
        .op(
            "fetch_rows",
            json!({"view_id": "safe_customer_view_admin", "fields": ["admin_note"]}),
        )
        .await
        .expect("fetch_rows as pecr_safeview_read");
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "both rows of tenant local: {rows:?}");
    let aggregate = dev
        .op(
            "aggregate",
            json!({"view_id": "safe_customer_view_public", "group_by": ["status"], "metrics": [{"name": "count", "field": "customer_id"}]}),
        )
        .await
        .expect("aggregate as pecr_safeview_read");
    assert_eq!(aggregate["span_or_row_spec"]["type"], "db_aggregate");

    // ledger-writer, as pecr_ledger_rw, recorded the calls and the finalize.
    let id = rows[0]["evidence_unit_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let finalized = dev
        .finalize(vec![claim("a customer exists", Status::Supported, &[&id])])
        .await
        .expect("finalize");
    assert_eq!(finalized.terminal_mode, v1::TerminalMode::Supported as i32);
    let events = mesh.events(&dev.trace_id).await;
    for kind in ["OPERATOR_CALL", "EVIDENCE_EMITTED", "FINALIZE_RESULT"] {
        assert!(
            events.iter().any(|(t, _)| t == kind),
            "{kind} missing from {events:?}"
        );
    }
}

#[tokio::test]
async fn one_supported_claim_among_unknown_ones_is_not_supported() {
    let mesh = Mesh::start(Policy::Test).await;
    let mut session = mesh.session("dev").await;
    let unit = session
        .op("fetch_span", json!({"object_id": "public/public_1.txt"}))
        .await
        .expect("public file");
    let id = unit["evidence_unit_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut claims = vec![claim("public doc retrieved", Status::Supported, &[&id])];
    claims.extend((0..200).map(|n| claim(&format!("unverified guess {n}"), Status::Unknown, &[])));
    let finalized = session.finalize(claims).await.expect("finalize");
    assert_eq!(
        finalized.terminal_mode,
        v1::TerminalMode::InsufficientEvidence as i32
    );
    let claim_map = finalized.claim_map.expect("claim map");
    assert_eq!(claim_map.coverage_observed, 1.0 / 201.0);
    let recorded = mesh
        .events(&session.trace_id)
        .await
        .into_iter()
        .find(|(event_type, _)| event_type == "FINALIZE_RESULT")
        .map(|(_, payload)| payload)
        .expect("FINALIZE_RESULT");
    assert_eq!(recorded["coverage_observed"], json!(1.0 / 201.0));
    assert_eq!(recorded["terminal_mode"], json!("INSUFFICIENT_EVIDENCE"));
}

#[tokio::test]
async fn policy_simulation_is_rate_limited_per_principal() {
    let mesh = Mesh::start_with(
        Policy::Bundle,
        &[("PECR_RATE_LIMIT_SIMULATE_PER_WINDOW", "2".into())],
    )
    .await;
    let simulate = |principal: &str| {
        call(
            principal,
            None,
            v1::SimulatePolicyRequest {
                action: "operator_call".into(),
                params: json!({"op_name": "fetch_span", "object_id": "public/public_1.txt"})
                    .to_string(),
                policy_snapshot_hash: None,
                policy_bundle_hash: None,
                as_of_time: None,
            },
        )
    };
    for _ in 0..2 {
        mesh.client()
            .simulate_policy(simulate("support"))
            .await
            .expect("within the limit");
    }
    let status = mesh
        .client()
        .simulate_policy(simulate("support"))
        .await
        .expect_err("over the limit");
    let refused = error(&status);
    assert_eq!(
        (refused.code, refused.http_status, refused.retryable),
        (ErrorCode::RateLimited, 429, true)
    );
    assert_eq!(refused.message, "rate limit exceeded for policy simulation");
    assert_eq!(status.code(), Code::ResourceExhausted);
    mesh.client()
        .simulate_policy(simulate("dev"))
        .await
        .expect("another principal has its own quota");
}

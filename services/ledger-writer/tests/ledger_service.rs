//! LedgerService against a real PostgreSQL, through the real binary and a
//! real tonic client.

mod common;

use common::*;
use pecr_contracts::{canonical_json, hash_canonical_json};
use pecr_errors::ErrorCode;
use pecr_proto::v1;
use serde_json::{Value, json};
use tonic::Code;

#[tokio::test]
async fn migrations_apply_on_an_empty_schema_and_rerun_as_a_no_op() {
    let db = pecr_testkit::TestDatabase::create().await;
    pecr_ledger_writer::migrate(&db.url())
        .await
        .expect("first migration run");
    let applied = db.count("refinery_schema_history").await;
    pecr_ledger_writer::migrate(&db.url())
        .await
        .expect("second migration run");
    assert_eq!(db.count("refinery_schema_history").await, applied);
    assert_eq!(
        usize::try_from(applied).ok(),
        Some(pecr_ledger_writer::migration_count())
    );
    let version: i64 = db
        .client()
        .query_one(
            "SELECT max(version)::bigint FROM refinery_schema_history",
            &[],
        )
        .await
        .expect("history")
        .get(0);
    assert_eq!(version, pecr_ledger_writer::LAST_MIGRATION_VERSION);
}

#[tokio::test]
async fn a_session_round_trips_with_its_runtime_state() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s1", "dev").await;
    assert_eq!(session.trace_id, "trace-s1");
    assert_eq!(session.principal_id, "dev");
    assert_eq!(session.tenant_id, "local");
    assert_eq!(session.as_of_time, AS_OF);
    assert_eq!(session.budget, Some(budget(10, 1024, Some(4))));
    assert_eq!(
        (
            session.operator_calls_used,
            session.bytes_used,
            session.finalized
        ),
        (0, 0, false)
    );
    assert!(session.evidence_unit_ids.is_empty());

    let units = vec![
        text_evidence(&session, "public/a.txt", "alpha\n"),
        text_evidence(&session, "public/b.txt", "beta\n"),
    ];
    let mut expected_ids: Vec<String> = units.iter().map(|u| u.evidence_unit_id.clone()).collect();
    expected_ids.sort();
    let mut request = operator_call(&session, units);
    request.operator_calls_used = 2;
    request.bytes_used = 200;
    ledger
        .client
        .record_operator_call(request)
        .await
        .expect("operator call recorded");

    let loaded = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "s1".into(),
        })
        .await
        .expect("get_session")
        .into_inner()
        .session
        .expect("session");
    assert_eq!((loaded.operator_calls_used, loaded.bytes_used), (2, 200));
    assert_eq!(loaded.evidence_unit_ids, expected_ids);
    assert_eq!(loaded.budget, session.budget);
    assert!(!loaded.finalized);

    let snapshot = ledger
        .client
        .get_policy_snapshot(v1::GetPolicySnapshotRequest {
            policy_snapshot_id: session.policy_snapshot_id.clone(),
        })
        .await
        .expect("snapshot")
        .into_inner()
        .policy_snapshot;
    assert_eq!(snapshot, Some(common::snapshot("dev", "local")));
}

#[tokio::test]
async fn a_budget_without_parallelism_is_stored_with_null() {
    let mut ledger = start_ledger().await;
    let mut request = session_request("s-nopar", "dev");
    request.budget = Some(budget(10, 1024, None));
    ledger
        .client
        .record_session(request)
        .await
        .expect("session recorded");
    let stored: String = ledger
        .db
        .client()
        .query_one("SELECT budget_json::text FROM pecr_sessions", &[])
        .await
        .expect("row")
        .get(0);
    let stored: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["max_parallelism"], Value::Null);
}

#[tokio::test]
async fn events_store_the_canonical_payload_hash_and_rehash_the_same() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-ev", "dev").await;
    let payload = json!({"k":"v","obj":{"a":"b","c":"d"},"arr":["x","y"]});
    let mut new_event = event(&session, "POLICY_DECISION", payload);
    new_event.payload_hash = None;
    let response = ledger
        .client
        .append_event(v1::AppendEventRequest {
            event: Some(new_event),
        })
        .await
        .expect("append")
        .into_inner();
    let v6 = "6695997f09fb6c27486a8f66e708691bbd454ccb76aae57c765532c88a095507";
    assert_eq!(response.payload_hash, v6);

    let row = ledger
        .db
        .client()
        .query_one(
            "SELECT payload_json::text, payload_hash FROM pecr_ledger_events WHERE event_id = $1",
            &[&response.event_id],
        )
        .await
        .expect("row");
    let stored: Value = serde_json::from_str(&row.get::<_, String>(0)).expect("json");
    assert_eq!(hash_canonical_json(&stored), v6);
    assert_eq!(row.get::<_, String>(1), v6);

    let listed = ledger
        .auditor
        .list_events(v1::ListEventsRequest {
            trace_id: Some(session.trace_id.clone()),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .events;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].payload,
        r#"{"arr":["x","y"],"k":"v","obj":{"a":"b","c":"d"}}"#
    );
    assert_eq!(listed[0].event_type, "POLICY_DECISION");
}

#[tokio::test]
async fn ledger_tables_refuse_update_delete_and_truncate_in_the_database() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-ao", "dev").await;
    let unit = text_evidence(&session, "public/a.txt", "alpha\n");
    let id = unit.evidence_unit_id.clone();
    ledger
        .client
        .record_operator_call(operator_call(&session, vec![unit]))
        .await
        .expect("operator call");
    let claims = vec![claim(
        "alpha is stated",
        v1::claim::Status::Supported,
        &[id],
    )];
    ledger
        .client
        .record_finalize(finalize_request(&session, "cm-ao", claims))
        .await
        .expect("finalize");

    let tables = [
        ("pecr_policy_snapshots", "policy_snapshot_id"),
        ("pecr_ledger_events", "event_id"),
        ("pecr_evidence_units", "evidence_unit_id"),
        ("pecr_claim_maps", "claim_map_id"),
    ];
    let sql = ledger.db.client();
    for (table, key) in tables {
        assert!(ledger.db.count(table).await > 0, "{table} has a row");
        for statement in [
            format!("UPDATE {table} SET {key} = {key}"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table} CASCADE"),
        ] {
            let err = sql.batch_execute(&statement).await.expect_err(&statement);
            let message = err
                .as_db_error()
                .map(|db| db.message().to_owned())
                .unwrap_or_default();
            assert_eq!(
                message,
                format!("append-only table: {table}"),
                "{statement}"
            );
        }
    }
    // Sessions move only through their state machine (tests/ledger_roles.rs):
    // touching the runtime row and rewriting a value with itself are allowed.
    sql.batch_execute("UPDATE pecr_session_runtime SET updated_at = now()")
        .await
        .expect("updated_at may move");
    sql.batch_execute("UPDATE pecr_sessions SET trace_id = trace_id")
        .await
        .expect("an unchanged row is no change");
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_writes_nothing() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-bad", "dev").await;
    let before = counts(&ledger.db).await;

    let mut wrong_hash = session_request("s-x1", "dev");
    if let Some(snapshot) = wrong_hash.policy_snapshot.as_mut() {
        snapshot.policy_snapshot_hash = "b".repeat(64);
    }
    let mut bad_budget = session_request("s-x2", "dev");
    bad_budget.budget = Some(budget(10, 67_108_865, None));
    let mut bad_time = session_request("s-x3", "dev");
    if let Some(snapshot) = bad_time.policy_snapshot.as_mut() {
        snapshot.as_of_time = "2026-13-01T00:00:00Z".into();
    }
    for (request, message) in [
        (
            wrong_hash,
            "policy_snapshot.policy_snapshot_hash does not match the snapshot inputs",
        ),
        (bad_budget, "invalid budget: max_bytes out of range"),
        (
            bad_time,
            "policy_snapshot.as_of_time: as_of_time is not a valid calendar date and time",
        ),
    ] {
        let status = ledger
            .client
            .record_session(request)
            .await
            .expect_err(message);
        assert_eq!(status.code(), Code::InvalidArgument);
        let error = pecr_error(&status);
        assert_eq!(
            (error.code, error.http_status, error.message.as_str()),
            (ErrorCode::InvalidParams, 400, message)
        );
    }

    let mut bad_payload_hash = event(&session, "POLICY_DECISION", json!({"a": 1}));
    bad_payload_hash.payload_hash = Some("c".repeat(64));
    let unknown_type = event(&session, "SOMETHING_ELSE", json!({"a": 1}));
    let mut not_json = event(&session, "POLICY_DECISION", json!({}));
    not_json.payload = "{not json".into();
    let negative_zero = {
        let mut e = event(&session, "POLICY_DECISION", json!({}));
        e.payload = r#"{"x":-0.0}"#.into();
        e.payload_hash = None;
        e
    };
    for bad in [bad_payload_hash, unknown_type, not_json, negative_zero] {
        let status = ledger
            .client
            .append_event(v1::AppendEventRequest { event: Some(bad) })
            .await
            .expect_err("bad event");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }

    // A forged evidence id fails the whole call: its valid events are not written either.
    let mut forged = text_evidence(&session, "public/a.txt", "alpha\n");
    forged.evidence_unit_id = "d".repeat(64);
    let status = ledger
        .client
        .record_operator_call(operator_call(&session, vec![forged]))
        .await
        .expect_err("forged evidence");
    assert_eq!(
        pecr_error(&status).message,
        "evidence_units[0].evidence_unit_id does not match the evidence identity"
    );

    let mut wrong_content = text_evidence(&session, "public/a.txt", "alpha\n");
    wrong_content.content = Some(Value::String("tampered".into()).to_string());
    let status = ledger
        .client
        .record_operator_call(operator_call(&session, vec![wrong_content]))
        .await
        .expect_err("content hash mismatch");
    assert_eq!(status.code(), Code::InvalidArgument);

    let foreign = claim(
        "cites nothing real",
        v1::claim::Status::Supported,
        &["e".repeat(64)],
    );
    let status = ledger
        .client
        .record_finalize(finalize_request(&session, "cm-bad", vec![foreign]))
        .await
        .expect_err("foreign evidence");
    assert_eq!(
        pecr_error(&status).message,
        "claim_map cites evidence not emitted in this session"
    );

    let status = ledger
        .auditor
        .list_events(v1::ListEventsRequest::default())
        .await
        .expect_err("unfiltered list");
    assert_eq!(status.code(), Code::InvalidArgument);

    assert_eq!(counts(&ledger.db).await, before, "nothing was written");
}

#[tokio::test]
async fn unknown_sessions_are_not_found() {
    let mut ledger = start_ledger().await;
    let status = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(pecr_error(&status).message, "unknown session_id");

    let session = record_session(&mut ledger, "s-real", "dev").await;
    let mut orphan = event(&session, "POLICY_DECISION", json!({"a": 1}));
    orphan.session_id = "nope".into();
    let status = ledger
        .client
        .append_event(v1::AppendEventRequest {
            event: Some(orphan),
        })
        .await
        .expect_err("orphan event");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn evidence_inserts_are_idempotent() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-idem", "dev").await;
    let unit = text_evidence(&session, "public/a.txt", "alpha\n");
    let first = ledger
        .client
        .record_operator_call(operator_call(&session, vec![unit.clone()]))
        .await
        .expect("first")
        .into_inner();
    assert_eq!(
        first.inserted_evidence_unit_ids,
        vec![unit.evidence_unit_id.clone()]
    );
    let after_first = first.session.expect("session");
    let second = ledger
        .client
        .record_operator_call(operator_call(&after_first, vec![unit.clone()]))
        .await
        .expect("second")
        .into_inner();
    assert!(second.inserted_evidence_unit_ids.is_empty());
    assert_eq!(ledger.db.count("pecr_evidence_units").await, 1);
    let session = second.session.expect("session");
    assert_eq!(session.evidence_unit_ids, vec![unit.evidence_unit_id]);
    assert_eq!(session.operator_calls_used, 2);
}

#[tokio::test]
async fn concurrent_counter_updates_are_refused() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-cas", "dev").await;
    let mut stale = operator_call(&session, vec![]);
    stale.expected_operator_calls_used = 5;
    stale.operator_calls_used = 6;
    let before = counts(&ledger.db).await;
    let status = ledger
        .client
        .record_operator_call(stale)
        .await
        .expect_err("stale counters");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let error = pecr_error(&status);
    assert_eq!((error.http_status, error.retryable), (409, true));
    assert_eq!(counts(&ledger.db).await, before);
}

#[tokio::test]
async fn finalize_is_atomic_and_happens_once() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-fin", "dev").await;
    let unit = text_evidence(&session, "public/a.txt", "alpha\n");
    let id = unit.evidence_unit_id.clone();
    let session = ledger
        .client
        .record_operator_call(operator_call(&session, vec![unit]))
        .await
        .expect("operator call")
        .into_inner()
        .session
        .expect("session");
    let claims = vec![claim(
        "alpha is stated",
        v1::claim::Status::Supported,
        std::slice::from_ref(&id),
    )];
    let done = ledger
        .client
        .record_finalize(finalize_request(&session, "cm-1", claims.clone()))
        .await
        .expect("finalize")
        .into_inner()
        .session
        .expect("session");
    assert!(done.finalized);
    assert_eq!(done.terminal_mode, v1::TerminalMode::Supported as i32);
    let stored: String = ledger
        .db
        .client()
        .query_one(
            "SELECT claim_map_json::text FROM pecr_claim_maps WHERE claim_map_id = 'cm-1'",
            &[],
        )
        .await
        .expect("claim map row")
        .get(0);
    let stored: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["terminal_mode"], "SUPPORTED");
    assert_eq!(stored["claims"][0]["status"], "SUPPORTED");
    assert_eq!(stored["coverage_threshold"], json!(0.95));

    let status = ledger
        .client
        .record_finalize(finalize_request(&session, "cm-2", claims))
        .await
        .expect_err("second finalize");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(pecr_error(&status).message, "session already finalized");

    let status = ledger
        .client
        .record_operator_call(operator_call(&done, vec![]))
        .await
        .expect_err("call after finalize");
    assert_eq!(pecr_error(&status).http_status, 409);

    // A reused claim_map_id is a conflict, and the other session stays open.
    let other = record_session(&mut ledger, "s-fin-2", "dev").await;
    let events_before = ledger.db.count("pecr_ledger_events").await;
    let status = ledger
        .client
        .record_finalize(finalize_request(&other, "cm-1", vec![]))
        .await
        .expect_err("reused claim map id");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(pecr_error(&status).message, "claim_map_id already exists");
    assert_eq!(ledger.db.count("pecr_ledger_events").await, events_before);
    let other = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "s-fin-2".into(),
        })
        .await
        .expect("other session")
        .into_inner()
        .session
        .expect("session");
    assert!(!other.finalized);
}

#[tokio::test]
async fn replay_bundles_are_hash_checked_and_owner_scoped() {
    let mut ledger = start_ledger().await;
    let dev = pecr_contracts::hashing::principal_id_hash("dev");
    let support = pecr_contracts::hashing::principal_id_hash("support");
    for (run_id, at) in [("run_01", 1_000), ("run_02", 2_000)] {
        ledger
            .controller
            .store_replay_bundle(v1::StoreReplayBundleRequest {
                tenant_id: "local".into(),
                bundle: bundle(run_id, &dev, at).to_string(),
            })
            .await
            .expect("store");
    }
    let mut tampered = bundle("run_03", &dev, 3_000);
    tampered["query"] = json!("changed after hashing");
    let status = ledger
        .controller
        .store_replay_bundle(v1::StoreReplayBundleRequest {
            tenant_id: "local".into(),
            bundle: tampered.to_string(),
        })
        .await
        .expect_err("tampered bundle");
    assert_eq!(
        pecr_error(&status).message,
        "bundle.metadata.bundle_hash does not match the bundle"
    );

    let loaded = ledger
        .controller
        .load_replay_bundle(v1::LoadReplayBundleRequest {
            tenant_id: "local".into(),
            principal_id_hash: dev.clone(),
            run_id: "run_01".into(),
        })
        .await
        .expect("load")
        .into_inner()
        .bundle;
    assert_eq!(loaded, canonical_json(&bundle("run_01", &dev, 1_000)));

    for (tenant, owner, run_id) in [
        ("local", &support, "run_01"),
        ("other", &dev, "run_01"),
        ("local", &dev, "../run_01"),
    ] {
        let status = ledger
            .controller
            .load_replay_bundle(v1::LoadReplayBundleRequest {
                tenant_id: tenant.into(),
                principal_id_hash: owner.clone(),
                run_id: run_id.into(),
            })
            .await
            .expect_err("not visible");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(pecr_error(&status).code, ErrorCode::ReplayNotFound);
    }

    let batch = |tenant: &str, owner: &str, run_ids: &[&str]| v1::LoadReplayBundlesRequest {
        tenant_id: tenant.into(),
        principal_id_hash: owner.into(),
        run_ids: run_ids.iter().map(|id| (*id).to_owned()).collect(),
    };
    let mut found = ledger
        .controller
        .load_replay_bundles(batch(
            "local",
            &dev,
            &["run_02", "run_01", "run_02", "run_03", "../run_01"],
        ))
        .await
        .expect("batch load")
        .into_inner()
        .bundles;
    found.sort();
    let mut expected = vec![
        canonical_json(&bundle("run_01", &dev, 1_000)),
        canonical_json(&bundle("run_02", &dev, 2_000)),
    ];
    expected.sort();
    assert_eq!(
        found, expected,
        "each found bundle once; unknown and unsafe ids left out"
    );
    for (tenant, owner) in [("local", &support), ("other", &dev)] {
        let others = ledger
            .controller
            .load_replay_bundles(batch(tenant, owner, &["run_01", "run_02"]))
            .await
            .expect("batch load")
            .into_inner()
            .bundles;
        assert!(others.is_empty(), "{tenant}: not visible");
    }
    let too_many: Vec<String> = (0..10_001).map(|n| format!("run_{n}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let status = ledger
        .controller
        .load_replay_bundles(batch("local", &dev, &too_many))
        .await
        .expect_err("over the cap");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        pecr_error(&status).message,
        "run_ids must hold at most 10000 ids"
    );

    let listed = ledger
        .controller
        .list_replay_bundles(v1::ListReplayBundlesRequest {
            tenant_id: "local".into(),
            principal_id_hash: dev.clone(),
            engine_mode: None,
            limit: 10,
        })
        .await
        .expect("list")
        .into_inner()
        .bundles;
    let run_ids: Vec<String> = listed
        .iter()
        .map(|text| {
            serde_json::from_str::<Value>(text).expect("json")["metadata"]["run_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(run_ids, ["run_02", "run_01"]);

    let pruned = ledger
        .controller
        .prune_replays(v1::PruneReplaysRequest { retention_days: 1 })
        .await
        .expect("prune")
        .into_inner();
    assert_eq!(
        pruned.replays_deleted, 2,
        "recorded in 1970, far past a one-day retention"
    );
}

#[tokio::test]
async fn evaluations_are_owner_scoped() {
    let mut ledger = start_ledger().await;
    let dev = pecr_contracts::hashing::principal_id_hash("dev");
    let evaluation = json!({
        "evaluation_id": "01JEVAL", "evaluation_name": "nightly", "principal_id_hash": dev,
        "created_at_unix_ms": 4_102_444_800_000_u64, "replay_ids": [], "missing_replay_ids": [],
        "run_results": [], "scorecards": [], "overall_pass": true
    });
    ledger
        .controller
        .store_evaluation(v1::StoreEvaluationRequest {
            tenant_id: "local".into(),
            evaluation: evaluation.to_string(),
        })
        .await
        .expect("store");
    let loaded = ledger
        .controller
        .load_evaluation(v1::LoadEvaluationRequest {
            tenant_id: "local".into(),
            principal_id_hash: dev,
            evaluation_id: "01JEVAL".into(),
        })
        .await
        .expect("load")
        .into_inner()
        .evaluation;
    assert_eq!(loaded, canonical_json(&evaluation));
    let status = ledger
        .controller
        .load_evaluation(v1::LoadEvaluationRequest {
            tenant_id: "local".into(),
            principal_id_hash: pecr_contracts::hashing::principal_id_hash("support"),
            evaluation_id: "01JEVAL".into(),
        })
        .await
        .expect_err("other principal");
    assert_eq!(pecr_error(&status).code, ErrorCode::EvaluationNotFound);
}

#[tokio::test]
async fn stored_runtime_state_is_read_defensively() {
    let mut ledger = start_ledger().await;
    record_session(&mut ledger, "s-def", "dev").await;
    let sql = ledger.db.client();
    sql.batch_execute(r#"UPDATE pecr_session_runtime SET evidence_unit_ids_json = '["a",1,null,"b"]', bytes_used = 0"#)
        .await
        .expect("evidence ids may grow");
    let session = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "s-def".into(),
        })
        .await
        .expect("get_session")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(
        session.evidence_unit_ids,
        ["a", "b"],
        "non-string ids are dropped"
    );

    // Stored corruption, as a restore gone wrong would leave it: only a
    // superuser skipping the triggers can write it.
    sql.batch_execute(
        r#"SET session_replication_role = replica;
           UPDATE pecr_sessions SET budget_json = '{"oops":true}';
           SET session_replication_role = DEFAULT"#,
    )
    .await
    .expect("corrupt the stored budget");
    let status = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "s-def".into(),
        })
        .await
        .expect_err("undecodable budget");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(pecr_error(&status).code, ErrorCode::LedgerUnavailable);
}

#[tokio::test]
async fn evidence_content_is_stored_only_when_asked() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-content", "dev").await;
    let kept = text_evidence(&session, "public/kept.txt", "kept\n");
    let mut request = operator_call(&session, vec![kept.clone(), kept.clone()]);
    request.store_content = true;
    let response = ledger
        .client
        .record_operator_call(request)
        .await
        .expect("recorded")
        .into_inner();
    assert_eq!(
        response.inserted_evidence_unit_ids,
        vec![kept.evidence_unit_id.clone()],
        "a repeated unit is stored once"
    );
    let session = response.session.expect("session");
    let skipped = text_evidence(&session, "public/skipped.txt", "skipped\n");
    ledger
        .client
        .record_operator_call(operator_call(&session, vec![skipped.clone()]))
        .await
        .expect("recorded");
    let payload = |id: String| {
        let sql = ledger.db.client();
        async move {
            sql.query_one(
                "SELECT payload_json::text FROM pecr_evidence_units WHERE evidence_unit_id = $1",
                &[&id],
            )
            .await
            .expect("row")
            .get::<_, Option<String>>(0)
        }
    };
    assert_eq!(
        payload(kept.evidence_unit_id).await.as_deref(),
        Some(r#""kept\n""#)
    );
    assert_eq!(
        payload(skipped.evidence_unit_id).await,
        None,
        "metadata-only by default"
    );
}

#[tokio::test]
async fn database_errors_are_logged_by_sqlstate_never_by_their_text() {
    const CANARY: &str = "CALLER_TEXT_CANARY_7d2f";
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "s-nul", "dev").await;
    // JSON allows \u0000; PostgreSQL's jsonb refuses it (SQLSTATE 22P05),
    // and its error quotes the payload around it.
    let payload = json!({"note": format!("{CANARY}\u{0}")});
    let status = ledger
        .client
        .append_event(v1::AppendEventRequest {
            event: Some(event(&session, "POLICY_DECISION", payload)),
        })
        .await
        .expect_err("refused");
    let error = pecr_error(&status);
    assert_eq!(
        (error.code, error.http_status, error.message.as_str()),
        (
            ErrorCode::InvalidParams,
            400,
            "a value was rejected by the ledger database"
        )
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lines = Vec::new();
    while !lines.iter().any(|line: &String| line.contains("22P05")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no SQLSTATE logged: {lines:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        lines.extend(ledger.process.drain_stderr());
    }
    let logs = lines.join("\n");
    for raw in [
        CANARY,
        "unsupported Unicode escape sequence",
        "cannot be converted",
    ] {
        assert!(!logs.contains(raw), "the log holds {raw:?}:\n{logs}");
    }
}

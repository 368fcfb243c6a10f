//! RecordFinalize with the run's last writes: the finalize decision events,
//! the counters the gate read and the replay bundle, all in the finalize's
//! transaction. Each refusal writes nothing.

mod common;

use common::*;
use pecr_proto::v1;
use serde_json::{Value, json};
use tonic::Code;

/// A session with one executed operator call (counters 1 and 100).
async fn session_with_a_call(ledger: &mut Ledger, session_id: &str) -> v1::SessionRecord {
    let session = record_session(ledger, session_id, "dev").await;
    ledger
        .client
        .record_operator_call(operator_call(&session, vec![]))
        .await
        .expect("operator call")
        .into_inner()
        .session
        .expect("session")
}

/// The whole run's finalize: decision event, counters read, replay.
fn full_finalize(session: &v1::SessionRecord, run_id: &str) -> v1::RecordFinalizeRequest {
    v1::RecordFinalizeRequest {
        events: vec![event(
            session,
            "POLICY_DECISION",
            json!({"action": "finalize", "decision": "allow"}),
        )],
        expected_operator_calls_used: Some(session.operator_calls_used),
        expected_bytes_used: Some(session.bytes_used),
        replay: Some(v1::StoreReplayBundleRequest {
            tenant_id: session.tenant_id.clone(),
            bundle: session_bundle(run_id, session).to_string(),
        }),
        ..finalize_request(session, &format!("cm-{run_id}"), vec![])
    }
}

#[tokio::test]
async fn a_finalize_records_its_events_and_its_replay_at_once() {
    let mut ledger = start_ledger().await;
    let session = session_with_a_call(&mut ledger, "s-run").await;
    let response = ledger
        .client
        .record_finalize(full_finalize(&session, "run-final"))
        .await
        .expect("finalize")
        .into_inner();
    assert_eq!(response.run_id, "run-final");
    let done = response.session.expect("session");
    assert!(done.finalized);
    assert_eq!(done.operator_calls_used, 1);
    assert_eq!(
        event_types(&ledger.db, "s-run").await,
        ["OPERATOR_CALL", "POLICY_DECISION", "FINALIZE_RESULT"]
    );
    let finalize_event: String = ledger
        .db
        .client()
        .query_one(
            "SELECT event_id FROM pecr_ledger_events WHERE session_id = 's-run' AND event_type = 'FINALIZE_RESULT'",
            &[],
        )
        .await
        .expect("finalize event")
        .get(0);
    assert_eq!(finalize_event, response.event_id);

    let stored = ledger
        .controller
        .load_replay_bundle(v1::LoadReplayBundleRequest {
            tenant_id: "local".into(),
            principal_id_hash: pecr_contracts::hashing::principal_id_hash("dev"),
            run_id: "run-final".into(),
        })
        .await
        .expect("the replay is stored")
        .into_inner()
        .bundle;
    let stored: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored, session_bundle("run-final", &session));

    // Without the optional fields a finalize is what it always was.
    let plain = session_with_a_call(&mut ledger, "s-plain").await;
    let response = ledger
        .client
        .record_finalize(finalize_request(&plain, "cm-plain", vec![]))
        .await
        .expect("plain finalize")
        .into_inner();
    assert!(response.run_id.is_empty());
    assert_eq!(ledger.db.count("pecr_replay_bundles").await, 1);
}

#[tokio::test]
async fn a_refused_finalize_writes_nothing() {
    let mut ledger = start_ledger().await;
    let session = session_with_a_call(&mut ledger, "s-refused").await;
    let other = record_session(&mut ledger, "s-other", "dev").await;
    // A run id already taken by a stored replay.
    ledger
        .controller
        .store_replay_bundle(v1::StoreReplayBundleRequest {
            tenant_id: "local".into(),
            bundle: session_bundle("run-taken", &session).to_string(),
        })
        .await
        .expect("replay stored");

    let good = || full_finalize(&session, "run-refused");
    let with_bundle = |bundle: Value| {
        let mut request = good();
        if let Some(replay) = request.replay.as_mut() {
            replay.bundle = bundle.to_string();
        }
        request
    };
    let base = session_bundle("run-refused", &session);
    let stale_counters = "session counters changed concurrently; reload the session";
    let cases: Vec<(&str, v1::RecordFinalizeRequest, Code, u16, &str)> = vec![
        (
            "stale call counter",
            v1::RecordFinalizeRequest {
                expected_operator_calls_used: Some(0),
                ..good()
            },
            Code::FailedPrecondition,
            409,
            stale_counters,
        ),
        (
            "stale byte counter",
            v1::RecordFinalizeRequest {
                expected_bytes_used: Some(99),
                ..good()
            },
            Code::FailedPrecondition,
            409,
            stale_counters,
        ),
        (
            "another tenant's replay",
            {
                let mut request = good();
                if let Some(replay) = request.replay.as_mut() {
                    replay.tenant_id = "acme".into();
                }
                request
            },
            Code::InvalidArgument,
            400,
            "replay.tenant_id must be the session's tenant",
        ),
        (
            "another principal's replay",
            with_bundle({
                let mut bundle = base.clone();
                bundle["metadata"]["principal_id_hash"] =
                    Value::String(pecr_contracts::hashing::principal_id_hash("support"));
                rehash(bundle)
            }),
            Code::InvalidArgument,
            400,
            "replay.bundle.metadata.principal_id_hash must be the session principal's hash",
        ),
        (
            "another session's replay",
            with_bundle({
                let mut bundle = base.clone();
                bundle["session_id"] = Value::String("s-other".into());
                rehash(bundle)
            }),
            Code::InvalidArgument,
            400,
            "replay.bundle.session_id must be the finalized session",
        ),
        (
            "a tampered replay",
            with_bundle({
                let mut bundle = base.clone();
                bundle["response_text"] = Value::String("tampered".into());
                bundle
            }),
            Code::InvalidArgument,
            400,
            "replay.bundle.metadata.bundle_hash does not match the bundle",
        ),
        (
            "another session's event",
            v1::RecordFinalizeRequest {
                events: vec![event(&other, "POLICY_DECISION", json!({"a": 1}))],
                ..good()
            },
            Code::InvalidArgument,
            400,
            "every event must belong to session_id",
        ),
        (
            "a bad event",
            v1::RecordFinalizeRequest {
                events: vec![event(&session, "NOT_A_TYPE", json!({"a": 1}))],
                ..good()
            },
            Code::InvalidArgument,
            400,
            "events[0].event_type must be one of POLICY_DECISION, OPERATOR_CALL, EVIDENCE_EMITTED, BUDGET_VIOLATION, FINALIZE_RESULT, LEAK_DETECTED",
        ),
        (
            "a run id already stored",
            with_bundle(session_bundle("run-taken", &session)),
            Code::FailedPrecondition,
            409,
            "run_id already exists",
        ),
    ];

    let before = counts(&ledger.db).await;
    let replays_before = ledger.db.count("pecr_replay_bundles").await;
    for (case, request, code, http_status, message) in cases {
        let status = ledger
            .client
            .record_finalize(request)
            .await
            .expect_err(case);
        let error = pecr_error(&status);
        assert_eq!(
            (status.code(), error.http_status, error.message.as_str()),
            (code, http_status, message),
            "{case}"
        );
        assert_eq!(
            error.retryable,
            http_status == 409 && message == stale_counters,
            "{case}"
        );
        assert_eq!(counts(&ledger.db).await, before, "{case} wrote nothing");
        assert_eq!(
            ledger.db.count("pecr_replay_bundles").await,
            replays_before,
            "{case} stored no replay"
        );
    }
    let stored = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: "s-refused".into(),
        })
        .await
        .expect("session")
        .into_inner()
        .session
        .expect("session");
    assert!(!stored.finalized, "every refusal left the session open");

    // The same finalize, corrected, goes through.
    let response = ledger
        .client
        .record_finalize(good())
        .await
        .expect("finalize")
        .into_inner();
    assert_eq!(response.run_id, "run-refused");
}

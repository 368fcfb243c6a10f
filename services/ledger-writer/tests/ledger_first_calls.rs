//! RecordSession with the session's first operator calls (`first_calls`):
//! one transaction records both, a trace of another owner records the
//! session alone, and any refusal of the calls writes nothing at all.

mod common;

use common::*;
use pecr_errors::ErrorCode;
use pecr_proto::v1;
use tonic::Code;

async fn stored_session(ledger: &mut Ledger, session_id: &str) -> Result<v1::SessionRecord, Code> {
    ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: session_id.into(),
        })
        .await
        .map(|response| response.into_inner().session.expect("session"))
        .map_err(|status| status.code())
}

async fn listed_events(ledger: &mut Ledger, session_id: &str) -> Vec<v1::LedgerEvent> {
    ledger
        .auditor
        .list_events(v1::ListEventsRequest {
            session_id: Some(session_id.into()),
            ..Default::default()
        })
        .await
        .expect("list_events")
        .into_inner()
        .events
}

/// Evidence rows stored for `session_id`.
async fn evidence_of(ledger: &Ledger, session_id: &str) -> i64 {
    ledger
        .db
        .client()
        .query_one(
            "SELECT count(*) FROM pecr_evidence_units WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .expect("evidence count")
        .get(0)
}

#[tokio::test]
async fn a_session_and_its_first_calls_are_recorded_in_one_transaction() {
    let mut ledger = start_ledger().await;
    let request = with_first_calls(session_request("s-first", "dev"), &["alpha\n", "beta\n"]);
    let calls = request.first_calls.clone().expect("first calls");
    let mut unit_ids: Vec<String> = calls
        .evidence_units
        .iter()
        .map(|unit| unit.evidence_unit_id.clone())
        .collect();
    unit_ids.sort();
    let commits_before = metric(&ledger, "pecr_ledger_commits_total").await;

    let response = ledger
        .client
        .record_session(request)
        .await
        .expect("record_session")
        .into_inner();
    assert_eq!(
        metric(&ledger, "pecr_ledger_commits_total").await - commits_before,
        1.0,
        "one transaction"
    );
    let session = response.session.expect("session");
    let first_calls = response.first_calls.expect("first calls recorded");
    assert_eq!(first_calls.session.as_ref(), Some(&session));
    assert_eq!(
        (
            session.trace_id.as_str(),
            session.operator_calls_used,
            session.bytes_used
        ),
        ("trace-s-first", 1, 100)
    );
    assert_eq!(session.evidence_unit_ids, unit_ids);
    let mut inserted = first_calls.inserted_evidence_unit_ids.clone();
    inserted.sort();
    assert_eq!(inserted, unit_ids);

    assert_eq!(
        stored_session(&mut ledger, "s-first").await,
        Ok(session.clone())
    );
    let events = listed_events(&mut ledger, "s-first").await;
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, first_calls.event_ids);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["EVIDENCE_EMITTED", "EVIDENCE_EMITTED", "OPERATOR_CALL"]
    );
    assert!(events.iter().all(|e| e.trace_id == "trace-s-first"));
    assert_eq!(evidence_of(&ledger, "s-first").await, 2);

    // The session goes on from the counters the calls left.
    ledger
        .client
        .record_operator_call(operator_call(&session, vec![]))
        .await
        .expect("the next call");

    // A unit the ledger already holds is the session's, not new to the ledger.
    let again = ledger
        .client
        .record_session(with_first_calls(
            session_request("s-again", "dev"),
            &["alpha\n"],
        ))
        .await
        .expect("record_session")
        .into_inner();
    let first_calls = again.first_calls.expect("first calls recorded");
    assert!(first_calls.inserted_evidence_unit_ids.is_empty());
    assert_eq!(again.session.expect("session").evidence_unit_ids.len(), 1);
}

#[tokio::test]
async fn first_calls_on_a_trace_of_another_principal_are_not_recorded() {
    let mut ledger = start_ledger().await;
    let owner = record_session(&mut ledger, "s-dev", "dev").await;
    let mut request = session_request("s-mallory", "mallory");
    request.trace_id = owner.trace_id.clone();
    let request = with_first_calls(request, &["alpha\n"]);
    let calls = request.first_calls.clone().expect("first calls");

    let response = ledger
        .client
        .record_session(request)
        .await
        .expect("record_session")
        .into_inner();
    assert!(response.first_calls.is_none(), "the calls are not recorded");
    let session = response.session.expect("session");
    assert_ne!(session.trace_id, owner.trace_id);
    assert!(pecr_contracts::ids::parse_ulid(&session.trace_id).is_some());
    assert_eq!((session.operator_calls_used, session.bytes_used), (0, 0));
    assert!(session.evidence_unit_ids.is_empty());
    assert_eq!(
        stored_session(&mut ledger, "s-mallory").await,
        Ok(session.clone())
    );
    assert!(event_types(&ledger.db, "s-mallory").await.is_empty());
    assert!(event_types(&ledger.db, "s-dev").await.is_empty());
    assert_eq!(ledger.db.count("pecr_evidence_units").await, 0);

    // The caller records them again under the session's trace.
    let units = calls
        .evidence_units
        .iter()
        .map(|unit| text_evidence(&session, &unit.object_id, "alpha\n"))
        .collect();
    let recorded = ledger
        .client
        .record_operator_call(operator_call(&session, units))
        .await
        .expect("the calls under the session's trace")
        .into_inner();
    assert_eq!(recorded.inserted_evidence_unit_ids.len(), 1);
}

/// Session `s-x` with a first call emitting one unit, changed by `change`.
fn first_calls_changed(
    change: impl FnOnce(&mut v1::RecordOperatorCallRequest),
) -> v1::RecordSessionRequest {
    let mut request = with_first_calls(session_request("s-x", "dev"), &["alpha\n"]);
    if let Some(calls) = request.first_calls.as_mut() {
        change(calls);
    }
    request
}

#[tokio::test]
async fn invalid_first_calls_are_invalid_argument_and_write_nothing() {
    let mut ledger = start_ledger().await;
    let counters_message =
        "first_calls.expected_operator_calls_used and first_calls.expected_bytes_used must be 0";
    let ids_message = "first_calls.session_id and first_calls.trace_id must be the session's";
    let cases = [
        (
            first_calls_changed(|calls| calls.session_id = "s-other".into()),
            ids_message,
        ),
        (
            first_calls_changed(|calls| calls.trace_id = "trace-other".into()),
            ids_message,
        ),
        (
            first_calls_changed(|calls| {
                calls.expected_operator_calls_used = 1;
                calls.operator_calls_used = 2;
            }),
            counters_message,
        ),
        (
            first_calls_changed(|calls| {
                calls.expected_bytes_used = 100;
                calls.bytes_used = 200;
            }),
            counters_message,
        ),
        (
            first_calls_changed(|calls| calls.events[0].payload_hash = Some("c".repeat(64))),
            "first_calls: events[0].payload_hash does not match the canonical hash of the payload",
        ),
        (
            first_calls_changed(|calls| calls.evidence_units[0].evidence_unit_id = "d".repeat(64)),
            "first_calls: evidence_units[0].evidence_unit_id does not match the evidence identity",
        ),
    ];
    for (request, message) in cases {
        let status = ledger
            .client
            .record_session(request)
            .await
            .expect_err(message);
        assert_eq!(status.code(), Code::InvalidArgument, "{message}");
        let error = pecr_error(&status);
        assert_eq!(
            (error.code, error.http_status, error.message.as_str()),
            (ErrorCode::InvalidParams, 400, message)
        );
    }
    assert_eq!(counts(&ledger.db).await, [0; 6], "nothing was written");
    assert_eq!(
        stored_session(&mut ledger, "s-x").await,
        Err(Code::NotFound)
    );
}

#[tokio::test]
async fn a_refusal_of_the_first_calls_refuses_the_whole_session() {
    let mut ledger = start_ledger().await;
    // Valid evidence, but of another snapshot: the planner refuses it.
    let request = session_request("s-refused", "dev");
    let mut elsewhere = planned_session(&request);
    elsewhere.policy_snapshot_id = "ps-elsewhere".into();
    let mut refused = request.clone();
    refused.first_calls = Some(operator_call(
        &planned_session(&request),
        vec![text_evidence(&elsewhere, "public/a.txt", "alpha\n")],
    ));

    let status = ledger
        .client
        .record_session(refused)
        .await
        .expect_err("refused calls");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        pecr_error(&status).message,
        "evidence must carry the session's policy snapshot and as_of_time"
    );
    assert_eq!(counts(&ledger.db).await, [0; 6], "nothing was written");
    assert_eq!(
        stored_session(&mut ledger, "s-refused").await,
        Err(Code::NotFound)
    );

    // Nothing of it stays behind: the same session can be recorded again.
    let response = ledger
        .client
        .record_session(with_first_calls(request, &["alpha\n"]))
        .await
        .expect("record_session")
        .into_inner();
    assert!(response.first_calls.is_some());
    assert_eq!(
        response.session.expect("session").trace_id,
        "trace-s-refused"
    );
}

//! Group commit against a real PostgreSQL: concurrent writes share
//! transactions, each caller still gets its own answer, and a write that
//! fails inside a batch fails alone, leaving nothing of itself behind.

mod common;

use std::time::Duration;

use common::*;
use pecr_errors::ErrorCode;
use pecr_proto::v1;
use pecr_testkit::TestDatabase;
use serde_json::json;
use tokio::task::JoinHandle;

const SESSIONS: usize = 20;
const CALLS_PER_SESSION: u64 = 10;

type Answer<T> = Result<T, tonic::Status>;

#[tokio::test]
async fn concurrent_writes_share_transactions_and_keep_exact_counters() {
    let mut ledger = start_ledger().await;
    let mut sessions = Vec::new();
    for index in 0..SESSIONS {
        sessions.push(record_session(&mut ledger, &format!("s-many-{index}"), "dev").await);
    }
    let commits_before = metric(&ledger, "pecr_ledger_commits_total").await;

    // Each task drives its own session's counters and appends events to its
    // neighbour's session, so the two lanes' batches cross sessions.
    let tasks: Vec<JoinHandle<()>> = (0..SESSIONS)
        .map(|index| {
            let mut client = ledger.client.clone();
            let mut session = sessions[index].clone();
            let neighbour = sessions[(index + 1) % SESSIONS].clone();
            tokio::spawn(async move {
                for step in 0..CALLS_PER_SESSION {
                    let unit = text_evidence(
                        &session,
                        &format!("public/{}-{step}.txt", session.session_id),
                        "alpha\n",
                    );
                    session = client
                        .record_operator_call(operator_call(&session, vec![unit]))
                        .await
                        .unwrap_or_else(|status| panic!("operator call: {status:?}"))
                        .into_inner()
                        .session
                        .expect("session");
                    client
                        .append_event(v1::AppendEventRequest {
                            event: Some(event(
                                &neighbour,
                                "POLICY_DECISION",
                                json!({"from": index, "step": step}),
                            )),
                        })
                        .await
                        .unwrap_or_else(|status| panic!("append event: {status:?}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }

    let writes = (SESSIONS as u64 * CALLS_PER_SESSION * 2) as f64;
    let commits = metric(&ledger, "pecr_ledger_commits_total").await - commits_before;
    assert!(
        commits < writes,
        "{writes} concurrent writes took {commits} commits"
    );
    for session in &sessions {
        let stored = ledger
            .client
            .get_session(v1::GetSessionRequest {
                session_id: session.session_id.clone(),
            })
            .await
            .expect("get_session")
            .into_inner()
            .session
            .expect("session");
        assert_eq!(
            (
                stored.operator_calls_used,
                stored.bytes_used,
                stored.evidence_unit_ids.len()
            ),
            (
                CALLS_PER_SESSION,
                CALLS_PER_SESSION * 100,
                CALLS_PER_SESSION as usize
            ),
            "{}",
            session.session_id
        );
        let types = event_types(&ledger.db, &session.session_id).await;
        let count = |kind: &str| types.iter().filter(|t| *t == kind).count() as u64;
        assert_eq!(
            (
                count("OPERATOR_CALL"),
                count("EVIDENCE_EMITTED"),
                count("POLICY_DECISION")
            ),
            (CALLS_PER_SESSION, CALLS_PER_SESSION, CALLS_PER_SESSION)
        );
    }
    assert_eq!(
        ledger.db.count("pecr_evidence_units").await,
        (SESSIONS as u64 * CALLS_PER_SESSION) as i64
    );
}

/// The only commit lane waits for a session row held from outside, so
/// writes sent meanwhile queue and become the next batch.
struct Stall {
    locker: tokio_postgres::Client,
    blocked: JoinHandle<Answer<tonic::Response<v1::RecordOperatorCallResponse>>>,
}

async fn stall_lane(ledger: &Ledger, session: &v1::SessionRecord) -> Stall {
    let (locker, connection) = tokio_postgres::connect(&ledger.db.url(), tokio_postgres::NoTls)
        .await
        .expect("locker connects");
    tokio::spawn(connection);
    locker.batch_execute("BEGIN").await.expect("begin");
    locker
        .execute(
            "SELECT 1 FROM pecr_sessions WHERE session_id = $1 FOR UPDATE",
            &[&session.session_id],
        )
        .await
        .expect("lock the session row");
    let holder: i32 = locker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let mut client = ledger.client.clone();
    let request = operator_call(session, vec![]);
    let blocked = tokio::spawn(async move { client.record_operator_call(request).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = locker
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&holder],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lane never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Stall { locker, blocked }
}

impl Stall {
    /// Lets the lane go once the writes sent meanwhile have queued.
    async fn release(self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.locker.batch_execute("COMMIT").await.expect("release");
        self.blocked
            .await
            .expect("blocked call")
            .expect("the stalled write commits once released");
    }
}

/// One lane and a generous write timeout, so a batch can be stalled.
async fn start_one_lane_ledger() -> Ledger {
    let db = TestDatabase::create().await;
    let url = db.url();
    start_ledger_with_env(
        db,
        &[
            ("PECR_DB_URL", url),
            ("PECR_LEDGER_COMMIT_LANES", "1".to_owned()),
            ("PECR_LEDGER_WRITE_TIMEOUT_MS", "8000".to_owned()),
        ],
    )
    .await
}

fn spawn<T: Send + 'static>(
    work: impl std::future::Future<Output = Answer<tonic::Response<T>>> + Send + 'static,
) -> JoinHandle<Answer<T>> {
    tokio::spawn(async move { work.await.map(tonic::Response::into_inner) })
}

async fn stored_session(ledger: &Ledger, session_id: &str) -> v1::SessionRecord {
    let mut client = ledger.client.clone();
    client
        .get_session(v1::GetSessionRequest {
            session_id: session_id.into(),
        })
        .await
        .expect("get_session")
        .into_inner()
        .session
        .expect("session")
}

fn refusal(answer: Answer<impl std::fmt::Debug>) -> (u16, bool, String) {
    let status = answer.expect_err("refused");
    let error = pecr_error(&status);
    (error.http_status, error.retryable, error.message)
}

#[tokio::test]
async fn refusals_inside_a_batch_leave_the_rest_of_it_committed() {
    let mut ledger = start_one_lane_ledger().await;
    let block = record_session(&mut ledger, "s-block", "dev").await;
    let raced = record_session(&mut ledger, "s-raced", "dev").await;
    let stale = record_session(&mut ledger, "s-stale", "dev").await;
    let evented = record_session(&mut ledger, "s-evented", "dev").await;
    let retries_before = metric(&ledger, "pecr_ledger_commit_batch_retries_total").await;

    let stall = stall_lane(&ledger, &block).await;
    let commits_before = metric(&ledger, "pecr_ledger_commits_total").await;
    // Two gateway replicas racing with the same counters: one must lose.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let mut client = ledger.client.clone();
            let request = operator_call(&raced, vec![]);
            spawn(async move { client.record_operator_call(request).await })
        })
        .collect();
    let mut stale_request = operator_call(&stale, vec![]);
    stale_request.expected_operator_calls_used = 5;
    stale_request.operator_calls_used = 6;
    let mut client = ledger.client.clone();
    let stale_call = spawn(async move { client.record_operator_call(stale_request).await });
    let nowhere = v1::SessionRecord {
        session_id: "s-nope".into(),
        ..stale.clone()
    };
    let unknown_request = operator_call(&nowhere, vec![]);
    let mut client = ledger.client.clone();
    let unknown_call = spawn(async move { client.record_operator_call(unknown_request).await });
    let mut client = ledger.client.clone();
    let appended = spawn(async move {
        client
            .append_event(v1::AppendEventRequest {
                event: Some(event(&evented, "POLICY_DECISION", json!({"a": 1}))),
            })
            .await
    });
    let mut controller = ledger.controller.clone();
    let dev_hash = pecr_contracts::hashing::principal_id_hash("dev");
    let replay = spawn(async move {
        controller
            .store_replay_bundle(v1::StoreReplayBundleRequest {
                tenant_id: "local".into(),
                bundle: bundle("run-batched", &dev_hash, 1_000).to_string(),
            })
            .await
    });
    stall.release().await;

    let mut won = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(
                refusal(Err::<(), _>(status)),
                (
                    409,
                    true,
                    "session counters changed concurrently; reload the session".to_owned()
                )
            ),
        }
    }
    assert_eq!(won, 1, "exactly one racer wins");
    let (http, retryable, _) = refusal(stale_call.await.expect("stale"));
    assert_eq!((http, retryable), (409, true));
    let (http, _, message) = refusal(unknown_call.await.expect("unknown"));
    assert_eq!((http, message.as_str()), (404, "unknown session_id"));
    appended.await.expect("append").expect("the event commits");
    assert_eq!(
        replay.await.expect("replay").expect("stored").run_id,
        "run-batched"
    );

    // The queued writes were one transaction, which no refusal rolled back.
    assert_eq!(
        metric(&ledger, "pecr_ledger_commits_total").await - commits_before,
        2.0,
        "the stalled write's commit, then one for everything queued behind it"
    );
    assert_eq!(
        metric(&ledger, "pecr_ledger_commit_batch_retries_total").await,
        retries_before
    );
    assert_eq!(
        stored_session(&ledger, "s-raced").await.operator_calls_used,
        1
    );
    assert_eq!(event_types(&ledger.db, "s-raced").await, ["OPERATOR_CALL"]);
    assert_eq!(
        stored_session(&ledger, "s-stale").await.operator_calls_used,
        0
    );
    assert!(event_types(&ledger.db, "s-stale").await.is_empty());
    assert_eq!(
        event_types(&ledger.db, "s-evented").await,
        ["POLICY_DECISION"]
    );
    assert_eq!(ledger.db.count("pecr_replay_bundles").await, 1);
}

#[tokio::test]
async fn a_write_that_fails_its_batch_is_retried_alone_and_only_it_fails() {
    let mut ledger = start_one_lane_ledger().await;
    let block = record_session(&mut ledger, "s-block", "dev").await;
    let called = record_session(&mut ledger, "s-called", "dev").await;
    let evented = record_session(&mut ledger, "s-evented", "dev").await;
    let used = record_session(&mut ledger, "s-used", "dev").await;
    let reuser = record_session(&mut ledger, "s-reuser", "dev").await;
    ledger
        .client
        .record_finalize(finalize_request(&used, "cm-taken", vec![]))
        .await
        .expect("first finalize");
    let retries_before = metric(&ledger, "pecr_ledger_commit_batch_retries_total").await;
    let claim_maps_before = ledger.db.count("pecr_claim_maps").await;

    let stall = stall_lane(&ledger, &block).await;
    let commits_before = metric(&ledger, "pecr_ledger_commits_total").await;
    let mut client = ledger.client.clone();
    let request = operator_call(&called, vec![]);
    let call = spawn(async move { client.record_operator_call(request).await });
    let mut client = ledger.client.clone();
    let event_request = event(&evented, "POLICY_DECISION", json!({"a": 1}));
    let appended = spawn(async move {
        client
            .append_event(v1::AppendEventRequest {
                event: Some(event_request),
            })
            .await
    });
    // Fails in PostgreSQL (a unique violation) and aborts the transaction.
    let mut client = ledger.client.clone();
    let request = finalize_request(&reuser, "cm-taken", vec![]);
    let reused = spawn(async move { client.record_finalize(request).await });
    // Fails in PostgreSQL too (jsonb refuses \u0000).
    let mut client = ledger.client.clone();
    let bad = event(&evented, "POLICY_DECISION", json!({"note": "nul\u{0}"}));
    let rejected = spawn(async move {
        client
            .append_event(v1::AppendEventRequest { event: Some(bad) })
            .await
    });
    let mut controller = ledger.controller.clone();
    let evaluation = json!({
        "evaluation_id": "eval-batched", "evaluation_name": "n",
        "principal_id_hash": pecr_contracts::hashing::principal_id_hash("dev"),
        "created_at_unix_ms": 1
    });
    let stored_evaluation = spawn(async move {
        controller
            .store_evaluation(v1::StoreEvaluationRequest {
                tenant_id: "local".into(),
                evaluation: evaluation.to_string(),
            })
            .await
    });
    stall.release().await;

    call.await
        .expect("call")
        .expect("the operator call commits");
    appended.await.expect("append").expect("the event commits");
    stored_evaluation
        .await
        .expect("evaluation")
        .expect("the evaluation commits");
    assert_eq!(
        refusal(reused.await.expect("reused")),
        (409, false, "claim_map_id already exists".to_owned()),
        "the same answer as alone"
    );
    let status = rejected
        .await
        .expect("rejected")
        .expect_err("jsonb refuses it");
    let error = pecr_error(&status);
    assert_eq!(
        (error.code, error.message.as_str()),
        (
            ErrorCode::InvalidParams,
            "a value was rejected by the ledger database"
        )
    );

    assert_eq!(
        metric(&ledger, "pecr_ledger_commit_batch_retries_total").await - retries_before,
        1.0,
        "the queued batch rolled back once"
    );
    assert_eq!(
        metric(&ledger, "pecr_ledger_commits_total").await - commits_before,
        4.0,
        "the stalled write, then the three good writes each alone"
    );
    assert_eq!(
        stored_session(&ledger, "s-called")
            .await
            .operator_calls_used,
        1
    );
    assert_eq!(
        event_types(&ledger.db, "s-evented").await,
        ["POLICY_DECISION"]
    );
    assert!(!stored_session(&ledger, "s-reuser").await.finalized);
    assert!(event_types(&ledger.db, "s-reuser").await.is_empty());
    assert_eq!(ledger.db.count("pecr_claim_maps").await, claim_maps_before);
    assert_eq!(ledger.db.count("pecr_evaluations").await, 1);
}

#[tokio::test]
async fn refused_first_calls_leave_the_rest_of_their_batch_committed() {
    let mut ledger = start_one_lane_ledger().await;
    let block = record_session(&mut ledger, "s-block", "dev").await;
    let called = record_session(&mut ledger, "s-called", "dev").await;
    let retries_before = metric(&ledger, "pecr_ledger_commit_batch_retries_total").await;

    // Valid evidence of another snapshot: the planner refuses the calls.
    let refused_request = session_request("s-refused", "dev");
    let mut elsewhere = planned_session(&refused_request);
    elsewhere.policy_snapshot_id = "ps-elsewhere".into();
    let refused_request = v1::RecordSessionRequest {
        first_calls: Some(operator_call(
            &planned_session(&refused_request),
            vec![text_evidence(&elsewhere, "public/a.txt", "alpha\n")],
        )),
        ..refused_request
    };

    let stall = stall_lane(&ledger, &block).await;
    let commits_before = metric(&ledger, "pecr_ledger_commits_total").await;
    let mut client = ledger.client.clone();
    let refused = spawn(async move { client.record_session(refused_request).await });
    let mut client = ledger.client.clone();
    let request = with_first_calls(session_request("s-first", "dev"), &["beta\n"]);
    let first = spawn(async move { client.record_session(request).await });
    let mut client = ledger.client.clone();
    let request = session_request("s-plain", "dev");
    let plain = spawn(async move { client.record_session(request).await });
    let mut client = ledger.client.clone();
    let request = operator_call(&called, vec![]);
    let call = spawn(async move { client.record_operator_call(request).await });
    stall.release().await;

    assert_eq!(
        refusal(refused.await.expect("refused")),
        (
            400,
            false,
            "evidence must carry the session's policy snapshot and as_of_time".to_owned()
        )
    );
    let first = first
        .await
        .expect("first")
        .expect("the session with calls commits");
    assert!(first.first_calls.is_some());
    plain
        .await
        .expect("plain")
        .expect("the plain session commits");
    call.await
        .expect("call")
        .expect("the operator call commits");

    assert_eq!(
        metric(&ledger, "pecr_ledger_commits_total").await - commits_before,
        2.0,
        "the stalled write's commit, then one for everything queued behind it"
    );
    assert_eq!(
        metric(&ledger, "pecr_ledger_commit_batch_retries_total").await,
        retries_before
    );
    let mut client = ledger.client.clone();
    let missing = client
        .get_session(v1::GetSessionRequest {
            session_id: "s-refused".into(),
        })
        .await
        .expect_err("the refused session is not stored");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(event_types(&ledger.db, "s-refused").await.is_empty());
    assert_eq!(
        Some(stored_session(&ledger, "s-first").await),
        first.session
    );
    assert_eq!(
        event_types(&ledger.db, "s-first").await,
        ["EVIDENCE_EMITTED", "OPERATOR_CALL"]
    );
    assert_eq!(ledger.db.count("pecr_evidence_units").await, 1);
    assert_eq!(
        stored_session(&ledger, "s-plain").await.operator_calls_used,
        0
    );
    assert_eq!(
        stored_session(&ledger, "s-called")
            .await
            .operator_calls_used,
        1
    );
}

#[tokio::test]
async fn a_recorded_session_answers_what_the_ledger_stores() {
    let mut ledger = start_ledger().await;
    let recorded = record_session(&mut ledger, "s-known", "dev").await;
    assert_eq!(recorded, stored_session(&ledger, "s-known").await);
}

#[tokio::test]
async fn lanes_must_leave_a_connection_for_reads() {
    let db = TestDatabase::create().await;
    let mut env = vec![
        ("PECR_DB_URL", db.url()),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".into()),
        ("PECR_DB_POOL_MAX_SIZE", "2".into()),
        ("PECR_LEDGER_COMMIT_LANES", "2".into()),
        ("PECR_LEDGER_MAX_BATCH", "0".into()),
    ];
    env.extend(pecr_testkit::credentials::ledger_writer_tokens());
    let report = pecr_testkit::ServiceProcess::run_to_exit("pecr-ledger-writer", &env).await;
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    let stderr = report.stderr;
    assert!(
        stderr.contains("PECR_LEDGER_COMMIT_LANES (2) must be below PECR_DB_POOL_MAX_SIZE (2)"),
        "{stderr}"
    );
    assert!(stderr.contains("PECR_LEDGER_MAX_BATCH"), "{stderr}");
}

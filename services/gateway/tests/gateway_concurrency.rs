//! Concurrent operator calls on one session: the call budget is never
//! exceeded, within one gateway (its per-session lock) or across replicas
//! (ledger-writer's compare-and-set), and the ledger's counters match the
//! calls that succeeded.

mod common;

use std::time::Duration;

use common::*;
use pecr_errors::ErrorCode;
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use serde_json::{Value, json};
use tonic::transport::Channel;

const TASKS: usize = 8;
const MAX_CALLS: u32 = 5;

/// One `fetch_span` of the public file in `session`, as `client`.
async fn fetch(
    mut client: GatewayServiceClient<Channel>,
    session_id: String,
    token: String,
) -> Result<(), tonic::Status> {
    let request = call(
        "dev",
        Some(&token),
        v1::CallOperatorRequest {
            op_name: "fetch_span".into(),
            session_id,
            params: json!({"object_id": "public/public_1.txt"}).to_string(),
        },
    );
    client.call_operator(request).await.map(|_| ())
}

/// Runs the calls concurrently and sorts the outcomes.
async fn race(
    clients: Vec<GatewayServiceClient<Channel>>,
    session_id: String,
    token: String,
) -> (usize, Vec<tonic::Status>) {
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        tasks.spawn(fetch(client, session_id.clone(), token.clone()));
    }
    let (mut successes, mut failures) = (0, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            Ok(()) => successes += 1,
            Err(status) => failures.push(status),
        }
    }
    (successes, failures)
}

/// The runtime counters and the successful OPERATOR_CALL events of a session.
async fn ledger_view(mesh: &Mesh, session: &Session) -> (i64, i64, Vec<Value>) {
    let (calls, bytes) = mesh.counters(&session.session_id).await;
    let successes = mesh
        .events(&session.trace_id)
        .await
        .into_iter()
        .filter(|(t, p)| t == "OPERATOR_CALL" && p["outcome"] == "success")
        .map(|(_, p)| p)
        .collect();
    (calls, bytes, successes)
}

/// The counters agree with the successful calls' events, which chain.
fn assert_ledger_matches(successes: usize, (calls, bytes, events): &(i64, i64, Vec<Value>)) {
    assert_eq!(*calls, successes as i64, "runtime operator_calls_used");
    assert_eq!(events.len(), successes, "successful OPERATOR_CALL events");
    let mut used: Vec<(i64, i64)> = events
        .iter()
        .map(|p| {
            (
                p["operator_calls_used"].as_i64().unwrap_or(-1),
                p["bytes_used"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    used.sort_unstable();
    let expected_calls: Vec<i64> = (1..=successes as i64).collect();
    assert_eq!(
        used.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        expected_calls,
        "each success counted once: {events:?}"
    );
    assert_eq!(used.last().map(|(_, b)| *b), Some(*bytes), "bytes_used");
    let per_call: i64 = events
        .iter()
        .map(|p| p["params_bytes"].as_i64().unwrap_or(0) + p["result_bytes"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        per_call, *bytes,
        "bytes_used is the sum of the calls' bytes"
    );
}

#[tokio::test]
async fn one_gateway_never_exceeds_the_call_budget() {
    let mesh = Mesh::start(Policy::Test).await;
    let session = mesh
        .session_with("dev", budget(MAX_CALLS, 1_048_576), None)
        .await
        .expect("session");
    let clients = (0..TASKS).map(|_| mesh.client()).collect();
    let (successes, failures) =
        race(clients, session.session_id.clone(), session.token.clone()).await;

    assert_eq!(successes, MAX_CALLS as usize, "{failures:?}");
    for status in &failures {
        let err = error(status);
        assert!(
            matches!(
                (err.code, err.http_status),
                (ErrorCode::BudgetExceeded, 429)
                    | (ErrorCode::SourceTimeout, 503)
                    | (ErrorCode::InvalidParams, 409)
            ),
            "{err:?}"
        );
    }
    assert_ledger_matches(successes, &ledger_view(&mesh, &session).await);
    let violations = mesh
        .events(&session.trace_id)
        .await
        .into_iter()
        .filter(|(t, _)| t == "BUDGET_VIOLATION")
        .count();
    let refused = failures
        .iter()
        .filter(|s| error(s).code == ErrorCode::BudgetExceeded)
        .count();
    assert_eq!(violations, refused, "one BUDGET_VIOLATION per 429");
}

#[tokio::test]
async fn replicas_never_exceed_the_call_budget() {
    let mesh = Mesh::start(Policy::Test).await;
    let replica = mesh.start_replica().await;
    let replica_channel = Channel::from_shared(replica.grpc_url())
        .expect("replica url")
        .connect()
        .await
        .expect("connect replica");
    let session = mesh
        .session_with("dev", budget(MAX_CALLS, 1_048_576), None)
        .await
        .expect("session");
    let clients = (0..TASKS)
        .map(|i| {
            if i % 2 == 0 {
                mesh.client()
            } else {
                GatewayServiceClient::new(replica_channel.clone())
            }
        })
        .collect();
    let (successes, failures) =
        race(clients, session.session_id.clone(), session.token.clone()).await;

    assert!(
        (1..=MAX_CALLS as usize).contains(&successes),
        "{successes} successes: {failures:?}"
    );
    for status in &failures {
        let err = error(status);
        match (err.code, err.http_status) {
            (ErrorCode::BudgetExceeded, 429) | (ErrorCode::SourceTimeout, 503) => {}
            (ErrorCode::InvalidParams, 409) => {
                assert!(err.retryable, "a lost race is retryable: {err:?}");
            }
            _ => panic!("unexpected failure {err:?}"),
        }
    }
    assert_ledger_matches(successes, &ledger_view(&mesh, &session).await);

    // Retrying the lost races fills the budget exactly, and no further.
    let mut filled = successes;
    for _ in 0..(2 * TASKS) {
        match fetch(
            mesh.client(),
            session.session_id.clone(),
            session.token.clone(),
        )
        .await
        {
            Ok(()) => filled += 1,
            Err(status) => {
                assert_eq!(error(&status).code, ErrorCode::BudgetExceeded);
                break;
            }
        }
    }
    assert_eq!(filled, MAX_CALLS as usize);
    assert_ledger_matches(filled, &ledger_view(&mesh, &session).await);
    let status = fetch(
        GatewayServiceClient::new(replica_channel.clone()),
        session.session_id.clone(),
        session.token.clone(),
    )
    .await
    .expect_err("the replica sees the spent budget");
    assert_eq!(error(&status).code, ErrorCode::BudgetExceeded);
    replica.stop().await;
}

/// Ledger-writer backends waiting, directly or behind another waiter, on a
/// lock `holder` (a backend pid) holds.
async fn waiters_behind(db: &tokio_postgres::Client, holder: i32) -> i64 {
    db.query_one(
        "WITH RECURSIVE waiting(pid) AS ( \
           SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) \
           UNION SELECT a.pid FROM pg_stat_activity a JOIN waiting w ON w.pid = ANY(pg_blocking_pids(a.pid))) \
         SELECT count(*) FROM waiting",
        &[&holder],
    )
    .await
    .expect("pg_stat_activity")
    .get(0)
}

#[tokio::test]
async fn two_replicas_cannot_both_spend_the_last_call() {
    // Deterministic form of the race above: both replicas load the session
    // while its row is locked, so both commits queue behind the lock with
    // the same expected counters; only one may win.
    let mesh = Mesh::start(Policy::Test).await;
    let replica = mesh.start_replica().await;
    let replica_channel = Channel::from_shared(replica.grpc_url())
        .expect("replica url")
        .connect()
        .await
        .expect("connect replica");
    let session = mesh
        .session_with("dev", budget(1, 1_048_576), None)
        .await
        .expect("session");

    let (locker, connection) = tokio_postgres::connect(&mesh.db.url(), tokio_postgres::NoTls)
        .await
        .expect("second connection");
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

    let calls = tokio::spawn(race(
        vec![
            mesh.client(),
            GatewayServiceClient::new(replica_channel.clone()),
        ],
        session.session_id.clone(),
        session.token.clone(),
    ));
    eventually(
        "both ledger writes wait for the session row",
        Duration::from_secs(5),
        || {
            let locker = &locker;
            async move { (waiters_behind(locker, holder).await >= 2).then_some(()) }
        },
    )
    .await;
    locker.batch_execute("COMMIT").await.expect("commit");
    let (successes, failures) = calls.await.expect("calls");

    assert_eq!(
        successes, 1,
        "a budget of one call was spent {successes} times; failures: {failures:?}"
    );
    for status in &failures {
        let err = error(status);
        assert!(
            matches!(
                (err.code, err.http_status),
                (ErrorCode::BudgetExceeded, 429) | (ErrorCode::InvalidParams, 409)
            ),
            "{err:?}"
        );
    }
    assert_ledger_matches(successes, &ledger_view(&mesh, &session).await);
    replica.stop().await;
}

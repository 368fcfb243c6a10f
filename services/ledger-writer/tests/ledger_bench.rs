//! A run-shaped write load on ledger-writer, for before/after figures. Not
//! a test of speed (ignored; it only checks that every call succeeded):
//!
//! ```text
//! cargo test --release -p pecr-ledger-writer --test ledger_bench -- --ignored --nocapture
//! ```
//!
//! One run is what the gateway and the controller send today: RecordSession,
//! five times GetSession + RecordOperatorCall (one evidence unit, two
//! events), GetSession, AppendEvent (the finalize decision), RecordFinalize,
//! StoreReplayBundle. `LEDGER_BENCH_FOLD=1` sends the decision event, the
//! counters and the replay inside RecordFinalize instead;
//! `LEDGER_BENCH_READS=0` leaves out the GetSession reads. Other settings:
//! `LEDGER_BENCH_CLIENTS` (16), `LEDGER_BENCH_RUNS` (2000),
//! `LEDGER_BENCH_BINARY` (a ledger-writer build beside this test's,
//! `pecr-ledger-writer`), `LEDGER_BENCH_LANES` (the binary's default).
//! CPU is read from /proc: the PostgreSQL backends of the test database
//! (other tests on the same database count too: run it alone) and the WAL
//! writer, and the ledger-writer child.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::*;
use pecr_proto::v1;
use pecr_testkit::TestDatabase;
use serde_json::json;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// CPU ticks used so far by the processes `pick` chooses (by pid, comm, ppid).
fn cpu_ticks(pick: impl Fn(u32, &str, u32) -> bool) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| {
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let pid: u32 = stat[..open].trim().parse().ok()?;
            let comm = &stat[open + 1..close];
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ppid: u32 = fields.get(1)?.parse().ok()?;
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            pick(pid, comm, ppid).then_some(utime + stime)
        })
        .sum()
}

/// The PostgreSQL processes that work for this benchmark: the backends
/// connected to its database (the ledger's pooled connections exist once
/// warmed up) and the WAL writer. Other databases' load is left out.
async fn postgres_pids(db: &TestDatabase) -> Vec<u32> {
    db.client()
        .query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() OR backend_type = 'walwriter'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .filter_map(|row| u32::try_from(row.get::<_, i32>(0)).ok())
        .collect()
}

fn postgres_ticks(pids: &[u32]) -> u64 {
    cpu_ticks(|pid, comm, _| comm == "postgres" && pids.contains(&pid))
}

fn ledger_ticks() -> u64 {
    let me = std::process::id();
    cpu_ticks(|_, comm, ppid| ppid == me && comm.starts_with("pecr-ledger"))
}

/// The session as the gateway would see it before its next write: read
/// again (`reads`), or as the last write answered.
async fn current(
    client: &mut Client,
    session: v1::SessionRecord,
    reads: bool,
) -> Result<v1::SessionRecord, tonic::Status> {
    if !reads {
        return Ok(session);
    }
    Ok(client
        .get_session(v1::GetSessionRequest {
            session_id: session.session_id,
        })
        .await?
        .into_inner()
        .session
        .unwrap_or_default())
}

async fn one_run(
    client: &mut Client,
    controller: &mut Client,
    id: &str,
    (fold, reads): (bool, bool),
) -> Result<(), tonic::Status> {
    let mut session = client
        .record_session(session_request(id, "dev"))
        .await?
        .into_inner()
        .session
        .unwrap_or_default();
    for step in 0..5 {
        let current = current(client, session, reads).await?;
        let unit = text_evidence(&current, &format!("public/{id}-{step}.txt"), "alpha\n");
        session = client
            .record_operator_call(operator_call(&current, vec![unit]))
            .await?
            .into_inner()
            .session
            .unwrap_or_default();
    }
    let current = current(client, session, reads).await?;
    let decision = event(&current, "POLICY_DECISION", json!({"action": "finalize"}));
    let replay = v1::StoreReplayBundleRequest {
        tenant_id: "local".into(),
        bundle: session_bundle(&format!("run-{id}"), &current).to_string(),
    };
    let finalize = finalize_request(&current, &format!("cm-{id}"), vec![]);
    if fold {
        client
            .record_finalize(v1::RecordFinalizeRequest {
                events: vec![decision],
                expected_operator_calls_used: Some(current.operator_calls_used),
                expected_bytes_used: Some(current.bytes_used),
                replay: Some(replay),
                ..finalize
            })
            .await?;
    } else {
        client
            .append_event(v1::AppendEventRequest {
                event: Some(decision),
            })
            .await?;
        client.record_finalize(finalize).await?;
        controller.store_replay_bundle(replay).await?;
    }
    Ok(())
}

async fn drive(ledger: &Ledger, prefix: &str, clients: usize, runs: usize, shape: (bool, bool)) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let mut client = ledger.client.clone();
            let mut controller = ledger.controller.clone();
            let next = next.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= runs {
                        return;
                    }
                    let id = format!("{prefix}-{index}");
                    one_run(&mut client, &mut controller, &id, shape)
                        .await
                        .unwrap_or_else(|status| panic!("run {id}: {status:?}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
}

/// Transactions committed in the whole database (other users count too).
async fn database_commits(db: &TestDatabase) -> i64 {
    db.client()
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("pg_stat_database")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run with --ignored --nocapture"]
async fn run_shaped_write_load() {
    let clients = setting("LEDGER_BENCH_CLIENTS", 16);
    let runs = setting("LEDGER_BENCH_RUNS", 2000);
    let fold = setting("LEDGER_BENCH_FOLD", 0) == 1;
    let reads = setting("LEDGER_BENCH_READS", 1) == 1;
    let binary =
        std::env::var("LEDGER_BENCH_BINARY").unwrap_or_else(|_| "pecr-ledger-writer".into());
    let db = TestDatabase::create().await;
    let mut env = vec![("PECR_DB_URL", db.url())];
    if let Ok(lanes) = std::env::var("LEDGER_BENCH_LANES") {
        env.push(("PECR_LEDGER_COMMIT_LANES", lanes));
    }
    let ledger = start_ledger_binary(&binary, db, &env).await;
    drive(&ledger, "warm", clients, runs / 4, (fold, reads)).await;
    // A fresh schema has no statistics: the first plans of every statement
    // (cached per connection until the tables are analysed) would scan
    // whole tables. Analyse, as autovacuum soon would, to measure the
    // steady state.
    for table in [
        "pecr_policy_snapshots",
        "pecr_sessions",
        "pecr_session_runtime",
        "pecr_ledger_events",
        "pecr_evidence_units",
        "pecr_claim_maps",
        "pecr_replay_bundles",
    ] {
        ledger
            .db
            .client()
            .batch_execute(&format!("ANALYZE {table}"))
            .await
            .expect("analyze");
    }

    let commits_before = database_commits(&ledger.db).await;
    let pids = postgres_pids(&ledger.db).await;
    let (pg_before, ledger_before) = (postgres_ticks(&pids), ledger_ticks());
    let started = Instant::now();
    drive(&ledger, "run", clients, runs, (fold, reads)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (pg_after, ledger_after) = (postgres_ticks(&pids), ledger_ticks());
    // Ticks are 1/100 s on Linux.
    let per_run_ms = |ticks: u64| ticks as f64 * 10.0 / runs as f64;
    println!(
        "{}",
        json!({
            "binary": binary,
            "fold_into_finalize": fold,
            "get_session_reads": reads,
            "clients": clients,
            "runs": runs,
            "seconds": elapsed,
            "runs_per_second": runs as f64 / elapsed,
            "postgres_cpu_ms_per_run": per_run_ms(pg_after - pg_before),
            "ledger_writer_cpu_ms_per_run": per_run_ms(ledger_after - ledger_before),
            "database_commits_per_run": (database_commits(&ledger.db).await - commits_before) as f64 / runs as f64,
        })
    );
}

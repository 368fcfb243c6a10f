//! Drill: the PostgreSQL cluster restarted under load (controller runs and
//! direct gateway calls). No acknowledged write may be lost, errors during
//! the outage must be clean retryable PECR errors (or runs ending
//! `SOURCE_UNAVAILABLE`), and the services must become ready again and
//! answer `SUPPORTED` runs without being restarted.

use std::time::{Duration, Instant};

use pecr_proto::v1::{self, TerminalMode};
use pecr_security_tests::gate_env;

use crate::audit::{unrecorded_operator_results, unrecorded_runs};
use crate::figures::{Figures, ms};
use crate::harness::{DrillMesh, DrillSettings, eventually, readyz};
use crate::load::{
    CALL_DEADLINE, Call, FETCH_PUBLIC, Load, SEARCH, STATUS_QUESTION, answered, mode,
};

const DRILL: &str = "postgres_restart";
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
const RESTART_LIMIT: Duration = Duration::from_secs(120);
const RUN_CLIENTS: usize = 4;
const OPERATOR_CLIENTS: usize = 4;

fn supported_after(call: &Call<v1::RunResponse>, after: Instant) -> bool {
    call.started >= after
        && matches!(&call.outcome, Ok(run)
            if mode(run) == TerminalMode::Supported && !run.run_id.is_empty())
}

/// Restarts the cluster with the gate's command, from the repository root.
async fn restart_postgres() {
    let command = gate_env("PECR_GATE_PG_RESTART");
    let status = tokio::time::timeout(
        RESTART_LIMIT,
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(pecr_testkit::workspace_root())
            .status(),
    )
    .await
    .unwrap_or_else(|_| panic!("`{command}` did not finish within {RESTART_LIMIT:?}"))
    .unwrap_or_else(|err| panic!("run `{command}`: {err}"));
    assert!(status.success(), "`{command}` failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "security gate drill: run by scripts/security-gate.sh"]
async fn postgres_restarted_under_load_loses_nothing_and_recovers() {
    let mut mesh = DrillMesh::start(DrillSettings {
        wait_ready: true,
        ..DrillSettings::default()
    })
    .await;
    let run_budget = pecr_mesh_tests::budget(100, 1_048_576, 10_000, 10, None);
    let runs = Load::runs(
        &mesh.controller_client(),
        RUN_CLIENTS,
        STATUS_QUESTION,
        run_budget,
        "pg-restart",
    );
    let ops = Load::operators(
        &mesh.gateway_client(),
        OPERATOR_CLIENTS,
        &[FETCH_PUBLIC, SEARCH],
        "pg-restart",
    );
    eventually(
        "every client answered before the restart",
        RECOVERY_DEADLINE,
        || {
            let warm = ops.each(3, answered) && runs.each(2, answered);
            async move { warm.then_some(()) }
        },
    )
    .await;

    let restarting = Instant::now();
    restart_postgres().await;
    let restarted = Instant::now();
    let admin = mesh.admin_addrs();
    let all_ready = eventually("all three services ready again", RECOVERY_DEADLINE, || {
        let admin = admin.clone();
        async move {
            for (_, addr) in admin {
                if !matches!(readyz(addr).await, Some((200, _))) {
                    return None;
                }
            }
            Some(Instant::now())
        }
    })
    .await;
    let recovered = eventually(
        "SUPPORTED runs and answers again",
        RECOVERY_DEADLINE,
        || {
            let done = runs.each(1, |call| supported_after(call, restarted))
                && ops.each(1, |call| call.started >= restarted && answered(call));
            async move { done.then(Instant::now) }
        },
    )
    .await;
    let runs = runs.finish().await;
    let calls = ops.finish().await;

    let unrecorded = unrecorded_operator_results(&mesh, &calls).await;
    let unrecorded_run_answers = unrecorded_runs(&mesh, &runs).await;
    let overlapping =
        |call: &&Call<v1::RunResponse>| call.ended >= restarting && call.started <= restarted;
    let mut figures = Figures::new(DRILL);
    figures.tally("runs", &runs);
    figures.tally("gateway_calls", &calls);
    figures.set(
        "runs_source_unavailable",
        runs.iter()
            .filter(|call| matches!(&call.outcome, Ok(run) if mode(run) == TerminalMode::SourceUnavailable))
            .count(),
    );
    figures.set(
        "runs_answered_without_run_id",
        runs.iter()
            .filter(|call| matches!(&call.outcome, Ok(run) if run.run_id.is_empty()))
            .count(),
    );
    figures.set(
        "runs_overlapping_restart",
        runs.iter().filter(overlapping).count(),
    );
    figures.set("postgres_restart_ms", ms(restarted - restarting));
    figures.set(
        "all_ready_after_restart_ms",
        ms(all_ready.saturating_duration_since(restarted)),
    );
    figures.set(
        "supported_again_after_restart_ms",
        ms(recovered.saturating_duration_since(restarted)),
    );
    figures.set(
        "slowest_run_ms",
        ms(runs.iter().map(Call::elapsed).max().unwrap_or_default()),
    );
    figures.set(
        "unrecorded_answers",
        unrecorded.len() + unrecorded_run_answers.len(),
    );
    figures.write();

    // No acknowledged write lost: every answer has its ledger events, every
    // returned run id its stored replay.
    assert!(
        unrecorded.is_empty(),
        "answered but unrecorded:\n{}",
        unrecorded.join("\n")
    );
    assert!(
        unrecorded_run_answers.is_empty(),
        "runs answered but unrecorded:\n{}",
        unrecorded_run_answers.join("\n")
    );
    // Clean errors only, and no call ran into its deadline.
    for call in &calls {
        if let Err(failure) = &call.outcome {
            assert!(failure.is_clean_unavailable(), "{call:?}");
        }
        assert!(call.elapsed() < CALL_DEADLINE, "{call:?}");
    }
    for call in &runs {
        match &call.outcome {
            Ok(run) => assert!(
                matches!(
                    mode(run),
                    TerminalMode::Supported | TerminalMode::SourceUnavailable
                ),
                "{call:?}"
            ),
            Err(failure) => assert!(failure.is_clean_unavailable(), "{call:?}"),
        }
        assert!(call.elapsed() < CALL_DEADLINE, "{call:?}");
    }
    mesh.assert_no_panic();
}

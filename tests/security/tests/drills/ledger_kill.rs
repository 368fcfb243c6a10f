//! Drill: ledger-writer killed with SIGKILL under load, then started again
//! on the same ports. The gateway must fail closed while it is gone (no
//! answer without its ledger write, only retryable 503
//! `ERR_LEDGER_UNAVAILABLE`, never a 401 or a 500) and recover by itself.

use std::time::{Duration, Instant};

use pecr_proto::v1::TerminalMode;

use crate::audit::{unrecorded_operator_results, unrecorded_runs};
use crate::figures::{Figures, ms};
use crate::harness::{DrillMesh, DrillSettings, eventually, readyz};
use crate::load::{Call, FETCH_PUBLIC, Load, SEARCH, STATUS_QUESTION, answered, mode};

const DRILL: &str = "ledger_writer_sigkill";
/// Generous: a loaded 2-core machine restarts the processes' connections slowly.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(45);
/// How long ledger-writer stays dead at least, so the clients keep calling into the outage.
const OUTAGE_MIN: Duration = Duration::from_millis(1500);
const OPERATOR_CLIENTS: usize = 6;
const RUN_CLIENTS: usize = 2;

fn within<T>(call: &Call<T>, from: Instant, to: Instant) -> bool {
    call.started >= from && call.ended <= to
}

fn ledger_unavailable<T>(call: &Call<T>) -> bool {
    matches!(&call.outcome, Err(failure)
        if failure.code == "ERR_LEDGER_UNAVAILABLE" && failure.is_clean_unavailable())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "security gate drill: run by scripts/security-gate.sh"]
async fn ledger_writer_killed_under_load_fails_closed_and_recovers() {
    let mut mesh = DrillMesh::start(DrillSettings {
        wait_ready: true,
        ..DrillSettings::default()
    })
    .await;
    let ops = Load::operators(
        &mesh.gateway_client(),
        OPERATOR_CLIENTS,
        &[FETCH_PUBLIC, SEARCH],
        "ledger-kill",
    );
    let runs = Load::runs(
        &mesh.controller_client(),
        RUN_CLIENTS,
        STATUS_QUESTION,
        pecr_mesh_tests::roomy_budget(),
        "ledger-kill",
    );
    eventually(
        "every client answered before the kill",
        RECOVERY_DEADLINE,
        || {
            let warm = ops.each(3, answered) && runs.each(1, answered);
            async move { warm.then_some(()) }
        },
    )
    .await;

    mesh.kill_ledger().await;
    let killed = Instant::now();
    eventually(
        "every client refused during the outage",
        RECOVERY_DEADLINE,
        || {
            let enough = killed.elapsed() >= OUTAGE_MIN
                && ops.each(3, |call| call.started >= killed && call.outcome.is_err())
                && runs.each(1, |call| call.started >= killed && call.outcome.is_err());
            async move { enough.then_some(()) }
        },
    )
    .await;

    let restarting = Instant::now();
    mesh.restart_ledger().await;
    let restarted = Instant::now();
    let gateway = mesh.gateway.http_addr;
    let gateway_ready = eventually(
        "the gateway ready again",
        RECOVERY_DEADLINE,
        || async move { matches!(readyz(gateway).await, Some((200, _))).then(Instant::now) },
    )
    .await;
    let recovered = eventually("every client answered again", RECOVERY_DEADLINE, || {
        let after = |call: &Call<_>| call.started >= restarted && answered(call);
        let supported_run = |call: &Call<pecr_proto::v1::RunResponse>| {
            call.started >= restarted
                && matches!(&call.outcome, Ok(run)
                    if mode(run) == TerminalMode::Supported && !run.run_id.is_empty())
        };
        let done = ops.each(1, after) && runs.each(1, supported_run);
        async move { done.then(Instant::now) }
    })
    .await;
    let calls = ops.finish().await;
    let runs = runs.finish().await;

    let outage_calls: Vec<_> = calls
        .iter()
        .filter(|call| within(call, killed, restarting))
        .collect();
    let outage_runs: Vec<_> = runs
        .iter()
        .filter(|call| within(call, killed, restarting))
        .collect();
    let unrecorded = unrecorded_operator_results(&mesh, &calls).await;
    let unrecorded_run_answers = unrecorded_runs(&mesh, &runs).await;

    let mut figures = Figures::new(DRILL);
    figures.tally("gateway_calls", &calls);
    figures.tally("runs", &runs);
    figures.set("outage_ms", ms(restarting - killed));
    figures.set("gateway_calls_during_outage", outage_calls.len());
    figures.set(
        "gateway_calls_answered_during_outage",
        outage_calls
            .iter()
            .filter(|call| call.outcome.is_ok())
            .count(),
    );
    figures.set("runs_during_outage", outage_runs.len());
    figures.set(
        "runs_answered_without_run_id",
        runs.iter()
            .filter(|call| matches!(&call.outcome, Ok(run) if run.run_id.is_empty()))
            .count(),
    );
    figures.set("ledger_restart_ms", ms(restarted - restarting));
    figures.set(
        "gateway_ready_after_restart_ms",
        ms(gateway_ready.saturating_duration_since(restarted)),
    );
    figures.set(
        "every_client_answered_after_restart_ms",
        ms(recovered.saturating_duration_since(restarted)),
    );
    figures.set(
        "unrecorded_answers",
        unrecorded.len() + unrecorded_run_answers.len(),
    );
    figures.write();

    // The audit can fail: an answer the gateway never gave, in a real
    // session, is reported missing.
    let mut forged = calls
        .iter()
        .find(|call| answered(call) && call.kind == "fetch_rows")
        .cloned()
        .unwrap_or_else(|| panic!("no fetch_rows was answered"));
    forged.request_id = "ledger-kill-forged".into();
    let forged_evidence = forged
        .outcome
        .as_ref()
        .map_or(0, |granted| granted.evidence_ids.len());
    assert_eq!(
        unrecorded_operator_results(&mesh, &[forged]).await.len(),
        1 + forged_evidence
    );
    // Nothing was answered that the ledger does not hold.
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
    // While ledger-writer was gone, every call was refused, cleanly.
    assert!(
        !outage_calls.is_empty(),
        "no gateway call fell inside the outage"
    );
    for call in &outage_calls {
        assert!(ledger_unavailable(call), "during the outage: {call:?}");
    }
    for call in &outage_runs {
        assert!(ledger_unavailable(call), "run during the outage: {call:?}");
    }
    // The only failure of the whole drill is the retryable 503: no 401 for
    // the session owner, no 500, no transport error, no hang.
    for call in &calls {
        assert!(call.outcome.is_ok() || ledger_unavailable(call), "{call:?}");
    }
    for call in &runs {
        assert!(call.outcome.is_ok() || ledger_unavailable(call), "{call:?}");
    }
    // Recovery without help was checked above: ready and answering again
    // within the deadline, ledger-writer alone restarted.
    mesh.assert_no_panic();
}

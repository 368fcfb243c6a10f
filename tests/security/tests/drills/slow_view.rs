//! Drill: a safe view slower than the gateway's statement timeout, called
//! by many clients at once. Each such call must fail fast and cleanly, the
//! connection pool must keep serving the fast view during and after, and a
//! run whose plan reads the slow view must end `SOURCE_UNAVAILABLE` within
//! its budget.

use std::time::{Duration, Instant};

use pecr_proto::v1::{self, TerminalMode};

use crate::audit::unrecorded_operator_results;
use crate::figures::{Figures, ms};
use crate::harness::{DrillMesh, DrillSettings, eventually};
use crate::load::{Call, FETCH_PUBLIC, FETCH_SLOW, Granted, Load, answered, median, mode};

const DRILL: &str = "slow_safe_view";
/// `safe_customer_view_public_slow` sleeps 200 ms; the statement timeout is far below.
const STATEMENT_TIMEOUT_MS: u64 = 50;
/// More slow clients than the gateway's safe-view pool has connections (16).
const SLOW_CLIENTS: usize = 20;
const FAST_CLIENTS: usize = 4;
const RUN_CLIENTS: usize = 2;
const RUN_WALLCLOCK_MS: u64 = 5_000;
/// Generous bound of one refused slow call on a loaded 2-core machine.
const FAIL_FAST: Duration = Duration::from_secs(2);
/// What a run may take beyond its wall-clock budget on a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);
const LOAD_MIN: Duration = Duration::from_secs(3);
const SLOW_PLAN: &str = r#"[{"kind":"operator","op_name":"fetch_rows","params":{"view_id":"safe_customer_view_public_slow","fields":["status"],"filter_spec":{"customer_id":"cust_public_1"}}}]"#;

/// The designed refusal of a statement timeout: 503 `ERR_SOURCE_UNAVAILABLE`
/// "database query failed", retryable, hinting `SOURCE_UNAVAILABLE`.
fn statement_timed_out(call: &Call<Granted>) -> bool {
    matches!(&call.outcome, Err(failure)
        if failure.code == "ERR_SOURCE_UNAVAILABLE"
            && failure.message == "database query failed"
            && failure.is_clean_unavailable())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "security gate drill: run by scripts/security-gate.sh"]
async fn a_safe_view_past_its_statement_timeout_fails_fast_and_spares_the_pool() {
    let mut mesh = DrillMesh::start(DrillSettings {
        gateway: vec![(
            "PECR_PG_SAFEVIEW_QUERY_TIMEOUT_MS",
            STATEMENT_TIMEOUT_MS.to_string(),
        )],
        controller: vec![("PECR_BASELINE_PLAN", SLOW_PLAN.into())],
        wait_ready: true,
    })
    .await;
    let gateway = mesh.gateway_client();
    let load_started = Instant::now();
    let slow = Load::operators(&gateway, SLOW_CLIENTS, &[FETCH_SLOW], "slow-view");
    let fast = Load::operators(&gateway, FAST_CLIENTS, &[FETCH_PUBLIC], "slow-view-fast");
    let runs = Load::runs(
        &mesh.controller_client(),
        RUN_CLIENTS,
        "status",
        pecr_mesh_tests::budget(10, 1_048_576, RUN_WALLCLOCK_MS, 5, None),
        "slow-view",
    );
    eventually(
        "every client called the views",
        Duration::from_secs(60),
        || {
            let done = load_started.elapsed() >= LOAD_MIN
                && slow.each(5, |call| call.kind == "fetch_rows_slow")
                && fast.each(5, answered)
                && runs.each(2, |_| true);
            async move { done.then_some(()) }
        },
    )
    .await;
    let slow_calls = slow.finish().await;
    let runs = runs.finish().await;
    let during = fast.finish().await;
    // After the load: as many concurrent fast calls as the pool has connections.
    let after = Load::operators(&gateway, 16, &[FETCH_PUBLIC], "slow-view-after");
    eventually(
        "the fast view answers after the load",
        Duration::from_secs(60),
        || {
            let done = after.each(2, |call| call.kind != "create_session");
            async move { done.then_some(()) }
        },
    )
    .await;
    let after = after.finish().await;

    let slow_reads: Vec<&Call<Granted>> = slow_calls
        .iter()
        .filter(|call| call.kind == "fetch_rows_slow")
        .collect();
    let mut fast_calls = during.clone();
    fast_calls.extend(after.iter().cloned());
    let unrecorded = unrecorded_operator_results(&mesh, &fast_calls).await;

    let mut figures = Figures::new(DRILL);
    figures.tally("slow_view_reads", slow_reads.iter().copied());
    figures.tally(
        "slow_view_clients_sessions",
        slow_calls
            .iter()
            .filter(|call| call.kind == "create_session"),
    );
    figures.tally("fast_view_calls_during", &during);
    figures.tally("fast_view_calls_after", &after);
    figures.tally("runs", &runs);
    figures.set(
        "median_slow_call_ms",
        ms(median(
            slow_reads.iter().map(|call| call.elapsed()).collect(),
        )),
    );
    figures.set(
        "slowest_slow_call_ms",
        ms(slow_reads
            .iter()
            .map(|call| call.elapsed())
            .max()
            .unwrap_or_default()),
    );
    figures.set(
        "slowest_run_ms",
        ms(runs.iter().map(Call::elapsed).max().unwrap_or_default()),
    );
    figures.set("statement_timeout_ms", STATEMENT_TIMEOUT_MS);
    figures.set("unrecorded_answers", unrecorded.len());
    figures.write();

    assert!(!slow_reads.is_empty(), "no slow-view call was made");
    for call in &slow_reads {
        assert!(statement_timed_out(call), "{call:?}");
        assert!(call.elapsed() <= FAIL_FAST, "not fast: {call:?}");
    }
    // The pool was never exhausted: every other call succeeded, during and after.
    for call in slow_calls
        .iter()
        .filter(|call| call.kind == "create_session")
    {
        assert!(call.outcome.is_ok(), "{call:?}");
    }
    for call in &fast_calls {
        assert!(call.outcome.is_ok(), "{call:?}");
    }
    assert!(
        unrecorded.is_empty(),
        "answered but unrecorded:\n{}",
        unrecorded.join("\n")
    );
    // A run whose plan reads the slow view ends SOURCE_UNAVAILABLE in time.
    let budget = Duration::from_millis(RUN_WALLCLOCK_MS) + MARGIN;
    for call in &runs {
        let run: &v1::RunResponse = call
            .outcome
            .as_ref()
            .unwrap_or_else(|failure| panic!("run failed: {failure:?}"));
        assert_eq!(
            (mode(run), run.stop_reason.as_str()),
            (TerminalMode::SourceUnavailable, "operator_error"),
            "{call:?}"
        );
        assert!(call.elapsed() <= budget, "past {budget:?}: {call:?}");
    }
    mesh.assert_no_panic();
}

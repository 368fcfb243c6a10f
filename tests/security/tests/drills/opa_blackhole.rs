//! Drill: the gateway's remote OPA accepts connections and never answers.
//! Every run must end within its budget with `SOURCE_UNAVAILABLE`, the
//! circuit breaker must turn the timeouts into fast refusals and stop the
//! flood of connections, and readiness must say that OPA is not ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pecr_proto::v1::{self, TerminalMode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::figures::{Figures, ms};
use crate::harness::{DrillMesh, DrillSettings, eventually, policy_bundle_hash, readyz};
use crate::load::{Call, Load, STATUS_QUESTION, median, mode};

const DRILL: &str = "opa_blackhole";
const RUN_CLIENTS: usize = 8;
const OPA_TIMEOUT_MS: u64 = 100;
/// Retries after the first attempt.
const OPA_RETRIES: u64 = 2;
const BREAKER_THRESHOLD: u32 = 4;
const BREAKER_OPEN_MS: u64 = 1_000;
const RUN_WALLCLOCK_MS: u64 = 2_000;
/// What a run may take beyond its wall-clock budget on a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);
/// The load lasts at least this long.
const LOAD_MIN: Duration = Duration::from_secs(4);
const BREAKER_REFUSAL: &str = "policy engine circuit breaker is open";

/// A TCP listener that accepts every connection, never writes a byte and
/// keeps the sockets open; it counts what it accepted.
struct Blackhole {
    url: String,
    accepted: Arc<AtomicUsize>,
    /// Connections the gateway has not closed yet.
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Blackhole {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("blackhole bind: {err}"));
        let url = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|err| panic!("blackhole addr: {err}"))
        );
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let open = Arc::new(AtomicUsize::new(0));
        let still_open = Arc::clone(&open);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                still_open.fetch_add(1, Ordering::SeqCst);
                let gone = Arc::clone(&still_open);
                held.push(tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut sink = [0u8; 4096];
                    while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                    gone.fetch_sub(1, Ordering::SeqCst);
                    // Keep our side open: the blackhole never closes first.
                    std::future::pending::<()>().await;
                }));
            }
        });
        Self {
            url,
            accepted,
            open,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn refused_by_breaker(call: &Call<v1::RunResponse>) -> bool {
    matches!(&call.outcome, Err(failure) if failure.message == BREAKER_REFUSAL)
}

/// An error carrying `SOURCE_UNAVAILABLE` (retryable 503/504), or a run
/// that ended in that mode.
fn source_unavailable(call: &Call<v1::RunResponse>) -> bool {
    match &call.outcome {
        Ok(run) => mode(run) == TerminalMode::SourceUnavailable,
        Err(failure) => failure.is_clean_unavailable(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "security gate drill: run by scripts/security-gate.sh"]
async fn a_remote_opa_that_never_answers_is_refused_fast_and_reported() {
    let opa = Blackhole::start().await;
    let mut mesh = DrillMesh::start(DrillSettings {
        gateway: vec![
            ("PECR_OPA_URL", opa.url.clone()),
            ("PECR_OPA_TIMEOUT_MS", OPA_TIMEOUT_MS.to_string()),
            ("PECR_OPA_RETRY_MAX_ATTEMPTS", OPA_RETRIES.to_string()),
            ("PECR_OPA_RETRY_BASE_BACKOFF_MS", "50".into()),
            (
                "PECR_OPA_CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                BREAKER_THRESHOLD.to_string(),
            ),
            (
                "PECR_OPA_CIRCUIT_BREAKER_OPEN_MS",
                BREAKER_OPEN_MS.to_string(),
            ),
            ("PECR_POLICY_BUNDLE_HASH", policy_bundle_hash()),
        ],
        // The gateway cannot become ready without OPA, nor the controller without it.
        wait_ready: false,
        ..DrillSettings::default()
    })
    .await;

    let accepted_before = opa.accepted();
    let load_started = Instant::now();
    let runs = Load::runs(
        &mesh.controller_client(),
        RUN_CLIENTS,
        STATUS_QUESTION,
        pecr_mesh_tests::budget(10, 1_048_576, RUN_WALLCLOCK_MS, 5, None),
        "opa-blackhole",
    );
    eventually(
        "the breaker trips under load",
        Duration::from_secs(60),
        || {
            let done = load_started.elapsed() >= LOAD_MIN && runs.each(10, refused_by_breaker);
            async move { done.then_some(()) }
        },
    )
    .await;
    let runs = runs.finish().await;
    let load_time = load_started.elapsed();
    let connections = opa.accepted() - accepted_before;

    let first_trip = runs
        .iter()
        .filter(|call| refused_by_breaker(call))
        .map(|call| call.started)
        .min()
        .unwrap_or_else(|| panic!("the breaker never refused a call"));
    let after_trip: Vec<Duration> = runs
        .iter()
        .filter(|call| call.started >= first_trip)
        .map(Call::elapsed)
        .collect();
    let median_after_trip = median(after_trip.clone());
    let slowest = runs.iter().map(Call::elapsed).max().unwrap_or_default();
    let gateway_ready = readyz(mesh.gateway.http_addr).await;
    let controller_ready = readyz(mesh.controller.http_addr).await;

    let mut figures = Figures::new(DRILL);
    figures.tally("runs", &runs);
    figures.set("load_ms", ms(load_time));
    figures.set("calls_after_first_breaker_trip", after_trip.len());
    figures.set("median_after_first_trip_ms", ms(median_after_trip));
    figures.set(
        "median_before_first_trip_ms",
        ms(median(
            runs.iter()
                .filter(|call| call.started < first_trip)
                .map(Call::elapsed)
                .collect(),
        )),
    );
    figures.set("slowest_run_ms", ms(slowest));
    figures.set("opa_connections_during_load", connections);
    figures.set("opa_timeout_ms", OPA_TIMEOUT_MS);
    figures.set("opa_connections_left_open", opa.open.load(Ordering::SeqCst));
    figures.set("opa_attempts_per_decision", OPA_RETRIES + 1);
    figures.set(
        "gateway_readyz",
        gateway_ready.as_ref().map_or(
            json!(null),
            |(status, body)| json!({"status": status, "body": body}),
        ),
    );
    figures.write();

    // Every run answers within its budget, with SOURCE_UNAVAILABLE.
    let budget = Duration::from_millis(RUN_WALLCLOCK_MS) + MARGIN;
    for call in &runs {
        assert!(source_unavailable(call), "{call:?}");
        assert!(call.elapsed() <= budget, "past {budget:?}: {call:?}");
    }
    // Once the breaker is open, refusals are fast: the median call costs
    // less than one OPA timeout (the timeouts and retries cost
    // attempts × timeout plus backoff).
    assert!(
        median_after_trip < Duration::from_millis(OPA_TIMEOUT_MS),
        "median {median_after_trip:?} after the first trip"
    );
    // And the breaker stops the flood: far fewer connections than calls.
    assert!(
        connections * 4 <= runs.len(),
        "{connections} connections to OPA for {} runs",
        runs.len()
    );
    // Timed-out attempts are abandoned, not left hanging: the gateway closes
    // its side of every connection the blackhole keeps open (readiness may
    // have one in flight).
    eventually(
        "the gateway closes its OPA connections",
        Duration::from_secs(10),
        || {
            let open = opa.open.load(Ordering::SeqCst);
            async move { (open == 0).then_some(()) }
        },
    )
    .await;
    // Readiness: the gateway checks `GET /health` on OPA within the OPA
    // timeout, so it reports opa not ready (503); the controller follows
    // the gateway's gRPC health.
    let (status, body) = gateway_ready.unwrap_or_else(|| panic!("gateway /readyz did not answer"));
    assert_eq!(
        (status, &body["status"], &body["checks"]),
        (
            503,
            &json!("not_ready"),
            &json!({"ledger": true, "opa": false, "postgres": true})
        )
    );
    let (status, body) =
        controller_ready.unwrap_or_else(|| panic!("controller /readyz did not answer"));
    assert_eq!((status, &body["checks"]["gateway"]), (503, &json!(false)));
    mesh.assert_no_panic();
}

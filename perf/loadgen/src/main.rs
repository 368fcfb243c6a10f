//! `pecr-loadgen`: a closed-loop load generator for the gateway's
//! `CallOperator` over gRPC, for loopback targets only.
//!
//! Each client opens its own session (calls on one session are serialised by
//! the gateway's per-session lock), then calls the operator back to back with
//! a fixed params body, rotating to a fresh session before the session's
//! operator-call budget runs out. Latencies of the calls that start after the
//! warm-up go into an HDR histogram (µs, 3 significant digits); the run stops
//! by itself after warm-up + duration, or after `--max-requests` calls,
//! whichever comes first.
//!
//! By default the loop is closed (no coordinated-omission correction): a slow
//! call delays that client's next call, so the figures are service latency
//! under a fixed concurrency. With `--rate R` the clients instead send on a
//! fixed schedule (R calls/s in total, spread evenly over the clients) and
//! each latency is measured from the call's scheduled start, so queueing
//! behind a slow call is counted (as wrk2 does).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::builder::RangedU64ValueParser;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use hdrhistogram::Histogram;
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use serde_json::{Value, json};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

const FETCH_ROWS_PARAMS: &str = r#"{"view_id":"safe_customer_view_public","fields":["status","plan_tier"],"filter_spec":{"customer_id":"cust_public_1"}}"#;
const SEARCH_PARAMS: &str = r#"{"query":"fixture","limit":10}"#;

/// Contract ceilings of a session budget (libs/contracts/src/budget.rs).
const MAX_SESSION_CALLS: u32 = 10_000;
const MAX_SESSION_BYTES: u64 = 64 * 1024 * 1024;

/// Histogram range: 1 µs .. 60 s.
const HIST_MAX_US: u64 = 60_000_000;

/// A client that sees this many failures in a row stops (the run is bounded
/// anyway; this keeps a broken target from being hammered with errors).
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

/// Closed-loop gRPC load on the PECR gateway's CallOperator (loopback only).
#[derive(Debug, Clone, Parser)]
#[command(name = "pecr-loadgen")]
struct Args {
    /// Gateway gRPC URL, loopback only.
    #[arg(long, default_value = "http://127.0.0.1:50051", value_parser = loopback_url)]
    gateway: String,
    /// fetch_rows | search | any operator.
    #[arg(long, default_value = "fetch_rows")]
    op: String,
    /// Params body (default: the fixed body for fetch_rows / search).
    #[arg(long, default_value = "", hide_default_value = true)]
    params: String,
    /// Concurrent clients, each with its own session(s).
    #[arg(long, default_value = "8", value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    clients: usize,
    /// Measured time, e.g. 20s, 500ms, 1m.
    #[arg(long, default_value = "20s", value_parser = positive_duration)]
    duration: Duration,
    /// Unmeasured time before it.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Hard cap on calls (warm-up included).
    #[arg(long, default_value = "2000000", value_parser = count)]
    max_requests: u64,
    /// Open loop: calls/s in total on a fixed schedule, latency measured from
    /// the scheduled start (default: closed loop).
    #[arg(long, value_parser = rate)]
    rate: Option<f64>,
    /// x-pecr-principal-id.
    #[arg(long, default_value = "dev")]
    principal: String,
    /// Operator-call budget per session.
    #[arg(long, default_value_t = MAX_SESSION_CALLS,
          value_parser = RangedU64ValueParser::<u32>::new().range(1..=u64::from(MAX_SESSION_CALLS)))]
    session_calls: u32,
    /// Byte budget per session.
    #[arg(long, default_value_t = MAX_SESSION_BYTES,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=MAX_SESSION_BYTES))]
    session_bytes: u64,
    /// Per-call deadline.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// One HTTP/2 connection for all clients (default: one per client).
    #[arg(long)]
    shared_channel: bool,
    /// Load generator runtime threads (1 = current-thread).
    #[arg(long, default_value = "1", value_parser = RangedU64ValueParser::<usize>::new().range(1..=64))]
    threads: usize,
    /// p99 target to report against (reported, never asserted).
    #[arg(long, default_value = "2")]
    target_p99_ms: f64,
    /// Exit 1 when failed/total calls exceeds this.
    #[arg(long, default_value = "0.01")]
    max_error_rate: f64,
    /// Free text copied into the JSON report.
    #[arg(long)]
    label: Option<String>,
    /// Print the JSON report instead of the text summary.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    out: Option<String>,
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(index) => raw.split_at(index),
        None => (raw, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {raw:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit in {raw:?} (use ms, s or m)")),
    };
    if !(0.0..=3600.0).contains(&seconds) {
        return Err(format!("duration {raw:?} out of range (0..1h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn positive_duration(raw: &str) -> Result<Duration, String> {
    let duration = parse_duration(raw)?;
    if duration.is_zero() {
        return Err("must be > 0".to_owned());
    }
    Ok(duration)
}

/// A count; `_` may group digits (2_000_000).
fn count(raw: &str) -> Result<u64, String> {
    raw.trim()
        .replace('_', "")
        .parse::<u64>()
        .map_err(|_| format!("not a number: {raw}"))
}

fn rate(raw: &str) -> Result<f64, String> {
    let rate: f64 = raw.parse().map_err(|_| "not a number".to_owned())?;
    if !(rate > 0.0 && rate <= 1_000_000.0) {
        return Err("must be in (0, 1000000]".to_owned());
    }
    Ok(rate)
}

fn loopback_url(raw: &str) -> Result<String, String> {
    check_loopback(raw)?;
    Ok(raw.to_owned())
}

/// Parses the command line (without the program name) and fills in the
/// params of the two built-in operators.
fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, clap::Error> {
    let mut args = Args::try_parse_from(std::iter::once("pecr-loadgen".to_owned()).chain(argv))?;
    let invalid = |message: String| Args::command().error(ErrorKind::ValueValidation, message);
    if args.params.is_empty() {
        args.params = match args.op.as_str() {
            "fetch_rows" => FETCH_ROWS_PARAMS.to_owned(),
            "search" => SEARCH_PARAMS.to_owned(),
            other => return Err(invalid(format!("--params is required for op {other:?}"))),
        };
    }
    serde_json::from_str::<Value>(&args.params)
        .map_err(|err| invalid(format!("--params is not JSON: {err}")))?;
    Ok(args)
}

/// Only loopback targets: this tool must never load anything off the machine.
fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--gateway must be an http:// URL, got {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "--gateway host {host:?} is not a loopback address; pecr-loadgen only targets 127.0.0.0/8, ::1 or localhost"
        ))
    }
}

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts.
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).unwrap()
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(HIST_MAX_US);
    histogram.saturating_record(micros.clamp(1, HIST_MAX_US));
}

fn ascii(value: &str, what: &str) -> Result<AsciiMetadataValue, String> {
    MetadataValue::try_from(value).map_err(|_| format!("{what} is not a valid header value"))
}

/// One open session and how many calls it has left.
struct Session {
    id: String,
    token: AsciiMetadataValue,
    calls_left: u32,
}

/// What every client shares.
struct Shared {
    args: Args,
    principal: AsciiMetadataValue,
    issued: AtomicU64,
    stop: AtomicBool,
}

#[derive(Default)]
struct ClientReport {
    measured: Option<Histogram<u64>>,
    warmup_ok: u64,
    errors: BTreeMap<String, u64>,
    first_error: BTreeMap<String, String>,
    sessions_opened: u64,
    session_create: Option<Histogram<u64>>,
    budget_rotations: u64,
    last_completion: Option<Instant>,
    gave_up: bool,
}

async fn open_session(
    client: &mut GatewayServiceClient<Channel>,
    shared: &Shared,
) -> Result<Session, tonic::Status> {
    let mut request = tonic::Request::new(v1::CreateSessionRequest {
        budget: Some(v1::Budget {
            max_operator_calls: shared.args.session_calls,
            max_bytes: shared.args.session_bytes,
            max_wallclock_ms: 300_000,
            max_recursion_depth: 3,
            max_parallelism: None,
        }),
        as_of_time: None,
        calls: Vec::new(),
    });
    request.set_timeout(shared.args.timeout);
    request
        .metadata_mut()
        .insert("x-pecr-principal-id", shared.principal.clone());
    let response = client.create_session(request).await?;
    let token = response
        .metadata()
        .get("x-pecr-session-token")
        .cloned()
        .ok_or_else(|| tonic::Status::internal("CreateSession returned no x-pecr-session-token"))?;
    Ok(Session {
        id: response.into_inner().session_id,
        token,
        calls_left: shared.args.session_calls,
    })
}

async fn call_operator(
    client: &mut GatewayServiceClient<Channel>,
    shared: &Shared,
    session: &Session,
    request_id: Option<AsciiMetadataValue>,
) -> Result<v1::CallOperatorResponse, tonic::Status> {
    let mut request = tonic::Request::new(v1::CallOperatorRequest {
        op_name: shared.args.op.clone(),
        session_id: session.id.clone(),
        params: shared.args.params.clone(),
    });
    request.set_timeout(shared.args.timeout);
    let metadata = request.metadata_mut();
    metadata.insert("x-pecr-principal-id", shared.principal.clone());
    metadata.insert("x-pecr-session-token", session.token.clone());
    if let Some(request_id) = request_id {
        metadata.insert("x-pecr-request-id", request_id);
    }
    client
        .call_operator(request)
        .await
        .map(tonic::Response::into_inner)
}

fn is_budget_exceeded(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::ResourceExhausted && status.message().contains("budget")
}

async fn run_client(
    index: usize,
    channel: Channel,
    shared: Arc<Shared>,
    warmup_end: Instant,
    end: Instant,
) -> ClientReport {
    let mut client = GatewayServiceClient::new(channel);
    let mut report = ClientReport {
        measured: Some(new_histogram()),
        session_create: Some(new_histogram()),
        ..ClientReport::default()
    };
    let mut session: Option<Session> = None;
    let mut consecutive_errors = 0u32;
    let mut sequence = 0u64;
    // Open loop: this client's share of --rate, on a fixed schedule staggered
    // across clients so they do not fire in bursts.
    let interval = shared
        .args
        .rate
        .map(|rate| Duration::from_secs_f64(shared.args.clients as f64 / rate));
    let mut next_send = interval
        .map(|every| Instant::now() + every.mul_f64(index as f64 / shared.args.clients as f64));
    let note_error = |report: &mut ClientReport, what: String, status: &tonic::Status| {
        *report.errors.entry(what.clone()).or_default() += 1;
        report
            .first_error
            .entry(what)
            .or_insert_with(|| status.message().chars().take(300).collect());
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= end {
            break;
        }
        if shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.args.max_requests {
            break;
        }
        if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
            report.gave_up = true;
            break;
        }
        if session.as_ref().is_none_or(|s| s.calls_left == 0) {
            let started = Instant::now();
            match open_session(&mut client, &shared).await {
                Ok(opened) => {
                    if let Some(histogram) = report.session_create.as_mut() {
                        record(histogram, started.elapsed());
                    }
                    report.sessions_opened += 1;
                    session = Some(opened);
                }
                Err(status) => {
                    note_error(
                        &mut report,
                        format!("CreateSession:{:?}", status.code()),
                        &status,
                    );
                    consecutive_errors += 1;
                    continue;
                }
            }
        }
        let Some(current) = session.as_mut() else {
            continue;
        };
        sequence += 1;
        let request_id = MetadataValue::try_from(format!("loadgen-{index}-{sequence}")).ok();
        let started = match (next_send.as_mut(), interval) {
            (Some(scheduled), Some(every)) => {
                let at = *scheduled;
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                *scheduled += every;
                at
            }
            _ => Instant::now(),
        };
        let outcome = call_operator(&mut client, &shared, current, request_id).await;
        let finished = Instant::now();
        current.calls_left = current.calls_left.saturating_sub(1);
        match outcome {
            Ok(_) => {
                consecutive_errors = 0;
                if started >= warmup_end {
                    if let Some(histogram) = report.measured.as_mut() {
                        record(histogram, finished - started);
                    }
                    report.last_completion = Some(finished);
                } else {
                    report.warmup_ok += 1;
                }
            }
            Err(status) if is_budget_exceeded(&status) => {
                // The session's byte budget ran out first: rotate, not an error.
                report.budget_rotations += 1;
                session = None;
            }
            Err(status) => {
                consecutive_errors += 1;
                if started >= warmup_end {
                    note_error(
                        &mut report,
                        format!("CallOperator:{:?}", status.code()),
                        &status,
                    );
                    report.last_completion = Some(finished);
                } else {
                    note_error(
                        &mut report,
                        format!("warmup:CallOperator:{:?}", status.code()),
                        &status,
                    );
                }
            }
        }
    }
    report
}

async fn connect(url: &str, timeout: Duration) -> Result<Channel, String> {
    Endpoint::from_shared(url.to_owned())
        .map_err(|err| format!("invalid --gateway {url}: {err}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|err| format!("cannot connect to {url}: {err}"))
}

fn ms(micros: u64) -> f64 {
    (micros as f64) / 1000.0
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn latency_json(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return Value::Null;
    }
    json!({
        "min": round3(ms(histogram.min())),
        "p50": round3(ms(histogram.value_at_quantile(0.50))),
        "p90": round3(ms(histogram.value_at_quantile(0.90))),
        "p95": round3(ms(histogram.value_at_quantile(0.95))),
        "p99": round3(ms(histogram.value_at_quantile(0.99))),
        "p999": round3(ms(histogram.value_at_quantile(0.999))),
        "max": round3(ms(histogram.max())),
        "mean": round3(histogram.mean() / 1000.0),
        "stdev": round3(histogram.stdev() / 1000.0),
    })
}

async fn run(args: Args) -> Result<(Value, bool), String> {
    let principal = ascii(&args.principal, "--principal")?;

    // Preflight: one session and one call, so a misconfigured gateway (rate
    // limits, missing fixture, denied policy) fails loudly before the run.
    let preflight_channel = connect(&args.gateway, args.timeout).await?;
    let preflight_shared = Shared {
        args: args.clone(),
        principal: principal.clone(),
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let mut preflight = GatewayServiceClient::new(preflight_channel.clone());
    let session = open_session(&mut preflight, &preflight_shared)
        .await
        .map_err(|status| {
            format!(
                "preflight CreateSession failed: {:?}: {}",
                status.code(),
                status.message()
            )
        })?;
    let response = call_operator(&mut preflight, &preflight_shared, &session, None)
        .await
        .map_err(|status| {
            let hint = if status.code() == tonic::Code::ResourceExhausted {
                " (rate limited? start the gateway with PECR_RATE_LIMIT_OPERATORS_PER_WINDOW=0 and PECR_RATE_LIMIT_SESSIONS_PER_WINDOW=0)"
            } else {
                ""
            };
            format!("preflight CallOperator({}) failed: {:?}: {}{hint}", args.op, status.code(), status.message())
        })?;
    let result_bytes = response.result.len();
    let result: Value = serde_json::from_str(&response.result).unwrap_or(Value::Null);
    let result_items = match &result {
        Value::Array(items) => items.len(),
        Value::Object(map) => map
            .get("refs")
            .and_then(Value::as_array)
            .map_or(1, Vec::len),
        _ => 0,
    };
    if result_items == 0 {
        eprintln!(
            "warning: preflight {} returned an empty result ({}); the run measures an empty answer",
            args.op, response.result
        );
    }

    let channels = if args.shared_channel {
        vec![preflight_channel; args.clients]
    } else {
        let mut channels = Vec::with_capacity(args.clients);
        for _ in 0..args.clients {
            channels.push(connect(&args.gateway, args.timeout).await?);
        }
        channels
    };

    let shared = Arc::new(Shared {
        args: args.clone(),
        principal,
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: stopping the clients");
                shared.stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t0 = Instant::now();
    let warmup_end = t0 + args.warmup;
    let end = warmup_end + args.duration;
    let mut handles = Vec::with_capacity(args.clients);
    for (index, channel) in channels.into_iter().enumerate() {
        handles.push(tokio::spawn(run_client(
            index,
            channel,
            Arc::clone(&shared),
            warmup_end,
            end,
        )));
    }
    let mut measured = new_histogram();
    let mut session_create = new_histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error: BTreeMap<String, String> = BTreeMap::new();
    let (mut sessions_opened, mut budget_rotations, mut warmup_ok, mut gave_up) = (0, 0, 0, 0);
    let mut last_completion = warmup_end;
    for handle in handles {
        let report = handle
            .await
            .map_err(|err| format!("client task failed: {err}"))?;
        if let Some(histogram) = &report.measured {
            measured
                .add(histogram)
                .map_err(|err| format!("merge histograms: {err}"))?;
        }
        if let Some(histogram) = &report.session_create {
            session_create
                .add(histogram)
                .map_err(|err| format!("merge histograms: {err}"))?;
        }
        for (key, count) in report.errors {
            *errors.entry(key).or_default() += count;
        }
        for (key, message) in report.first_error {
            first_error.entry(key).or_insert(message);
        }
        sessions_opened += report.sessions_opened;
        budget_rotations += report.budget_rotations;
        warmup_ok += report.warmup_ok;
        gave_up += u64::from(report.gave_up);
        if let Some(done) = report.last_completion {
            last_completion = last_completion.max(done);
        }
    }
    let measured_secs = last_completion
        .saturating_duration_since(warmup_end)
        .as_secs_f64()
        .max(1e-9);
    let ok = measured.len();
    let failed: u64 = errors
        .iter()
        .filter(|(key, _)| !key.starts_with("warmup:"))
        .map(|(_, count)| *count)
        .sum();
    let error_rate = if ok + failed == 0 {
        1.0
    } else {
        failed as f64 / (ok + failed) as f64
    };
    let p99_ms = (!measured.is_empty()).then(|| ms(measured.value_at_quantile(0.99)));
    let passed = ok > 0 && error_rate <= args.max_error_rate;
    let params: Value = serde_json::from_str(&args.params).unwrap_or(Value::Null);
    let report = json!({
        "tool": "pecr-loadgen",
        "version": env!("CARGO_PKG_VERSION"),
        "label": args.label,
        "started_at_unix": started_at,
        "gateway": args.gateway,
        "op": args.op,
        "params": params,
        "principal": args.principal,
        "clients": args.clients,
        "mode": if args.rate.is_some() { "open-loop" } else { "closed-loop" },
        "target_rate_rps": args.rate,
        "threads": args.threads,
        "channel": if args.shared_channel { "shared" } else { "per-client" },
        "host_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": args.duration.as_secs_f64(),
        "measured_s": round3(measured_secs),
        "requests": ok,
        "warmup_requests": warmup_ok,
        "errors": failed,
        "error_rate": error_rate,
        "error_codes": errors,
        "first_error_messages": first_error,
        "clients_gave_up": gave_up,
        "throughput_rps": round3(ok as f64 / measured_secs),
        "latency_ms": latency_json(&measured),
        "sessions_opened": sessions_opened,
        "session_budget_rotations": budget_rotations,
        "session_create_ms": latency_json(&session_create),
        "preflight_result_bytes": result_bytes,
        "preflight_result_items": result_items,
        "target": {
            "p99_ms": args.target_p99_ms,
            "met": p99_ms.is_some_and(|p99| p99 <= args.target_p99_ms),
        },
    });
    Ok((report, passed))
}

fn text_summary(report: &Value) -> String {
    let num = |path: &[&str]| -> String {
        let mut value = report;
        for key in path {
            value = &value[*key];
        }
        match value {
            Value::Number(n) => n.to_string(),
            Value::Null => "-".to_owned(),
            other => other.to_string(),
        }
    };
    let mut out = String::new();
    out.push_str(&format!(
        "pecr-loadgen  op={}  clients={}  {}{}  channel={}  warmup={}s  duration={}s  gateway={}\n",
        report["op"].as_str().unwrap_or_default(),
        num(&["clients"]),
        report["mode"].as_str().unwrap_or_default(),
        report["target_rate_rps"]
            .as_f64()
            .map(|rate| format!(" at {rate} calls/s"))
            .unwrap_or_default(),
        report["channel"].as_str().unwrap_or_default(),
        num(&["warmup_s"]),
        num(&["duration_s"]),
        report["gateway"].as_str().unwrap_or_default(),
    ));
    out.push_str(&format!(
        "  requests   {} ok, {} failed (rate {}), measured over {} s\n",
        num(&["requests"]),
        num(&["errors"]),
        num(&["error_rate"]),
        num(&["measured_s"]),
    ));
    out.push_str(&format!(
        "  throughput {} calls/s\n",
        num(&["throughput_rps"])
    ));
    out.push_str(&format!(
        "  latency ms p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  max {}  (min {}, mean {})\n",
        num(&["latency_ms", "p50"]),
        num(&["latency_ms", "p90"]),
        num(&["latency_ms", "p95"]),
        num(&["latency_ms", "p99"]),
        num(&["latency_ms", "p999"]),
        num(&["latency_ms", "max"]),
        num(&["latency_ms", "min"]),
        num(&["latency_ms", "mean"]),
    ));
    out.push_str(&format!(
        "  sessions   {} opened (CreateSession p50 {} ms), {} byte-budget rotations\n",
        num(&["sessions_opened"]),
        num(&["session_create_ms", "p50"]),
        num(&["session_budget_rotations"]),
    ));
    out.push_str(&format!(
        "  target     p99 <= {} ms: {}\n",
        num(&["target", "p99_ms"]),
        if report["target"]["met"].as_bool() == Some(true) {
            "met"
        } else {
            "NOT met"
        }
    ));
    if let Some(codes) = report["error_codes"].as_object().filter(|c| !c.is_empty()) {
        for (code, count) in codes {
            let message = report["first_error_messages"][code]
                .as_str()
                .unwrap_or_default();
            out.push_str(&format!("  error      {code} x{count}: {message}\n"));
        }
    }
    out
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        // Help and version print and exit 0; a bad argument exits 2.
        Err(err) => err.exit(),
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let json_mode = args.json;
    let out = args.out.clone();
    match runtime.block_on(run(args)) {
        Ok((report, passed)) => {
            let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
            if let Some(path) = out
                && let Err(err) = std::fs::write(&path, format!("{pretty}\n"))
            {
                eprintln!("error: cannot write {path}: {err}");
                return ExitCode::FAILURE;
            }
            if json_mode {
                println!("{pretty}");
            } else {
                print!("{}", text_summary(&report));
            }
            if passed {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: no successful calls, or the error rate exceeds --max-error-rate");
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn loopback_only() {
        assert!(check_loopback("http://127.0.0.1:50051").is_ok());
        assert!(check_loopback("http://127.5.0.1:1").is_ok());
        assert!(check_loopback("http://localhost:50051").is_ok());
        assert!(check_loopback("http://[::1]:50051").is_ok());
        assert!(check_loopback("http://10.0.0.1:50051").is_err());
        assert!(check_loopback("http://example.com:50051").is_err());
        assert!(check_loopback("https://127.0.0.1:50051").is_err());
    }

    #[test]
    fn default_params_per_op() {
        let parse = |argv: &[&str]| parse_args(argv.iter().map(|s| (*s).to_owned()));
        let args = parse(&["--op", "search"]).ok().map(|a| a.params);
        assert_eq!(args.as_deref(), Some(SEARCH_PARAMS));
        let args = parse(&["--op=fetch_rows", "--clients=1"]).ok();
        assert_eq!(args.map(|a| a.clients), Some(1));
        assert!(parse(&["--op", "diff"]).is_err());
        assert!(parse(&["--gateway", "http://192.168.1.2:50051"]).is_err());
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--duration", "0s"]).is_err());
        assert!(parse(&["--rate", "-1"]).is_err());
        assert!(parse(&["--session-calls", "10001"]).is_err());
        assert_eq!(
            parse(&["--max-requests", "2_000"])
                .ok()
                .map(|a| a.max_requests),
            Some(2000)
        );
    }
}

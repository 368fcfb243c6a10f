//! Load for the drills: concurrent clients that keep calling until told to
//! stop, each call recorded with its request id, its start and end, and
//! what it returned or how it failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pecr_errors::PecrError;
use pecr_proto::v1::{
    self, TerminalMode, controller_service_client::ControllerServiceClient,
    gateway_service_client::GatewayServiceClient,
};
use serde_json::Value;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The client-side deadline of every call; the client gives up a little
/// later still, so a server that never answers shows up as a hang.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);
const HANG_LIMIT: Duration = Duration::from_secs(40);
/// A client that was refused waits this long before its next call, so an
/// outage is a steady stream of calls rather than a hot loop.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(25);
/// Operator calls per session before a client opens a new one.
const CALLS_PER_SESSION: u32 = 100;

/// How a call failed, as its client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The `ERR_*` code, or `grpc <code>` when the status carried no PECR
    /// error, or `HANG` when nothing answered within [`HANG_LIMIT`].
    pub code: String,
    /// 0 unless a PECR error.
    pub http_status: u16,
    pub hint: TerminalMode,
    pub retryable: bool,
    pub message: String,
}

impl Failure {
    pub fn of(status: &tonic::Status) -> Self {
        match PecrError::from_status(status) {
            Some(error) => Self {
                code: error.code.as_str().to_owned(),
                http_status: error.http_status,
                hint: error.hint,
                retryable: error.retryable,
                message: error.message,
            },
            None => Self {
                code: format!("grpc {:?}", status.code()),
                http_status: 0,
                hint: TerminalMode::Unspecified,
                retryable: false,
                message: status.message().to_owned(),
            },
        }
    }

    fn hang() -> Self {
        Self {
            code: "HANG".into(),
            http_status: 0,
            hint: TerminalMode::Unspecified,
            retryable: false,
            message: format!("no answer within {HANG_LIMIT:?}"),
        }
    }

    /// `503 ERR_LEDGER_UNAVAILABLE`, the key figures count failures by.
    pub fn label(&self) -> String {
        format!("{} {}", self.http_status, self.code)
    }

    /// A retryable 503/504 PECR error that tells the caller its source was
    /// unavailable: what every failure caused by a dependency must look like.
    pub fn is_clean_unavailable(&self) -> bool {
        matches!(self.http_status, 503 | 504)
            && self.hint == TerminalMode::SourceUnavailable
            && self.retryable
    }
}

/// One call of one client.
#[derive(Debug, Clone)]
pub struct Call<T> {
    pub task: usize,
    pub kind: &'static str,
    pub request_id: String,
    pub started: Instant,
    pub ended: Instant,
    pub outcome: Result<T, Failure>,
}

impl<T> Call<T> {
    pub fn elapsed(&self) -> Duration {
        self.ended.duration_since(self.started)
    }
}

/// An operator call or run that was answered (opening a session is not an answer).
pub fn answered<T>(call: &Call<T>) -> bool {
    call.outcome.is_ok() && call.kind != "create_session"
}

/// The question every drill run asks: its plan reads the public view.
pub const STATUS_QUESTION: &str = "What is the customer status and plan tier?";

/// What a successful gateway call returned that the ledger must account for.
#[derive(Debug, Clone)]
pub struct Granted {
    pub session_id: String,
    /// Evidence unit ids in the operator result (none for a session).
    pub evidence_ids: Vec<String>,
}

/// The calls recorded so far, shared by the clients and the drill.
pub struct Log<T>(Arc<Mutex<Vec<Call<T>>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Log<T> {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Call<T>>> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn push(&self, call: Call<T>) {
        self.lock().push(call);
    }

    /// True when each of the first `tasks` clients has at least `at_least`
    /// calls satisfying `predicate`.
    pub fn each_task(
        &self,
        tasks: usize,
        at_least: usize,
        predicate: impl Fn(&Call<T>) -> bool,
    ) -> bool {
        let calls = self.lock();
        (0..tasks).all(|task| {
            calls
                .iter()
                .filter(|call| call.task == task && predicate(call))
                .count()
                >= at_least
        })
    }
}

/// Clients running until [`Load::finish`].
pub struct Load<T> {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    pub log: Log<T>,
    pub tasks: usize,
}

impl<T: Send + 'static> Load<T> {
    fn new() -> Self {
        Self {
            stop: Arc::new(AtomicBool::new(false)),
            handles: Vec::new(),
            log: Log::new(),
            tasks: 0,
        }
    }

    /// True when each client has at least `at_least` calls satisfying `predicate`.
    pub fn each(&self, at_least: usize, predicate: impl Fn(&Call<T>) -> bool) -> bool {
        self.log.each_task(self.tasks, at_least, predicate)
    }

    /// Stops the clients, waits for their last calls and returns every call.
    pub async fn finish(self) -> Vec<Call<T>> {
        self.stop.store(true, Ordering::SeqCst);
        for handle in self.handles {
            tokio::time::timeout(HANG_LIMIT + Duration::from_secs(10), handle)
                .await
                .unwrap_or_else(|_| panic!("a client never finished its last call"))
                .unwrap_or_else(|err| panic!("a client task failed: {err}"));
        }
        std::mem::take(&mut *self.log.lock())
    }
}

/// An operator call of the load: its name, params, and the kind its calls are recorded as.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub name: &'static str,
    pub params: &'static str,
    pub kind: &'static str,
}

pub const FETCH_PUBLIC: Op = Op {
    name: "fetch_rows",
    params: r#"{"view_id":"safe_customer_view_public","fields":["status","plan_tier"],"filter_spec":{"customer_id":"cust_public_1"}}"#,
    kind: "fetch_rows",
};
pub const FETCH_SLOW: Op = Op {
    name: "fetch_rows",
    params: r#"{"view_id":"safe_customer_view_public_slow","fields":["status"],"filter_spec":{"customer_id":"cust_public_1"}}"#,
    kind: "fetch_rows_slow",
};
pub const SEARCH: Op = Op {
    name: "search",
    params: r#"{"query":"fixture document","limit":5}"#,
    kind: "search",
};

fn metadata(request: &mut tonic::metadata::MetadataMap, key: &'static str, value: &str) {
    request.insert(
        key,
        value
            .parse()
            .unwrap_or_else(|err| panic!("{key} {value:?}: {err}")),
    );
}

/// A request as principal `dev` with a request id and the call deadline.
fn as_dev<T>(body: T, request_id: &str, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.set_timeout(CALL_DEADLINE);
    let map = request.metadata_mut();
    metadata(map, "x-pecr-principal-id", "dev");
    metadata(map, "x-pecr-request-id", request_id);
    if let Some(token) = token {
        metadata(map, "x-pecr-session-token", token);
    }
    request
}

/// Runs `call`, turning an error status into a [`Failure`] and no answer
/// at all into a hang.
async fn timed<R>(
    call: impl std::future::Future<Output = Result<R, tonic::Status>>,
) -> (Instant, Instant, Result<R, Failure>) {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(HANG_LIMIT, call).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(status)) => Err(Failure::of(&status)),
        Err(_) => Err(Failure::hang()),
    };
    (started, Instant::now(), outcome)
}

/// A session budget no load of a drill exhausts.
fn session_budget() -> v1::Budget {
    pecr_mesh_tests::budget(1_000, 16 * 1024 * 1024, 300_000, 10, None)
}

/// Evidence unit ids in an operator result (`fetch_rows` returns an array of units).
fn evidence_ids(result: &str) -> Vec<String> {
    serde_json::from_str::<Value>(result)
        .ok()
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|unit| unit["evidence_unit_id"].as_str().map(str::to_owned))
        .collect()
}

impl Load<Granted> {
    /// `tasks` clients of the gateway's gRPC API, each with sessions of its
    /// own, cycling through `ops`. Request ids start with `prefix`.
    pub fn operators(
        client: &GatewayServiceClient<Channel>,
        tasks: usize,
        ops: &'static [Op],
        prefix: &'static str,
    ) -> Self {
        let mut load = Self::new();
        for task in 0..tasks {
            let worker = OperatorClient {
                client: client.clone(),
                task,
                ops,
                prefix,
                log: load.log.clone(),
                stop: Arc::clone(&load.stop),
            };
            load.handles.push(tokio::spawn(worker.run()));
        }
        load.tasks = tasks;
        load
    }
}

struct OperatorClient {
    client: GatewayServiceClient<Channel>,
    task: usize,
    ops: &'static [Op],
    prefix: &'static str,
    log: Log<Granted>,
    stop: Arc<AtomicBool>,
}

impl OperatorClient {
    async fn run(mut self) {
        let mut session: Option<(String, String)> = None;
        let mut calls_in_session = 0;
        let mut sequence = 0usize;
        while !self.stop.load(Ordering::SeqCst) {
            sequence += 1;
            let request_id = format!("{}-t{}-c{sequence}", self.prefix, self.task);
            let ok = match &session {
                Some((session_id, token)) if calls_in_session < CALLS_PER_SESSION => {
                    calls_in_session += 1;
                    let op = self.ops[sequence % self.ops.len()];
                    self.call(op, session_id.clone(), token.clone(), request_id)
                        .await
                }
                _ => match self.create_session(request_id).await {
                    Some(created) => {
                        session = Some(created);
                        calls_in_session = 0;
                        true
                    }
                    None => false,
                },
            };
            if !ok {
                tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
            }
        }
    }

    async fn create_session(&mut self, request_id: String) -> Option<(String, String)> {
        let request = as_dev(
            v1::CreateSessionRequest {
                budget: Some(session_budget()),
                as_of_time: None,
                calls: Vec::new(),
            },
            &request_id,
            None,
        );
        let (started, ended, outcome) = timed(self.client.create_session(request)).await;
        let outcome = outcome.map(|reply| {
            let token = reply
                .metadata()
                .get("x-pecr-session-token")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (reply.into_inner().session_id, token)
        });
        let created = outcome.as_ref().ok().cloned();
        self.log.push(Call {
            task: self.task,
            kind: "create_session",
            request_id,
            started,
            ended,
            outcome: outcome.map(|(session_id, _)| Granted {
                session_id,
                evidence_ids: Vec::new(),
            }),
        });
        created
    }

    async fn call(
        &mut self,
        op: Op,
        session_id: String,
        token: String,
        request_id: String,
    ) -> bool {
        let request = as_dev(
            v1::CallOperatorRequest {
                op_name: op.name.into(),
                session_id: session_id.clone(),
                params: op.params.into(),
            },
            &request_id,
            Some(&token),
        );
        let (started, ended, outcome) = timed(self.client.call_operator(request)).await;
        let outcome = outcome.map(|reply| Granted {
            session_id,
            evidence_ids: evidence_ids(&reply.into_inner().result),
        });
        let ok = outcome.is_ok();
        self.log.push(Call {
            task: self.task,
            kind: op.kind,
            request_id,
            started,
            ended,
            outcome,
        });
        ok
    }
}

impl Load<v1::RunResponse> {
    /// `tasks` clients calling `ControllerService/Run` as `dev` with `query`
    /// and `budget`, one run after the other.
    pub fn runs(
        client: &ControllerServiceClient<Channel>,
        tasks: usize,
        query: &'static str,
        budget: v1::Budget,
        prefix: &'static str,
    ) -> Self {
        let mut load = Self::new();
        for task in 0..tasks {
            let (mut client, log, stop) =
                (client.clone(), load.log.clone(), Arc::clone(&load.stop));
            load.handles.push(tokio::spawn(async move {
                let mut sequence = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    sequence += 1;
                    let request_id = format!("{prefix}-t{task}-r{sequence}");
                    let request = as_dev(
                        v1::RunRequest {
                            query: query.into(),
                            budget: Some(budget),
                        },
                        &request_id,
                        None,
                    );
                    let (started, ended, outcome) = timed(client.run(request)).await;
                    let outcome = outcome.map(tonic::Response::into_inner);
                    let failed = outcome.is_err();
                    log.push(Call {
                        task,
                        kind: "run",
                        request_id,
                        started,
                        ended,
                        outcome,
                    });
                    if failed {
                        tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
                    }
                }
            }));
        }
        load.tasks = tasks;
        load
    }
}

/// The run's terminal mode.
pub fn mode(response: &v1::RunResponse) -> TerminalMode {
    TerminalMode::try_from(response.terminal_mode).unwrap_or(TerminalMode::Unspecified)
}

/// The median of `values` (0 when empty).
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

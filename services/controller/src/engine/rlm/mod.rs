//! The RLM engine (spec 30 §10): a Python bridge process decides which
//! operators to call; the controller checks every request against the
//! allowlist and the budget gate, calls the gateway and answers over the
//! bridge's stdin.
//!
//! Lifecycle and budgets (decision 2): the bridge is killed and reaped
//! on every exit path; a bridge that falls silent is killed at the
//! wall-clock budget; an exact-fit call budget in a batch is not a
//! violation; a single call's result that overruns `max_bytes` is not
//! forwarded to the bridge (the loop stops first).

mod batch;
mod bridge;
mod protocol;

use std::collections::BTreeMap;
use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError};
use pecr_replay::TerminalMode;
use tracing::Instrument;

use self::bridge::{Bridge, BridgeCommand, LogIds, Read, WriteError};
use self::protocol::{
    BatchRequest, FromBridge, OperatorCall, PROTOCOL_RANGE, ToBridge, classify, is_allowlisted,
    negotiated, parse_line,
};
use super::LoopResult;
use crate::budget_gate::{BudgetGate, StopReason};
use crate::config::OperatorPolicy;
use crate::evidence::EvidenceCollector;
use crate::gateway_client::SessionClient;
use crate::metrics::ControllerMetrics;
use crate::progress::Progress;

/// Per-run settings of the RLM engine.
#[derive(Debug, Clone, Default)]
pub struct RlmOptions {
    /// Fair concurrent batches (§8.5) when true; sequential batches otherwise.
    pub batch_mode: bool,
    /// Per-operator caps and weights of batch dispatch, keyed by trimmed name.
    pub policies: BTreeMap<String, OperatorPolicy>,
    pub request_id: String,
    pub trace_id: String,
}

/// Runs one RLM loop for `query` with a fresh bridge process.
///
/// Budget stops and operator failures end the loop and go on to finalize.
/// A bridge failure (a `bridge_*` stop, or `done` followed by a non-zero
/// exit within 250 ms) counts its stop reason and fails the run with
/// `ERR_RLM_BRIDGE_FAILED`; protocol and transport errors fail it without
/// counting. The bridge never outlives this call.
pub async fn run(
    query: &str,
    session: &SessionClient,
    gate: BudgetGate,
    metrics: &ControllerMetrics,
    options: &RlmOptions,
    progress: &Progress,
) -> Result<LoopResult, PecrError> {
    let command = BridgeCommand::from_env()?;
    let ids = LogIds {
        request_id: options.request_id.clone(),
        trace_id: options.trace_id.clone(),
    };
    let mut bridge = Bridge::spawn(&command, &ids)?;
    let mut state = LoopState {
        session,
        gate,
        metrics,
        options,
        progress,
        step: 0,
        evidence: EvidenceCollector::default(),
        response_text: None,
    };
    let stop = match state.drive(&mut bridge, query).await {
        Ok(stop) => stop,
        Err(err) => {
            bridge.shutdown(false).await;
            return Err(err);
        }
    };
    let done = stop.reason == StopReason::RlmDone;
    let exit = bridge.shutdown(done).await;
    let failed_exit = done && exit.is_some_and(|status| !status.success());
    if stop.reason.is_bridge_failure() || failed_exit {
        metrics.loop_finished(stop.reason);
        return Err(PecrError::new(
            ErrorCode::RlmBridgeFailed,
            format!("rlm bridge failed: reason={}", stop.reason.as_str()),
        ));
    }
    Ok(LoopResult {
        terminal_mode: stop.terminal_mode,
        stop_reason: stop.reason,
        response_text: state.response_text,
        usage: state.gate.usage(),
        evidence: state.evidence,
    })
}

/// Why the loop ended and the terminal mode it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stop {
    reason: StopReason,
    terminal_mode: TerminalMode,
}

impl Stop {
    /// An operator failure takes the failure's hint as the loop mode.
    fn operator(terminal_mode: TerminalMode) -> Self {
        Self {
            reason: StopReason::OperatorError,
            terminal_mode,
        }
    }
}

impl From<StopReason> for Stop {
    /// Every other stop keeps INSUFFICIENT_EVIDENCE.
    fn from(reason: StopReason) -> Self {
        Self {
            reason,
            terminal_mode: TerminalMode::InsufficientEvidence,
        }
    }
}

/// Ok(Err(stop)) ends the loop normally; Err fails the run.
type Flow<T> = Result<Result<T, Stop>, PecrError>;

/// A request from the bridge, or why none came.
enum Incoming {
    Message(Result<FromBridge, StopReason>),
    Ended(StopReason),
}

/// The loop's view of the run: the gate, the session and what was gathered.
struct LoopState<'a> {
    session: &'a SessionClient,
    gate: BudgetGate,
    metrics: &'a ControllerMetrics,
    options: &'a RlmOptions,
    progress: &'a Progress,
    /// The reported step the calls in flight belong to.
    step: u32,
    evidence: EvidenceCollector,
    response_text: Option<String>,
}

fn protocol_error(message: impl Into<String>) -> PecrError {
    PecrError::new(ErrorCode::RlmBridgeProtocol, message)
}

fn encode(message: &ToBridge<'_>) -> Result<String, PecrError> {
    message.to_line().map_err(|_| {
        PecrError::new(
            ErrorCode::RlmBridgeInternal,
            "cannot encode a message for the rlm bridge",
        )
    })
}

impl LoopState<'_> {
    /// Handshake (§10.3), then the request loop (§10.4) until a stop.
    async fn drive(&mut self, bridge: &mut Bridge, query: &str) -> Result<Stop, PecrError> {
        let mut saved = match self.handshake(bridge, query).await? {
            Ok(saved) => saved,
            Err(stop) => return Ok(stop),
        };
        loop {
            let remaining = match self.gate.check_wallclock() {
                Ok(remaining) => remaining,
                Err(reason) => return Ok(reason.into()),
            };
            let incoming = match saved.take() {
                Some(message) => Incoming::Message(message),
                None => read_message(bridge, remaining).await?,
            };
            let message = match incoming {
                Incoming::Message(Ok(message)) => message,
                Incoming::Message(Err(reason)) | Incoming::Ended(reason) => {
                    return Ok(reason.into());
                }
            };
            let span = tracing::info_span!(
                "planner.rlm_message",
                msg_type = message.kind(),
                bridge_depth = tracing::field::Empty,
            );
            if let Err(stop) = self
                .handle(bridge, message, remaining)
                .instrument(span)
                .await?
            {
                return Ok(stop);
            }
        }
    }

    /// Sends `start` and reads the first line. Ok(Some) is a legacy
    /// bridge's first request, kept for the loop.
    async fn handshake(
        &mut self,
        bridge: &mut Bridge,
        query: &str,
    ) -> Flow<Option<Result<FromBridge, StopReason>>> {
        let start = encode(&ToBridge::Start {
            protocol: PROTOCOL_RANGE,
            query,
            budget: self.gate.budget(),
        })?;
        let remaining = match self.gate.check_wallclock() {
            Ok(remaining) => remaining,
            Err(reason) => return Ok(Err(reason.into())),
        };
        match bridge.send(&start, remaining).await {
            Ok(()) => {}
            Err(WriteError::TimedOut) => return Ok(Err(StopReason::BudgetMaxWallclockMs.into())),
            Err(WriteError::Failed) => {
                return Err(protocol_error("cannot write start to the rlm bridge"));
            }
        }
        match read_message(bridge, remaining).await? {
            Incoming::Ended(reason) => Ok(Err(reason.into())),
            Incoming::Message(Ok(FromBridge::StartAck { protocol_version })) => {
                match negotiated(protocol_version) {
                    Some(_) => Ok(Ok(None)),
                    None => Err(protocol_error(format!(
                        "unsupported rlm bridge protocol version {} (supported {}..={})",
                        protocol_version.map_or_else(|| "(none)".to_owned(), |v| v.to_string()),
                        PROTOCOL_RANGE.min_version,
                        PROTOCOL_RANGE.max_version
                    ))),
                }
            }
            Incoming::Message(first) => Ok(Ok(Some(first))),
        }
    }

    async fn handle(
        &mut self,
        bridge: &mut Bridge,
        message: FromBridge,
        remaining: Duration,
    ) -> Flow<()> {
        match message {
            FromBridge::CallOperator(call) => {
                tracing::Span::current().record("bridge_depth", call.depth);
                self.call_operator(bridge, call, remaining).await
            }
            FromBridge::CallOperatorBatch(batch) => {
                tracing::Span::current().record("bridge_depth", batch.depth);
                self.call_batch(bridge, batch).await
            }
            FromBridge::Done { final_answer } => {
                self.response_text = final_answer;
                Ok(Err(StopReason::RlmDone.into()))
            }
            // A second start_ack is as unexpected as an unknown type.
            FromBridge::StartAck { .. } | FromBridge::Unknown => {
                Ok(Err(StopReason::BridgeUnknownMessage.into()))
            }
        }
    }

    /// `call_operator`: depth, call budget, then the exact allowlist.
    async fn call_operator(
        &mut self,
        bridge: &mut Bridge,
        call: OperatorCall,
        remaining: Duration,
    ) -> Flow<()> {
        if let Err(reason) = self.gate.check_depth(call.depth) {
            return Ok(Err(reason.into()));
        }
        self.gate.reach_depth(call.depth);
        if let Err(reason) = self.gate.check_call(0) {
            return Ok(Err(reason.into()));
        }
        if !is_allowlisted(&call.op_name) {
            return Ok(Err(StopReason::BridgeOperatorNotAllowlisted.into()));
        }
        let step = self.progress.step_started([call.op_name.as_str()]);
        let outcome = {
            let _in_flight = self.metrics.in_flight();
            self.session
                .call(&call.op_name, &call.params, remaining)
                .await?
        };
        self.progress.call_settled(step, &call.op_name, &outcome);
        self.gate.record_call(outcome.bytes_len);
        let result = match outcome.result {
            Some(result) if outcome.ok => result,
            _ => {
                // The loop stops either way, so a failed write changes nothing.
                let failed = encode(&ToBridge::OperatorResult {
                    id: &call.id,
                    ok: false,
                    terminal_mode: outcome.terminal_mode,
                    result: None,
                    bytes_len: outcome.bytes_len,
                })?;
                let _ = bridge.send(&failed, self.gate.remaining()).await;
                return Ok(Err(Stop::operator(outcome.terminal_mode)));
            }
        };
        self.evidence.record(&call.op_name, &result);
        if let Err(reason) = self.gate.check_bytes() {
            return Ok(Err(reason.into()));
        }
        let reply = encode(&ToBridge::OperatorResult {
            id: &call.id,
            ok: true,
            terminal_mode: outcome.terminal_mode,
            result: Some(&result),
            bytes_len: outcome.bytes_len,
        })?;
        self.reply(bridge, &reply).await
    }

    /// `call_operator_batch`: depth, then the whole batch; any stop inside
    /// it sends no reply.
    async fn call_batch(&mut self, bridge: &mut Bridge, batch: BatchRequest) -> Flow<()> {
        if let Err(reason) = self.gate.check_depth(batch.depth) {
            return Ok(Err(reason.into()));
        }
        self.gate.reach_depth(batch.depth);
        self.step = self
            .progress
            .step_started(batch.calls.iter().map(|call| call.op_name.trim()));
        let ran = if self.options.batch_mode {
            self.run_fair(batch.calls).await?
        } else {
            self.run_sequential(batch.calls).await?
        };
        let entries = match ran {
            Ok(entries) => entries,
            Err(stop) => return Ok(Err(stop)),
        };
        let reply = encode(&ToBridge::OperatorBatchResult {
            id: &batch.id,
            results: &entries,
        })?;
        self.reply(bridge, &reply).await
    }

    /// Writes a reply within the remaining wall clock: a bridge that stops
    /// reading is a wall-clock stop, a broken pipe a protocol error.
    async fn reply(&self, bridge: &mut Bridge, line: &str) -> Flow<()> {
        match bridge.send(line, self.gate.remaining()).await {
            Ok(()) => Ok(Ok(())),
            Err(WriteError::TimedOut) => Ok(Err(StopReason::BudgetMaxWallclockMs.into())),
            Err(WriteError::Failed) => Err(protocol_error("cannot write to the rlm bridge")),
        }
    }
}

/// Reads and classifies one line; a line that is not JSON fails the run.
async fn read_message(bridge: &mut Bridge, timeout: Duration) -> Result<Incoming, PecrError> {
    let line = match bridge.read(timeout).await {
        Read::Line(line) => line,
        Read::Eof => return Ok(Incoming::Ended(StopReason::BridgeEof)),
        Read::Failed => return Ok(Incoming::Ended(StopReason::BridgeReadError)),
        Read::TimedOut => return Ok(Incoming::Ended(StopReason::BudgetMaxWallclockMs)),
    };
    // The parser's text is left out: bridge output is not echoed to clients.
    let value =
        parse_line(&line).map_err(|_| protocol_error("rlm bridge sent a line that is not JSON"))?;
    Ok(Incoming::Message(classify(&value)))
}

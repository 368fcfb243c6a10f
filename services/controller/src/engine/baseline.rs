//! The baseline engine (spec 30 §9.2): runs the plan under the budget gate,
//! consecutive operator steps as one gateway batch, and fans `fetch_span` out
//! over the latest search refs.

use pecr_errors::PecrError;
use pecr_replay::TerminalMode;
use serde_json::Value;
use tracing::Instrument;

use super::LoopResult;
use crate::budget_gate::{BudgetGate, StopReason};
use crate::evidence::EvidenceCollector;
use crate::gateway_client::{CallOutcome, LazySession};
use crate::metrics::ControllerMetrics;
use crate::plan::{Plan, PlanStep};
use crate::progress::Progress;

/// Runs `plan` for `query`. Consecutive operator steps do not depend on
/// each other, so they go to the gateway as one batch; a fan-out step is a
/// batch of its own. The first batch opens the session. Operator failures and budget stops end the loop (and
/// still finalize); transport failures and bad replies fail the run.
pub async fn run(
    plan: &Plan,
    query: &str,
    session: &mut LazySession,
    mut gate: BudgetGate,
    metrics: &ControllerMetrics,
    progress: &Progress,
) -> Result<LoopResult, PecrError> {
    let trimmed = query.trim();
    let mut evidence = EvidenceCollector::default();
    let mut terminal_mode = TerminalMode::InsufficientEvidence;
    let mut stop_reason = StopReason::PlanComplete;
    let steps = plan.steps();
    let mut index = 0;
    while index < steps.len() {
        let group = operator_group(&steps[index..]).max(1);
        let usage = gate.usage();
        let span = tracing::info_span!(
            "planner.baseline_step",
            step = index,
            steps = group,
            depth_used = usage.depth,
            operator_calls_used = usage.operator_calls,
            bytes_used = usage.bytes,
        );
        let step_result = run_steps(
            &steps[index..index + group],
            trimmed,
            session,
            &mut gate,
            &mut evidence,
            metrics,
            progress,
        )
        .instrument(span)
        .await?;
        if let Err((reason, mode)) = step_result {
            stop_reason = reason;
            terminal_mode = mode;
            break;
        }
        index += group;
    }
    Ok(LoopResult {
        terminal_mode,
        stop_reason,
        response_text: None,
        usage: gate.usage(),
        evidence,
    })
}

/// How many operator steps (steps that make one call) lead `steps`.
fn operator_group(steps: &[PlanStep]) -> usize {
    steps
        .iter()
        .take_while(|step| !matches!(step, PlanStep::SearchRefFetchSpan { .. }))
        .count()
}

/// A stop: why, and the loop terminal mode it leaves.
type Stop = (StopReason, TerminalMode);

fn budget_stop(reason: StopReason) -> Stop {
    (reason, TerminalMode::InsufficientEvidence)
}

/// Runs a group of operator steps as one batch, or one fan-out step. Each
/// step is admitted by the gate in plan order, exactly as if the steps ran
/// one by one; a step the gate stops ends the group after the steps before
/// it have run.
async fn run_steps(
    steps: &[PlanStep],
    trimmed_query: &str,
    session: &mut LazySession,
    gate: &mut BudgetGate,
    evidence: &mut EvidenceCollector,
    metrics: &ControllerMetrics,
    progress: &Progress,
) -> Result<Result<(), Stop>, PecrError> {
    let mut batch: Vec<(String, Value)> = Vec::new();
    let mut pending_stop = None;
    let mut remaining = None;
    for step in steps {
        if let Err(reason) = gate.check_depth(gate.usage().depth) {
            pending_stop = Some(budget_stop(reason));
            break;
        }
        metrics.loop_iterations.inc();
        let reserved = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        if let Err(reason) = gate.check_call(reserved) {
            pending_stop = Some(budget_stop(reason));
            break;
        }
        match gate.check_wallclock() {
            Ok(left) => remaining = Some(left),
            Err(reason) => {
                pending_stop = Some(budget_stop(reason));
                break;
            }
        }
        gate.spend_depth();
        if let PlanStep::SearchRefFetchSpan { max_refs } = step {
            return fan_out(*max_refs, session, gate, evidence, metrics, progress).await;
        }
        if let Some((op_name, params)) = step.call_for(trimmed_query) {
            // An empty query makes search pointless: skip it, depth spent.
            if op_name == "search" && trimmed_query.is_empty() {
                continue;
            }
            batch.push((op_name, params));
        }
    }
    if let Some(remaining) = remaining.filter(|_| !batch.is_empty()) {
        let _in_flight = metrics.in_flight();
        let outcomes = call_batch(session, &batch, remaining, progress).await?;
        if let Err(stop) = settle(&batch, outcomes, gate, evidence, |evidence, op, result| {
            evidence.record(op, result)
        }) {
            return Ok(Err(stop));
        }
    }
    Ok(match pending_stop {
        Some(stop) => Err(stop),
        None => Ok(()),
    })
}

/// Sends one batch as one reported step. The gateway ran every call, so
/// every outcome is reported, even those after a failure that stops the loop.
async fn call_batch(
    session: &mut LazySession,
    batch: &[(String, Value)],
    remaining: std::time::Duration,
    progress: &Progress,
) -> Result<Vec<CallOutcome>, PecrError> {
    let step = progress.step_started(batch.iter().map(|(op_name, _)| op_name.as_str()));
    let outcomes = session.call_batch(batch, remaining).await?;
    if let Some(open) = session.opened() {
        progress.session_created(open);
    }
    for ((op_name, _), outcome) in batch.iter().zip(&outcomes) {
        progress.call_settled(step, op_name, outcome);
    }
    Ok(outcomes)
}

/// Spends the budget of every call of a batch (the gateway ran them all)
/// and keeps the results in order up to the first failure, which stops the
/// loop as it would have stopped it one call at a time.
fn settle(
    batch: &[(String, Value)],
    outcomes: Vec<CallOutcome>,
    gate: &mut BudgetGate,
    evidence: &mut EvidenceCollector,
    record: impl Fn(&mut EvidenceCollector, &str, &Value),
) -> Result<(), Stop> {
    let mut stop = None;
    for ((op_name, _), outcome) in batch.iter().zip(outcomes) {
        gate.record_call(outcome.bytes_len);
        if stop.is_some() {
            continue;
        }
        match (outcome.ok, &outcome.result) {
            (true, Some(result)) => record(evidence, op_name, result),
            _ => stop = Some((StopReason::OperatorError, outcome.terminal_mode)),
        }
        if stop.is_none()
            && let Err(reason) = gate.check_bytes()
        {
            stop = Some(budget_stop(reason));
        }
    }
    stop.map_or(Ok(()), Err)
}

/// `fetch_span` over the first `max_refs` search refs, in batches no wider
/// than the gate allows.
async fn fan_out(
    max_refs: usize,
    session: &mut LazySession,
    gate: &mut BudgetGate,
    evidence: &mut EvidenceCollector,
    metrics: &ControllerMetrics,
    progress: &Progress,
) -> Result<Result<(), Stop>, PecrError> {
    let mut pending = evidence
        .refs()
        .iter()
        .take(max_refs)
        .map(|found| found.object_id.clone())
        .collect::<Vec<_>>()
        .into_iter()
        .peekable();
    while pending.peek().is_some() {
        let mut batch = Vec::new();
        let mut remaining = None;
        while pending.peek().is_some() && batch.len() < gate.width(0) {
            let reserved = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            // Checked only while work is left, so an exact fit is no violation.
            if let Err(reason) = gate.check_call(reserved) {
                if batch.is_empty() {
                    return Ok(Err(budget_stop(reason)));
                }
                break;
            }
            match gate.check_wallclock() {
                Ok(left) => remaining = Some(left),
                Err(reason) => return Ok(Err(budget_stop(reason))),
            }
            let Some(object_id) = pending.next() else {
                break;
            };
            batch.push((
                "fetch_span".to_owned(),
                serde_json::json!({ "object_id": object_id }),
            ));
        }
        let Some(remaining) = remaining else {
            return Ok(Ok(()));
        };
        // A batch's calls are dispatched together: none waits for a slot.
        for _ in &batch {
            metrics.operator_queue_wait.observe(0.0);
        }
        let _in_flight = metrics.in_flight();
        let outcomes = call_batch(session, &batch, remaining, progress).await?;
        if let Err(stop) = settle(&batch, outcomes, gate, evidence, |evidence, _, result| {
            evidence.record_single(result)
        }) {
            return Ok(Err(stop));
        }
    }
    Ok(Ok(()))
}

//! The baseline engine (spec 30 §9.2): runs the plan step by step under the
//! budget gate, fanning `fetch_span` out over the latest search refs.

use std::time::Instant;

use pecr_contracts::replay::TerminalMode;
use pecr_errors::PecrError;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::LoopResult;
use crate::budget_gate::{BudgetGate, StopReason};
use crate::evidence::EvidenceCollector;
use crate::gateway_client::{CallOutcome, SessionClient};
use crate::metrics::ControllerMetrics;
use crate::plan::{Plan, PlanStep, render_params};

/// Runs `plan` for `query`. Operator failures and budget stops end the loop
/// (and still finalize); transport failures and bad replies fail the run.
pub async fn run(
    plan: &Plan,
    query: &str,
    session: &SessionClient,
    mut gate: BudgetGate,
    metrics: &ControllerMetrics,
) -> Result<LoopResult, PecrError> {
    let trimmed = query.trim();
    let mut evidence = EvidenceCollector::default();
    let mut terminal_mode = TerminalMode::InsufficientEvidence;
    let mut stop_reason = StopReason::PlanComplete;
    for (index, step) in plan.steps().iter().enumerate() {
        let usage = gate.usage();
        let span = tracing::info_span!(
            "planner.baseline_step",
            step = index,
            depth_used = usage.depth,
            operator_calls_used = usage.operator_calls,
            bytes_used = usage.bytes,
        );
        let step_result = run_step(step, trimmed, session, &mut gate, &mut evidence, metrics)
            .instrument(span)
            .await?;
        if let Err((reason, mode)) = step_result {
            stop_reason = reason;
            terminal_mode = mode;
            break;
        }
    }
    Ok(LoopResult {
        terminal_mode,
        stop_reason,
        response_text: None,
        usage: gate.usage(),
        evidence,
    })
}

/// A stop: why, and the loop terminal mode it leaves.
type Stop = (StopReason, TerminalMode);

fn budget_stop(reason: StopReason) -> Stop {
    (reason, TerminalMode::InsufficientEvidence)
}

async fn run_step(
    step: &PlanStep,
    trimmed_query: &str,
    session: &SessionClient,
    gate: &mut BudgetGate,
    evidence: &mut EvidenceCollector,
    metrics: &ControllerMetrics,
) -> Result<Result<(), Stop>, PecrError> {
    if let Err(reason) = gate.check_depth(gate.usage().depth) {
        return Ok(Err(budget_stop(reason)));
    }
    metrics.loop_iterations.inc();
    if let Err(reason) = gate.check_call(0) {
        return Ok(Err(budget_stop(reason)));
    }
    let remaining = match gate.check_wallclock() {
        Ok(remaining) => remaining,
        Err(reason) => return Ok(Err(budget_stop(reason))),
    };
    gate.spend_depth();
    match step {
        PlanStep::Operator { op_name, params } => {
            // An empty query makes search pointless: skip it, depth spent.
            if op_name == "search" && trimmed_query.is_empty() {
                return Ok(Ok(()));
            }
            let params = render_params(params, trimmed_query);
            let _in_flight = metrics.in_flight();
            let outcome = session.call(op_name, &params, remaining).await?;
            gate.record_call(outcome.bytes_len);
            match (outcome.ok, &outcome.result) {
                (true, Some(result)) => evidence.record(op_name, result),
                _ => return Ok(Err((StopReason::OperatorError, outcome.terminal_mode))),
            }
        }
        PlanStep::SearchRefFetchSpan { max_refs } => {
            if let Err(stop) = fan_out(*max_refs, session, gate, evidence, metrics).await? {
                return Ok(Err(stop));
            }
        }
    }
    Ok(gate.check_bytes().map_err(budget_stop))
}

/// `fetch_span` over the first `max_refs` search refs, at most `width` in
/// flight, results taken in completion order.
async fn fan_out(
    max_refs: usize,
    session: &SessionClient,
    gate: &mut BudgetGate,
    evidence: &mut EvidenceCollector,
    metrics: &ControllerMetrics,
) -> Result<Result<(), Stop>, PecrError> {
    let mut pending = evidence
        .refs()
        .iter()
        .take(max_refs)
        .map(|found| found.object_id.clone())
        .collect::<Vec<_>>()
        .into_iter()
        .peekable();
    let mut in_flight: JoinSet<Result<CallOutcome, PecrError>> = JoinSet::new();
    loop {
        while pending.peek().is_some() {
            let reserved = u32::try_from(in_flight.len()).unwrap_or(u32::MAX);
            if in_flight.len() >= gate.width(reserved) {
                break;
            }
            // Checked only while work is left, so an exact fit is no violation.
            if let Err(reason) = gate.check_call(reserved) {
                return Ok(Err(budget_stop(reason)));
            }
            let remaining = match gate.check_wallclock() {
                Ok(remaining) => remaining,
                Err(reason) => return Ok(Err(budget_stop(reason))),
            };
            let Some(object_id) = pending.next() else {
                break;
            };
            let session = session.clone();
            let metrics = metrics.clone();
            let admitted = Instant::now();
            in_flight.spawn(
                async move {
                    metrics
                        .operator_queue_wait
                        .observe(admitted.elapsed().as_secs_f64());
                    let _in_flight = metrics.in_flight();
                    let params = serde_json::json!({ "object_id": object_id });
                    session.call("fetch_span", &params, remaining).await
                }
                .in_current_span(),
            );
        }
        let Some(joined) = in_flight.join_next().await else {
            return Ok(Ok(()));
        };
        let outcome = joined.map_err(|_| PecrError::internal("operator task failed"))??;
        gate.record_call(outcome.bytes_len);
        match (outcome.ok, &outcome.result) {
            (true, Some(result)) => evidence.record_single(result),
            _ => return Ok(Err((StopReason::OperatorError, outcome.terminal_mode))),
        }
        if let Err(reason) = gate.check_bytes() {
            return Ok(Err(budget_stop(reason)));
        }
    }
}

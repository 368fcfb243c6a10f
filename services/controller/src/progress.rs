//! What a streamed run tells its caller as it goes (`RunStream`): the
//! session, each step and call, the finalize. A unary `Run` reports to
//! nobody. Events carry ids and outcomes, never operator results, so a
//! stream shows no more than the final response could.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pecr_proto::v1::{self, run_stream_response::Event};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::evidence::units_in;
use crate::gateway_client::{CallOutcome, SessionClient, proto_mode};

/// The run's progress sink. Sending never blocks the run: a caller that
/// reads slowly or went away costs nothing but the queued events.
#[derive(Debug, Default)]
pub struct Progress {
    events: Option<UnboundedSender<v1::RunStreamResponse>>,
    next_step: AtomicU32,
    session_reported: AtomicBool,
}

impl Progress {
    /// Reports nothing (unary `Run`).
    pub fn silent() -> Self {
        Self::default()
    }

    /// Reports every event to `events`.
    pub fn to(events: UnboundedSender<v1::RunStreamResponse>) -> Self {
        Self {
            events: Some(events),
            ..Self::default()
        }
    }

    fn send(&self, event: Event) {
        let Some(events) = &self.events else {
            return;
        };
        // A closed stream means the caller left; the run goes on.
        let _ = events.send(v1::RunStreamResponse { event: Some(event) });
    }

    /// The run's session, reported once however often it is seen.
    pub fn session_created(&self, session: &SessionClient) {
        if self.events.is_none() || self.session_reported.swap(true, Ordering::Relaxed) {
            return;
        }
        self.send(Event::SessionCreated(v1::RunSessionCreated {
            session_id: session.session_id.clone(),
            policy_snapshot_id: session.policy_snapshot_id.clone(),
            trace_id: session.trace_id().to_owned(),
        }));
    }

    /// A batch of calls is about to go out; returns its step number.
    pub fn step_started<'a>(&self, operators: impl IntoIterator<Item = &'a str>) -> u32 {
        let step = self.next_step.fetch_add(1, Ordering::Relaxed);
        if self.events.is_some() {
            self.send(Event::StepStarted(v1::RunStepStarted {
                step,
                operators: operators.into_iter().map(str::to_owned).collect(),
            }));
        }
        step
    }

    /// One call of step `step` settled.
    pub fn call_settled(&self, step: u32, op_name: &str, outcome: &CallOutcome) {
        if self.events.is_none() {
            return;
        }
        let (evidence_unit_ids, refs) = outcome
            .result
            .as_ref()
            .filter(|_| outcome.ok)
            .map(evidence_of)
            .unwrap_or_default();
        self.send(Event::OperatorCall(v1::RunOperatorCall {
            step,
            op_name: op_name.to_owned(),
            ok: outcome.ok,
            terminal_mode: proto_mode(outcome.terminal_mode) as i32,
            evidence_unit_ids,
            refs,
            bytes: outcome.bytes_len,
        }));
    }

    /// The loop ended with `stop_reason`; an answer of `claims` claims goes
    /// to finalize.
    pub fn finalizing(&self, stop_reason: &str, claims: usize) {
        self.send(Event::Finalizing(v1::RunFinalizing {
            stop_reason: stop_reason.to_owned(),
            claims: u32::try_from(claims).unwrap_or(u32::MAX),
        }));
    }
}

/// The ids of the units an operator result holds (an array of units or a
/// single one) and the number of search hits it lists.
fn evidence_of(result: &Value) -> (Vec<String>, u32) {
    let refs = result
        .get("refs")
        .and_then(Value::as_array)
        .map_or(0, |refs| u32::try_from(refs.len()).unwrap_or(u32::MAX));
    let ids = units_in(result)
        .into_iter()
        .map(|unit| unit.evidence_unit_id)
        .collect();
    (ids, refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_replay::TerminalMode;
    use tokio::sync::mpsc;

    fn unit_json(id: &str) -> Value {
        serde_json::json!({
            "source_system": "pg_safeview",
            "object_id": "safe_customer_view_public/1",
            "version_id": "v1",
            "span_or_row_spec": {"type": "db_row"},
            "content_type": "application/json",
            "content": {"secret": "never streamed"},
            "content_hash": "h",
            "retrieved_at": "2026-01-01T00:00:00Z",
            "as_of_time": "2026-01-01T00:00:00Z",
            "policy_snapshot_id": "p",
            "policy_snapshot_hash": "ph",
            "transform_chain": [],
            "evidence_unit_id": id,
        })
    }

    fn ok(result: Value) -> CallOutcome {
        CallOutcome {
            ok: true,
            terminal_mode: TerminalMode::Supported,
            bytes_len: 42,
            result: Some(result),
        }
    }

    #[test]
    fn steps_count_up_and_calls_name_evidence_by_id_only() {
        let (sender, mut events) = mpsc::unbounded_channel();
        let progress = Progress::to(sender);
        assert_eq!(progress.step_started(["search", "lookup_evidence"]), 0);
        progress.call_settled(
            0,
            "lookup_evidence",
            &ok(serde_json::json!([unit_json("e1")])),
        );
        assert_eq!(progress.step_started(["fetch_span"]), 1);
        progress.call_settled(1, "fetch_span", &ok(unit_json("e2")));
        progress.call_settled(
            1,
            "search",
            &ok(serde_json::json!({"refs": [{"evidence_unit_id": "r"}, {}]})),
        );
        progress.finalizing("plan_complete", 2);
        drop(progress);

        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event.event.expect("an event"));
        }
        assert_eq!(seen.len(), 6);
        let Event::OperatorCall(first) = &seen[1] else {
            panic!("{:?}", seen[1]);
        };
        assert_eq!(first.evidence_unit_ids, ["e1"]);
        assert_eq!((first.bytes, first.refs, first.ok), (42, 0, true));
        let Event::OperatorCall(single) = &seen[3] else {
            panic!("{:?}", seen[3]);
        };
        assert_eq!(
            (single.step, single.evidence_unit_ids.as_slice()),
            (1, &["e2".to_owned()][..])
        );
        let Event::OperatorCall(search) = &seen[4] else {
            panic!("{:?}", seen[4]);
        };
        assert_eq!((search.refs, search.evidence_unit_ids.len()), (2, 0));
        assert!(!format!("{seen:?}").contains("never streamed"));
    }

    #[test]
    fn a_failed_call_has_no_evidence_and_its_reason() {
        let (sender, mut events) = mpsc::unbounded_channel();
        let progress = Progress::to(sender);
        let failed = CallOutcome {
            ok: false,
            terminal_mode: TerminalMode::InsufficientPermission,
            result: None,
            bytes_len: 7,
        };
        progress.call_settled(0, "fetch_rows", &failed);
        let Some(Event::OperatorCall(call)) = events.try_recv().expect("event").event else {
            panic!("not a call");
        };
        assert!(!call.ok && call.evidence_unit_ids.is_empty());
        assert_eq!(
            call.terminal_mode,
            v1::TerminalMode::InsufficientPermission as i32
        );
    }

    #[test]
    fn a_silent_run_still_numbers_its_steps() {
        let progress = Progress::silent();
        assert_eq!(progress.step_started(["search"]), 0);
        assert_eq!(progress.step_started(["search"]), 1);
        progress.finalizing("plan_complete", 1);
    }
}

//! What the ledger and the replay store must hold, after the drill, for
//! every answer a client got during it: nothing answered may be unrecorded.

use std::collections::{BTreeMap, BTreeSet};

use pecr_proto::v1;
use serde_json::Value;

use crate::harness::DrillMesh;
use crate::load::{Call, Granted};

fn payload(event: &v1::LedgerEvent) -> Value {
    serde_json::from_str(&event.payload).unwrap_or(Value::Null)
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

/// What the ledger recorded of one session or trace.
struct Recorded {
    /// Request ids of successful `OPERATOR_CALL`s.
    calls: BTreeSet<String>,
    /// (request id, evidence unit id) of `EVIDENCE_EMITTED`.
    evidence: BTreeSet<(String, String)>,
    /// Evidence unit ids of `EVIDENCE_EMITTED`, whoever emitted them.
    evidence_ids: BTreeSet<String>,
    finalized: bool,
    session_ids: BTreeSet<String>,
}

fn recorded(events: &[v1::LedgerEvent]) -> Recorded {
    let mut recorded = Recorded {
        calls: BTreeSet::new(),
        evidence: BTreeSet::new(),
        evidence_ids: BTreeSet::new(),
        finalized: false,
        session_ids: BTreeSet::new(),
    };
    for event in events {
        recorded.session_ids.insert(event.session_id.clone());
        let body = payload(event);
        match event.event_type.as_str() {
            "OPERATOR_CALL" if body["outcome"] == "success" => {
                recorded.calls.insert(text(&body, "request_id"));
            }
            "EVIDENCE_EMITTED" => {
                let id = text(&body, "evidence_unit_id");
                recorded
                    .evidence
                    .insert((text(&body, "request_id"), id.clone()));
                recorded.evidence_ids.insert(id);
            }
            "FINALIZE_RESULT" => recorded.finalized = true,
            _ => {}
        }
    }
    recorded
}

/// Successful operator calls whose `OPERATOR_CALL` event, or an
/// `EVIDENCE_EMITTED` event of a unit in their result, is not in the ledger.
pub async fn unrecorded_operator_results(mesh: &DrillMesh, calls: &[Call<Granted>]) -> Vec<String> {
    let mut by_session: BTreeMap<&str, Vec<(&Call<Granted>, &Granted)>> = BTreeMap::new();
    for call in calls {
        if let (Ok(granted), false) = (&call.outcome, call.kind == "create_session") {
            by_session
                .entry(granted.session_id.as_str())
                .or_default()
                .push((call, granted));
        }
    }
    let mut missing = Vec::new();
    for (session_id, answered) in by_session {
        let events = mesh
            .ledger_events(v1::ListEventsRequest {
                session_id: Some(session_id.to_owned()),
                ..v1::ListEventsRequest::default()
            })
            .await;
        let recorded = recorded(&events);
        for (call, granted) in answered {
            if !recorded.calls.contains(&call.request_id) {
                missing.push(format!(
                    "{} ({}) in session {session_id}: no OPERATOR_CALL event",
                    call.request_id, call.kind
                ));
            }
            for id in &granted.evidence_ids {
                if !recorded
                    .evidence
                    .contains(&(call.request_id.clone(), id.clone()))
                {
                    missing.push(format!(
                        "{} in session {session_id}: no EVIDENCE_EMITTED for {id}",
                        call.request_id
                    ));
                }
            }
        }
    }
    missing
}

/// Successful runs the ledger or the replay store cannot account for: the
/// run's trace must hold its `FINALIZE_RESULT` and an `EVIDENCE_EMITTED`
/// for every cited unit, and a run that returned a `run_id` must have its
/// replay stored (loaded back through the controller) for that same session.
pub async fn unrecorded_runs(mesh: &DrillMesh, runs: &[Call<v1::RunResponse>]) -> Vec<String> {
    let mut missing = Vec::new();
    let mut client = mesh.controller_client();
    for call in runs {
        let Ok(run) = &call.outcome else { continue };
        let what = format!("run {} (trace {})", call.request_id, run.trace_id);
        let events = mesh
            .ledger_events(v1::ListEventsRequest {
                trace_id: Some(run.trace_id.clone()),
                ..v1::ListEventsRequest::default()
            })
            .await;
        let recorded = recorded(&events);
        if !recorded.finalized {
            missing.push(format!("{what}: no FINALIZE_RESULT event"));
        }
        for cited in &run.cited_evidence {
            if !recorded.evidence_ids.contains(&cited.evidence_unit_id) {
                missing.push(format!(
                    "{what}: cited {} has no EVIDENCE_EMITTED event",
                    cited.evidence_unit_id
                ));
            }
        }
        if run.run_id.is_empty() {
            continue;
        }
        let mut request = tonic::Request::new(v1::GetReplayRequest {
            run_id: run.run_id.clone(),
        });
        request.metadata_mut().insert(
            "x-pecr-principal-id",
            "dev"
                .parse()
                .unwrap_or_else(|err| panic!("principal: {err}")),
        );
        let bundle = match client.get_replay(request).await {
            Ok(reply) => reply.into_inner().bundle,
            Err(status) => {
                missing.push(format!(
                    "{what}: replay {} not loadable: {status:?}",
                    run.run_id
                ));
                continue;
            }
        };
        let Some(bundle) = bundle else {
            missing.push(format!("{what}: replay {} has no bundle", run.run_id));
            continue;
        };
        if !recorded.session_ids.contains(&bundle.session_id) {
            missing.push(format!(
                "{what}: the replay's session {} has no events in the run's trace",
                bundle.session_id
            ));
        }
        for id in &bundle.evidence_unit_ids {
            if !recorded.evidence_ids.contains(id) {
                missing.push(format!(
                    "{what}: replayed evidence {id} has no EVIDENCE_EMITTED event"
                ));
            }
        }
    }
    missing
}

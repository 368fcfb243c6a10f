//! `ControllerService/RunStream` on the live mesh, over gRPC and as
//! Server-Sent Events on `POST /v1/run/stream`: the events of a run in
//! order, the same answer `Run` gives, evidence named by id only, refusals
//! before the stream starts, and a run that reaches its finalize after the
//! caller went away.

use std::collections::BTreeSet;
use std::time::Duration;

use pecr_mesh_tests::{Mesh, as_principal, assert_no_canary, run_request};
use pecr_proto::v1::{self, TerminalMode, run_stream_response::Event};
use pecr_testkit::http_post_json;
use serde_json::Value;
use tonic::Code;

const STATUS_QUESTION: &str = "What is the customer status and plan tier?";

fn stream_request(principal: &str, query: &str) -> tonic::Request<v1::RunStreamRequest> {
    as_principal(
        principal,
        v1::RunStreamRequest {
            query: query.into(),
            budget: None,
        },
    )
}

/// Every event of a streamed run, in order.
async fn stream_events(mesh: &Mesh, principal: &str, query: &str) -> Vec<Event> {
    let mut client = mesh.client().await;
    let mut stream = client
        .run_stream(stream_request(principal, query))
        .await
        .unwrap_or_else(|status| panic!("{principal} {query:?}: {status:?}"))
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream
        .message()
        .await
        .unwrap_or_else(|status| panic!("stream: {status:?}"))
    {
        events.push(event.event.expect("every event is set"));
    }
    events
}

fn kind(event: &Event) -> &'static str {
    match event {
        Event::SessionCreated(_) => "session_created",
        Event::StepStarted(_) => "step_started",
        Event::OperatorCall(_) => "operator_call",
        Event::Finalizing(_) => "finalizing",
        Event::Result(_) => "result",
    }
}

/// (step_started, operator_call*)+, finalizing, result; session_created
/// once, before any call (the baseline's first step opens the session).
fn assert_event_order(events: &[Event]) {
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert!(kinds.len() >= 5, "{kinds:?}");
    assert_eq!(kinds[..2], ["step_started", "session_created"], "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "session_created").count(), 1);
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["finalizing", "result"],
        "{kinds:?}"
    );
    let mut step = None;
    for event in &events[..events.len() - 2] {
        match event {
            Event::StepStarted(started) => {
                assert_eq!(started.step, step.map_or(0, |s: u32| s + 1), "{kinds:?}");
                step = Some(started.step);
            }
            Event::OperatorCall(call) => assert_eq!(Some(call.step), step, "{events:?}"),
            Event::SessionCreated(_) => {}
            other => panic!("{} before the loop ended: {events:?}", kind(other)),
        }
    }
}

fn result_of(events: &[Event]) -> &v1::RunResponse {
    match events.last() {
        Some(Event::Result(response)) => response,
        other => panic!("the last event is not the result: {other:?}"),
    }
}

#[tokio::test]
async fn a_streamed_run_reports_its_steps_then_the_answer_run_gives() {
    let mesh = Mesh::start().await;
    let events = stream_events(&mesh, "dev", STATUS_QUESTION).await;
    assert_event_order(&events);
    assert_no_canary("dev stream", &format!("{events:?}"));

    let response = result_of(&events);
    assert_eq!(response.terminal_mode, TerminalMode::Supported as i32);
    let Some(Event::SessionCreated(session)) = events.get(1) else {
        panic!("{events:?}");
    };
    assert!(!session.session_id.is_empty());
    assert_eq!(session.trace_id, response.trace_id);

    // Every cited unit was reported by the call that returned it.
    let reported: BTreeSet<&String> = events
        .iter()
        .filter_map(|event| match event {
            Event::OperatorCall(call) => Some(call.evidence_unit_ids.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!response.cited_evidence.is_empty());
    for cited in &response.cited_evidence {
        assert!(reported.contains(&cited.evidence_unit_id), "{events:?}");
        assert_eq!(cited.source_system, "pg_safeview");
    }
    let Some(Event::Finalizing(finalizing)) = events.get(events.len() - 2) else {
        panic!("{events:?}");
    };
    assert_eq!(finalizing.stop_reason, response.stop_reason);
    assert!(finalizing.claims >= 1);

    // The same question through Run decides the same way.
    let unary = mesh
        .client()
        .await
        .run(run_request("dev", STATUS_QUESTION, None))
        .await
        .expect("run")
        .into_inner();
    assert_eq!(unary.terminal_mode, response.terminal_mode);
    assert_eq!(unary.response_text, response.response_text);
    assert_eq!(unary.cited_evidence, response.cited_evidence);
}

#[tokio::test]
async fn a_denied_call_is_reported_with_its_mode() {
    let mesh = Mesh::start().await;
    let events = stream_events(&mesh, "guest", STATUS_QUESTION).await;
    assert_event_order(&events);
    assert_eq!(
        result_of(&events).terminal_mode,
        TerminalMode::InsufficientPermission as i32
    );
    let denied = events.iter().any(|event| {
        matches!(event, Event::OperatorCall(call)
            if !call.ok
                && call.terminal_mode == TerminalMode::InsufficientPermission as i32
                && call.evidence_unit_ids.is_empty())
    });
    assert!(denied, "{events:?}");
}

#[tokio::test]
async fn refusals_come_before_the_stream() {
    let mesh = Mesh::start().await;
    let mut client = mesh.client().await;
    let status = client
        .run_stream(as_principal(
            "",
            v1::RunStreamRequest {
                query: "q".into(),
                budget: None,
            },
        ))
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated);

    let answer = http_post_json(&mesh.url("/v1/run/stream"), &[], r#"{"query":"q"}"#).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.json()["code"], "ERR_POLICY_DENIED");
    let answer = http_post_json(
        &mesh.url("/v1/run/stream"),
        &[("x-pecr-principal-id", "dev")],
        r#"{"query":"q","budget":{"max_bytes":"lots"}}"#,
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.json()["code"], "ERR_INVALID_PARAMS");
}

/// `(event, data)` of each Server-Sent Event.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |prefix: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(prefix))
                    .unwrap_or_else(|| panic!("no {prefix:?} in {block:?}"))
                    .to_owned()
            };
            let data = serde_json::from_str(&field("data: ")).expect("data is JSON");
            (field("event: "), data)
        })
        .collect()
}

#[tokio::test]
async fn the_rest_edge_streams_server_sent_events() {
    let mesh = Mesh::start().await;
    let body = serde_json::json!({ "query": STATUS_QUESTION }).to_string();
    let answer = http_post_json(
        &mesh.url("/v1/run/stream"),
        &[("x-pecr-principal-id", "dev")],
        &body,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "text/event-stream");
    assert_no_canary("dev SSE stream", &answer.body);
    let events = sse_events(&answer.body);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names[1], "session_created", "{names:?}");
    assert_eq!(names[names.len() - 1], "result", "{names:?}");
    for (name, data) in &events {
        assert!(data.get(name).is_some(), "{name}: {data}");
    }
    let result = &events[events.len() - 1].1["result"];
    assert_eq!(result["terminal_mode"], "SUPPORTED");
    // The header names the run's trace, as on /v1/run.
    let trace = answer
        .headers
        .get("x-pecr-trace-id")
        .and_then(|value| value.to_str().ok())
        .expect("x-pecr-trace-id");
    assert_eq!(result["trace_id"], trace);

    let unary = http_post_json(
        &mesh.url("/v1/run"),
        &[("x-pecr-principal-id", "dev")],
        &body,
    )
    .await;
    assert_eq!(
        unary
            .headers
            .get("x-pecr-trace-id")
            .and_then(|v| v.to_str().ok()),
        unary.json()["trace_id"].as_str()
    );
}

#[tokio::test]
async fn a_run_whose_caller_leaves_still_finalizes() {
    let mesh = Mesh::start().await;
    let mut client = mesh.client().await;
    let mut stream = client
        .run_stream(stream_request("dev", STATUS_QUESTION))
        .await
        .expect("stream")
        .into_inner();
    let first = stream.message().await.expect("first event");
    assert!(first.is_some());
    drop(stream);

    // Its replay is stored once the run reaches its finalize.
    for _ in 0..100 {
        let replays = client
            .list_replays(as_principal("dev", v1::ListReplaysRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .replays;
        if !replays.is_empty() {
            assert_eq!(replays[0].terminal_mode, TerminalMode::Supported as i32);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the abandoned run never stored its replay");
}

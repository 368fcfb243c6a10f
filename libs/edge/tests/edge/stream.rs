//! A server-streaming route (`POST /v1/run/stream`) as Server-Sent Events,
//! read off the wire by a real HTTP client.

use std::time::Duration;

use pecr_edge::EdgeConfig;
use serde_json::{Value, json};

use crate::client::{Reply, edge, start};

/// `(event name, data JSON)` of each event of an SSE body.
fn sse_events(reply: &Reply) -> Vec<(String, Value)> {
    reply
        .body
        .split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).expect("data is JSON"));
                } else {
                    panic!("unexpected line {line:?} in {:?}", reply.body);
                }
            }
            (name.expect("event name"), data.expect("event data"))
        })
        .collect()
}

fn header<'r>(reply: &'r Reply, name: &str) -> &'r str {
    reply
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} in {:?}", reply.headers))
}

#[tokio::test]
async fn each_message_is_an_event_named_by_its_oneof_member() {
    let edge = edge().await;
    let reply = edge.post("/v1/run/stream", r#"{"query":"q"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(header(&reply, "content-type"), "text/event-stream");
    assert_eq!(header(&reply, "cache-control"), "no-cache");
    assert_eq!(header(&reply, "x-pecr-trace-id"), "T-1");
    assert_eq!(edge.recorder.last().rpc, "RunStream");
    let events = sse_events(&reply);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["step_started", "operator_call", "result"]);
    assert_eq!(
        events[0].1,
        json!({"step_started": {"step": 0, "operators": ["search", "fetch_span"]}})
    );
    // As every unary answer writes them: proto names, enums by name, 64-bit
    // integers as numbers.
    let call = &events[1].1["operator_call"];
    assert_eq!(call["terminal_mode"], "SUPPORTED");
    assert_eq!(call["bytes"], 12_345_678_901_u64);
    assert_eq!(call["evidence_unit_ids"], json!(["e1"]));
    assert_eq!(events[2].1["result"]["response_text"], "q");
    assert_eq!(events[2].1["result"]["terminal_mode"], "SUPPORTED");
}

#[tokio::test]
async fn a_refused_stream_is_an_ordinary_error_response() {
    let edge = edge().await;
    let reply = edge.post("/v1/run/stream", r#"{"query":"refuse"}"#).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(header(&reply, "content-type"), "application/json");
    assert_eq!(reply.json()["code"], "ERR_RATE_LIMITED");

    // The edge's own refusals come first, exactly as on /v1/run.
    let reply = edge.post("/v1/run/stream", r#"{"query":7}"#).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["code"], "ERR_INVALID_PARAMS");
}

#[tokio::test]
async fn a_stream_that_fails_ends_with_an_error_event() {
    let edge = edge().await;
    let reply = edge.post("/v1/run/stream", r#"{"query":"fail"}"#).await;
    assert_eq!(reply.status, 200);
    let events = sse_events(&reply);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["step_started", "error"]);
    assert_eq!(events[1].1["code"], "ERR_SOURCE_UNAVAILABLE");
    assert_eq!(events[1].1["message"], "gateway went away");

    // A status without a PECR detail says no more than any other route.
    let reply = edge.post("/v1/run/stream", r#"{"query":"bare"}"#).await;
    let events = sse_events(&reply);
    assert_eq!(events[1].0, "error");
    assert_eq!(events[1].1["code"], "ERR_INTERNAL");
    assert_eq!(events[1].1["message"], "internal error");
}

#[tokio::test]
async fn a_silent_stream_sends_keep_alive_comments_between_events() {
    let edge = start(EdgeConfig {
        sse_keep_alive: Duration::from_millis(100),
        ..EdgeConfig::default()
    })
    .await;
    // The harness pauses 300 ms before each of the three events.
    let reply = edge.post("/v1/run/stream", r#"{"query":"quiet"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let blocks: Vec<&str> = reply.body.split("\n\n").filter(|b| !b.is_empty()).collect();
    let comments = blocks.iter().filter(|b| **b == ": keep-alive").count();
    assert!(comments >= 3, "a comment in each pause: {:?}", reply.body);
    let events: Vec<&str> = blocks
        .iter()
        .filter(|b| !b.starts_with(':'))
        .filter_map(|b| b.lines().next()?.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["step_started", "operator_call", "result"]);
    assert!(
        !blocks[0].starts_with("event:"),
        "the first pause is filled too"
    );

    // A stream that is never silent that long sends none.
    let reply = edge.post("/v1/run/stream", r#"{"query":"q"}"#).await;
    assert!(!reply.body.contains(": keep-alive"), "{}", reply.body);
}

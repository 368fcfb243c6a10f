//! A server-streaming RPC on the REST edge: a `text/event-stream` of
//! Server-Sent Events, one per message, each `event: <name>` and
//! `data: <message JSON>` as a unary route would answer it. The name is the
//! member set when the message is one oneof (`RunStreamResponse` → `step_started`),
//! else `message`. A status that ends the stream early becomes a last
//! `error` event whose data is the `ErrorResponse` a unary route would
//! answer; a call refused before its first message is answered as a unary
//! error (JSON, with its HTTP status), so auth and validation look the same
//! on every route. A stream silent for `sse_keep_alive` sends a
//! `: keep-alive` comment line.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::DynamicMessage;

use pecr_edge_json::{ERROR_EVENT, EventNames};

use crate::handler::Shared;

/// A comment line: clients ignore it, proxies see the connection in use.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// One SSE event. `data` is single-line JSON, so one `data:` line suffices.
fn frame(name: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The 200 response streaming `messages` as events.
pub(crate) fn event_stream(
    names: Arc<EventNames>,
    shared: Arc<Shared>,
    messages: tonic::Streaming<Bytes>,
    method: String,
) -> Response {
    let events = futures_util::stream::unfold(Some(messages), move |state| {
        let (names, shared, method) = (names.clone(), shared.clone(), method.clone());
        async move {
            let mut messages = state?;
            // `message()` keeps its progress in the stream, so giving up on
            // it for a comment loses nothing.
            let received = tokio::time::timeout(shared.sse_keep_alive, messages.message()).await;
            let Ok(received) = received else {
                return Some((Ok(Bytes::from_static(KEEP_ALIVE)), Some(messages)));
            };
            let (event, next) = match received {
                Ok(None) => return None,
                Ok(Some(bytes)) => match encode(&names, &shared, bytes) {
                    Ok(event) => (event, Some(messages)),
                    Err(reason) => {
                        tracing::error!(
                            rpc.method = %method,
                            error = %reason,
                            "streamed message does not fit the JSON contract"
                        );
                        let internal = tonic::Status::internal("unencodable message");
                        (error_event(&shared, &internal), None)
                    }
                },
                Err(status) => (error_event(&shared, &status), None),
            };
            Some((Ok::<_, std::convert::Infallible>(event), next))
        }
    });
    let mut response = Response::new(Body::from_stream(events));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer responses would hold every event to the end.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn encode(names: &EventNames, shared: &Shared, bytes: Bytes) -> Result<Bytes, String> {
    let message =
        DynamicMessage::decode(names.message().clone(), bytes).map_err(|e| e.to_string())?;
    let json = shared
        .mapping
        .encode_message(&message)
        .map_err(|e| e.to_string())?;
    Ok(frame(&names.name(&message), &json))
}

fn error_event(shared: &Shared, status: &tonic::Status) -> Bytes {
    let (_, body) = shared.errors.status_json(status);
    frame(ERROR_EVENT, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_each() {
        assert_eq!(
            frame("result", br#"{"a":1}"#),
            Bytes::from_static(b"event: result\ndata: {\"a\":1}\n\n")
        );
    }
}

//! A server-streaming RPC on the REST edge: a `text/event-stream` of
//! Server-Sent Events, one per message, each `event: <name>` and
//! `data: <message JSON>` as a unary route would answer it. The name is the
//! member set when the message is one oneof (`RunStreamResponse` → `step_started`),
//! else `message`. A status that ends the stream early becomes a last
//! `error` event whose data is the `ErrorResponse` a unary route would
//! answer; a call refused before its first message is answered as a unary
//! error (JSON, with its HTTP status), so auth and validation look the same
//! on every route.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{DynamicMessage, MessageDescriptor};

use crate::handler::Shared;

/// The event name of a message that is not a single oneof.
const DEFAULT_EVENT: &str = "message";

/// How the messages of one streaming method are framed.
pub(crate) struct EventFraming {
    output: MessageDescriptor,
    /// Whether every field of `output` is a member of its one oneof.
    named_by_member: bool,
}

impl EventFraming {
    pub fn new(output: MessageDescriptor) -> Self {
        let oneofs: Vec<_> = output.oneofs().filter(|o| !o.is_synthetic()).collect();
        let named_by_member = match oneofs.as_slice() {
            [only] => only.fields().count() == output.fields().count(),
            _ => false,
        };
        Self {
            output,
            named_by_member,
        }
    }

    fn event_name(&self, message: &DynamicMessage) -> String {
        if !self.named_by_member {
            return DEFAULT_EVENT.to_owned();
        }
        self.output
            .fields()
            .find(|field| message.has_field(field))
            .map_or_else(|| DEFAULT_EVENT.to_owned(), |field| field.name().to_owned())
    }
}

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
    framing: Arc<EventFraming>,
    shared: Arc<Shared>,
    messages: tonic::Streaming<Bytes>,
    method: String,
) -> Response {
    let events = futures_util::stream::unfold(Some(messages), move |state| {
        let (framing, shared, method) = (framing.clone(), shared.clone(), method.clone());
        async move {
            let mut messages = state?;
            let (event, next) = match messages.message().await {
                Ok(None) => return None,
                Ok(Some(bytes)) => match encode(&framing, &shared, bytes) {
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

fn encode(framing: &EventFraming, shared: &Shared, bytes: Bytes) -> Result<Bytes, String> {
    let message =
        DynamicMessage::decode(framing.output.clone(), bytes).map_err(|e| e.to_string())?;
    let json = shared
        .mapping
        .encode_message(&message)
        .map_err(|e| e.to_string())?;
    Ok(frame(&framing.event_name(&message), &json))
}

fn error_event(shared: &Shared, status: &tonic::Status) -> Bytes {
    let (_, body) = shared.errors.status_json(status);
    frame("error", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> prost_reflect::DescriptorPool {
        prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool")
    }

    #[test]
    fn a_single_oneof_names_events_by_member() {
        let output = pool()
            .get_message_by_name("pecr.v1.RunStreamResponse")
            .expect("RunStreamResponse");
        let framing = EventFraming::new(output.clone());
        let mut message = DynamicMessage::new(output.clone());
        let field = output.get_field_by_name("finalizing").expect("field");
        let finalizing = DynamicMessage::new(field.kind().as_message().expect("message").clone());
        message.set_field(&field, prost_reflect::Value::Message(finalizing));
        assert_eq!(framing.event_name(&message), "finalizing");
        assert_eq!(framing.event_name(&DynamicMessage::new(output)), "message");
    }

    #[test]
    fn other_messages_are_plain_messages() {
        let output = pool()
            .get_message_by_name("pecr.v1.RunResponse")
            .expect("RunResponse");
        let framing = EventFraming::new(output.clone());
        assert_eq!(framing.event_name(&DynamicMessage::new(output)), "message");
    }

    #[test]
    fn frames_are_one_event_each() {
        assert_eq!(
            frame("result", br#"{"a":1}"#),
            Bytes::from_static(b"event: result\ndata: {\"a\":1}\n\n")
        );
    }
}

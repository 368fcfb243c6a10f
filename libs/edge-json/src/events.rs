//! How a server-streaming RPC's messages are named as Server-Sent Events:
//! by the oneof member a message sets, when the message is one oneof
//! (`RunStreamResponse` → `step_started`), else `message`; a stream that
//! fails ends with an `error` event. The edge frames events with it and the
//! OpenAPI document lists the same names.

use prost_reflect::{DynamicMessage, MessageDescriptor};

/// The event name of a message that is not a single oneof.
pub const DEFAULT_EVENT: &str = "message";
/// The event name of the last event of a failed stream.
pub const ERROR_EVENT: &str = "error";

/// The event names of one streamed message type.
#[derive(Debug, Clone)]
pub struct EventNames {
    message: MessageDescriptor,
    /// Whether every field of `message` is a member of its one oneof.
    by_member: bool,
}

impl EventNames {
    pub fn of(message: MessageDescriptor) -> Self {
        let oneofs: Vec<_> = message.oneofs().filter(|o| !o.is_synthetic()).collect();
        let by_member = match oneofs.as_slice() {
            [only] => only.fields().count() == message.fields().count(),
            _ => false,
        };
        Self { message, by_member }
    }

    /// The streamed message type.
    pub fn message(&self) -> &MessageDescriptor {
        &self.message
    }

    /// The name of the event that carries `value`.
    pub fn name(&self, value: &DynamicMessage) -> String {
        if !self.by_member {
            return DEFAULT_EVENT.to_owned();
        }
        self.message
            .fields()
            .find(|field| value.has_field(field))
            .map_or_else(|| DEFAULT_EVENT.to_owned(), |field| field.name().to_owned())
    }

    /// Every name a stream of this type may use, `error` last.
    pub fn all(&self) -> Vec<String> {
        let mut names: Vec<String> = if self.by_member {
            self.message.fields().map(|f| f.name().to_owned()).collect()
        } else {
            vec![DEFAULT_EVENT.to_owned()]
        };
        names.push(ERROR_EVENT.to_owned());
        names
    }
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
        let names = EventNames::of(output.clone());
        let mut message = DynamicMessage::new(output.clone());
        let field = output.get_field_by_name("finalizing").expect("field");
        let finalizing = DynamicMessage::new(field.kind().as_message().expect("message").clone());
        message.set_field(&field, prost_reflect::Value::Message(finalizing));
        assert_eq!(names.name(&message), "finalizing");
        assert_eq!(names.name(&DynamicMessage::new(output)), "message");
        assert_eq!(
            names.all(),
            [
                "session_created",
                "step_started",
                "operator_call",
                "finalizing",
                "result",
                "error"
            ]
        );
    }

    #[test]
    fn other_messages_are_plain_messages() {
        let output = pool()
            .get_message_by_name("pecr.v1.RunResponse")
            .expect("RunResponse");
        let names = EventNames::of(output.clone());
        assert_eq!(names.name(&DynamicMessage::new(output)), "message");
        assert_eq!(names.all(), ["message", "error"]);
    }
}

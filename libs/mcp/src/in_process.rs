//! Requests into the service's own gRPC stack, made as the REST edge
//! makes them: the MCP caller's identity metadata, the in-process marker,
//! the client's address for loopback rules.

use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use crate::Caller;

/// A request of `message` for the in-process stack, with `extra` metadata
/// (e.g. `x-pecr-session-token`) added to the caller's.
pub fn request<T>(
    caller: &Caller,
    message: T,
    extra: &[(&'static str, &str)],
) -> tonic::Request<T> {
    let mut metadata: MetadataMap = caller.metadata.clone();
    for (key, value) in extra {
        if let Ok(value) = AsciiMetadataValue::try_from(*value) {
            metadata.insert(*key, value);
        }
    }
    tonic::Request::from_parts(
        metadata,
        pecr_edge::in_process_extensions(caller.peer),
        message,
    )
}

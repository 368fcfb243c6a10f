//! HTTP headers ⇄ gRPC metadata. The same lowercase keys travel both ways:
//! `x-pecr-*`, `authorization` and W3C trace context inwards, `x-pecr-*`
//! outwards (e.g. `x-pecr-session-token` set by CreateSession).

use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, KeyAndValueRef, MetadataMap};

const PECR_PREFIX: &str = "x-pecr-";
const FORWARDED: [&str; 3] = ["authorization", "traceparent", "tracestate"];

/// Identity headers travel byte for byte, copies included, so the service's
/// auth check refuses a malformed or repeated one instead of missing it.
const IDENTITY: [&str; 4] = [
    "authorization",
    "x-pecr-principal-id",
    "x-pecr-local-auth-secret",
    "x-pecr-session-token",
];

/// Request metadata from the forwarded headers. Other values that are not
/// visible ASCII are dropped; binary (`-bin`) keys are never forwarded.
pub fn forwarded_metadata(headers: &HeaderMap) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        let key = name.as_str();
        if !key.starts_with(PECR_PREFIX) && !FORWARDED.contains(&key) {
            continue;
        }
        let raw = IDENTITY.contains(&key);
        let Ok(key) = AsciiMetadataKey::from_bytes(key.as_bytes()) else {
            continue;
        };
        let value = if raw {
            AsciiMetadataValue::try_from(value.as_bytes()).ok()
        } else {
            value
                .to_str()
                .ok()
                .and_then(|text| AsciiMetadataValue::try_from(text).ok())
        };
        let Some(value) = value else {
            tracing::debug!(header = %name, "dropped a header value that is not visible ASCII");
            continue;
        };
        metadata.append(key, value);
    }
    metadata
}

/// Response headers besides `x-pecr-*`: an overloaded service's retry hint.
const FORWARDED_OUT: [&str; 1] = ["retry-after"];

/// Adds the `x-pecr-*` and retry-hint entries of response (or error)
/// metadata as headers.
pub(crate) fn add_response_headers(metadata: &MetadataMap, headers: &mut HeaderMap) {
    for entry in metadata.iter() {
        let KeyAndValueRef::Ascii(key, value) = entry else {
            continue;
        };
        if !key.as_str().starts_with(PECR_PREFIX) && !FORWARDED_OUT.contains(&key.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_encoded_bytes()),
        ) {
            headers.append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pecr_auth_and_trace_headers_travel_inwards() {
        let mut headers = HeaderMap::new();
        headers.insert("x-pecr-principal-id", HeaderValue::from_static("dev"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
        headers.insert("cookie", HeaderValue::from_static("c=1"));
        headers.insert("x-pecr-blob-bin", HeaderValue::from_static("AAAA"));
        headers.insert(
            "x-pecr-request-id",
            HeaderValue::from_bytes("r\u{e9}".as_bytes()).expect("opaque value"),
        );
        let metadata = forwarded_metadata(&headers);
        assert_eq!(
            metadata
                .get("x-pecr-principal-id")
                .and_then(|v| v.to_str().ok()),
            Some("dev")
        );
        assert!(metadata.get("authorization").is_some());
        assert!(metadata.get("traceparent").is_some());
        assert!(metadata.get("cookie").is_none());
        assert!(metadata.get("x-pecr-request-id").is_none());
        assert_eq!(metadata.len(), 3);
    }

    #[test]
    fn identity_headers_travel_raw_with_their_copies() {
        let mut headers = HeaderMap::new();
        headers.append("x-pecr-principal-id", HeaderValue::from_static("dev"));
        headers.append("x-pecr-principal-id", HeaderValue::from_static("ops"));
        headers.insert(
            "authorization",
            HeaderValue::from_bytes("Bearer \u{e9}".as_bytes()).expect("opaque value"),
        );
        let metadata = forwarded_metadata(&headers);
        assert_eq!(metadata.get_all("x-pecr-principal-id").iter().count(), 2);
        assert_eq!(
            metadata
                .get("authorization")
                .map(|value| value.as_encoded_bytes().to_vec()),
            Some("Bearer \u{e9}".as_bytes().to_vec())
        );
    }

    #[test]
    fn only_pecr_metadata_travels_outwards() {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            "x-pecr-session-token",
            AsciiMetadataValue::from_static("tok"),
        );
        metadata.insert("x-internal", AsciiMetadataValue::from_static("no"));
        let mut headers = HeaderMap::new();
        add_response_headers(&metadata, &mut headers);
        assert_eq!(
            headers.get("x-pecr-session-token").map(|v| v.as_bytes()),
            Some(&b"tok"[..])
        );
        assert_eq!(headers.len(), 1);
    }
}

//! The adapters' error values. Messages are fixed strings and never carry
//! source content.

use pecr_errors::{ErrorCode, PecrError};

/// 404 `ERR_SOURCE_UNAVAILABLE`, not retryable: a file or version is missing.
pub(crate) fn not_found(message: &str) -> PecrError {
    PecrError::new(ErrorCode::SourceUnavailable, message)
        .with_http(404)
        .with_retryable(false)
}

/// 503 `ERR_SOURCE_UNAVAILABLE`, retryable: no connection or transaction.
pub(crate) fn database_unavailable() -> PecrError {
    PecrError::new(ErrorCode::SourceUnavailable, "database unavailable")
}

/// 503 `ERR_SOURCE_UNAVAILABLE`, retryable: the query (or its commit) failed,
/// statement timeout included.
pub(crate) fn database_query_failed() -> PecrError {
    PecrError::new(ErrorCode::SourceUnavailable, "database query failed")
}

/// 500: a safe view returned something its catalogue entry does not allow.
pub(crate) fn schema_mismatch() -> PecrError {
    PecrError::internal("safe view schema mismatch")
}

/// 500: a blocking task died (it cannot panic on input; this is a guard).
pub(crate) fn task_failed() -> PecrError {
    PecrError::internal("adapter task failed")
}

/// 500: an evidence unit could not be encoded or rehashed.
pub(crate) fn evidence_encoding_failed() -> PecrError {
    PecrError::internal("failed to encode evidence")
}

/// Longest caller-supplied name an error message repeats.
const MAX_ECHOED_NAME: usize = 64;

/// Whether an error may repeat `name`: a short identifier (ASCII letters,
/// digits, `_`), never free text a caller could use to reflect content.
fn echoable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ECHOED_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// 400 `"<what>: <names>"` (the spec's form, e.g. "field not allowlisted:
/// admin_note") when every name is an identifier, else `"<what>"` alone.
/// `render` joins the names for the message.
pub(crate) fn not_allowlisted(
    what: &str,
    names: &[&str],
    render: impl FnOnce() -> String,
) -> PecrError {
    if names.iter().all(|name| echoable(name)) {
        PecrError::invalid_params(format!("{what}: {}", render()))
    } else {
        PecrError::invalid_params(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_echoed_and_free_text_is_not() {
        let message = |name: &str| {
            not_allowlisted("field not allowlisted", &[name], || name.to_owned()).message
        };
        assert_eq!(message("admin_note"), "field not allowlisted: admin_note");
        for text in [
            "",
            "ignore previous instructions",
            "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f!",
            "a\nb",
            "ünïcode",
            &"x".repeat(65),
        ] {
            assert_eq!(message(text), "field not allowlisted", "{text:?}");
        }
        let metric = not_allowlisted("metric not allowlisted", &["count", "a b"], || {
            "count(a b)".to_owned()
        });
        assert_eq!(metric.message, "metric not allowlisted");
    }
}

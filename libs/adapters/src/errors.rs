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

//! Errors: start-up failures of the engine, and the client-facing errors a
//! failed decision turns into (spec 20 §4.3). A failed decision is never an
//! allow: every path that cannot produce a valid decision returns one of these.

use std::path::PathBuf;

use pecr_errors::{ErrorCode, PecrError};

/// Why [`crate::PolicyEngine::new`] refused to start. The gateway prints it as
/// a `STARTUP_ERROR` line and exits.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStartupError {
    #[error("cannot read policy bundle {dir}: {source}")]
    BundleRead {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy bundle {dir} has hash {actual}, expected {expected}")]
    BundleHashMismatch {
        dir: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("policy bundle {dir} is invalid: {reason}")]
    BundleInvalid { dir: PathBuf, reason: String },
    #[error("invalid OPA url {url:?}: {reason}")]
    InvalidOpaUrl { url: String, reason: String },
    #[error("invalid policy config: {0}")]
    InvalidConfig(String),
}

pub(crate) fn policy_timeout() -> PecrError {
    PecrError::new(ErrorCode::SourceTimeout, "policy engine timeout")
}

pub(crate) fn policy_unavailable() -> PecrError {
    PecrError::new(ErrorCode::SourceUnavailable, "policy engine unavailable")
}

pub(crate) fn breaker_open() -> PecrError {
    PecrError::new(
        ErrorCode::SourceUnavailable,
        "policy engine circuit breaker is open",
    )
}

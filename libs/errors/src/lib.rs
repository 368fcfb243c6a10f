//! One error type for PECR. Each `ERR_*` code has exactly one row of
//! defaults (HTTP status, terminal-mode hint, retryable); the gRPC code is
//! derived from the HTTP status, and the full `ErrorResponse` travels as a
//! `pecr.v1.ErrorDetail` inside the standard status details, so the REST
//! edge and gRPC clients rebuild the exact error without guessing.

mod code;
mod status;

pub use code::ErrorCode;
pub use pecr_proto::v1::TerminalMode;
pub use status::{ERROR_DETAIL_TYPE_URL, grpc_code_for_http};

use pecr_proto::v1::ErrorResponse;

/// A PECR error as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PecrError {
    pub code: ErrorCode,
    pub message: String,
    pub http_status: u16,
    pub hint: TerminalMode,
    pub retryable: bool,
}

pub type PecrResult<T> = Result<T, PecrError>;

impl PecrError {
    /// An error with the code's default status, hint and retryable flag.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let defaults = code.defaults();
        Self {
            code,
            message: message.into(),
            http_status: defaults.http_status,
            hint: defaults.hint,
            retryable: defaults.retryable,
        }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Every ledger read or write failure looks the same to clients.
    pub fn ledger_unavailable() -> Self {
        Self::new(ErrorCode::LedgerUnavailable, "ledger unavailable")
    }

    /// An RPC that a later release implements.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            ErrorCode::Internal,
            format!("{what} is not implemented yet"),
        )
        .with_http(501)
    }

    pub fn with_http(mut self, http_status: u16) -> Self {
        self.http_status = http_status;
        self
    }

    pub fn with_hint(mut self, hint: TerminalMode) -> Self {
        self.hint = hint;
        self
    }

    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The REST error body.
    pub fn to_error_response(&self) -> ErrorResponse {
        ErrorResponse {
            code: self.code.as_str().to_owned(),
            message: self.message.clone(),
            terminal_mode_hint: self.hint as i32,
            retryable: self.retryable,
            detail: None,
        }
    }
}

impl std::fmt::Display for PecrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_str(),
            self.http_status,
            self.message
        )
    }
}

impl std::error::Error for PecrError {}

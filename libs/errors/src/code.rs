//! The error-code table of the contract: one row per code.

use pecr_proto::v1::TerminalMode;

/// Stable machine codes (`ERR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    AuthRequired,
    AuthInvalid,
    AuthUnavailable,
    PolicyDenied,
    RateLimited,
    BudgetExceeded,
    InvalidParams,
    SourceTimeout,
    SourceUnavailable,
    DbUnavailable,
    LedgerUnavailable,
    Internal,
    Overloaded,
    ReplayNotFound,
    EvaluationNotFound,
    ReplayStore,
    RlmFeatureDisabled,
    RlmBridgeFailed,
    RlmBridgeInternal,
    RlmBridgeProtocol,
    RlmBridgeScriptNotFound,
    RlmBridgeSpawnFailed,
}

/// The default HTTP status, hint and retryable flag of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeDefaults {
    pub http_status: u16,
    pub hint: TerminalMode,
    pub retryable: bool,
}

use ErrorCode::*;
use TerminalMode::{InsufficientEvidence, InsufficientPermission, SourceUnavailable as SourceDown};

const TABLE: &[(ErrorCode, &str, u16, TerminalMode, bool)] = &[
    (
        AuthRequired,
        "ERR_AUTH_REQUIRED",
        401,
        InsufficientPermission,
        false,
    ),
    (
        AuthInvalid,
        "ERR_AUTH_INVALID",
        401,
        InsufficientPermission,
        false,
    ),
    (
        AuthUnavailable,
        "ERR_AUTH_UNAVAILABLE",
        503,
        SourceDown,
        true,
    ),
    (
        PolicyDenied,
        "ERR_POLICY_DENIED",
        403,
        InsufficientPermission,
        false,
    ),
    (
        RateLimited,
        "ERR_RATE_LIMITED",
        429,
        InsufficientPermission,
        true,
    ),
    (
        BudgetExceeded,
        "ERR_BUDGET_EXCEEDED",
        429,
        InsufficientEvidence,
        false,
    ),
    (
        InvalidParams,
        "ERR_INVALID_PARAMS",
        400,
        InsufficientEvidence,
        false,
    ),
    (SourceTimeout, "ERR_SOURCE_TIMEOUT", 504, SourceDown, true),
    (
        SourceUnavailable,
        "ERR_SOURCE_UNAVAILABLE",
        503,
        SourceDown,
        true,
    ),
    (DbUnavailable, "ERR_DB_UNAVAILABLE", 503, SourceDown, true),
    (
        LedgerUnavailable,
        "ERR_LEDGER_UNAVAILABLE",
        503,
        SourceDown,
        true,
    ),
    (Internal, "ERR_INTERNAL", 500, SourceDown, false),
    (Overloaded, "ERR_OVERLOADED", 503, SourceDown, true),
    (
        ReplayNotFound,
        "ERR_REPLAY_NOT_FOUND",
        404,
        InsufficientPermission,
        false,
    ),
    (
        EvaluationNotFound,
        "ERR_EVALUATION_NOT_FOUND",
        404,
        InsufficientPermission,
        false,
    ),
    (ReplayStore, "ERR_REPLAY_STORE", 500, SourceDown, true),
    (
        RlmFeatureDisabled,
        "ERR_RLM_FEATURE_DISABLED",
        500,
        InsufficientEvidence,
        false,
    ),
    (
        RlmBridgeFailed,
        "ERR_RLM_BRIDGE_FAILED",
        500,
        SourceDown,
        false,
    ),
    (
        RlmBridgeInternal,
        "ERR_RLM_BRIDGE_INTERNAL",
        500,
        SourceDown,
        false,
    ),
    (
        RlmBridgeProtocol,
        "ERR_RLM_BRIDGE_PROTOCOL",
        500,
        SourceDown,
        false,
    ),
    (
        RlmBridgeScriptNotFound,
        "ERR_RLM_BRIDGE_SCRIPT_NOT_FOUND",
        500,
        SourceDown,
        false,
    ),
    (
        RlmBridgeSpawnFailed,
        "ERR_RLM_BRIDGE_SPAWN_FAILED",
        500,
        SourceDown,
        false,
    ),
];

impl ErrorCode {
    fn row(self) -> &'static (ErrorCode, &'static str, u16, TerminalMode, bool) {
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[11]) // ERR_INTERNAL; every code has a row (tested).
    }

    /// The wire spelling, e.g. `ERR_INVALID_PARAMS`.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    pub fn defaults(self) -> CodeDefaults {
        let row = self.row();
        CodeDefaults {
            http_status: row.2,
            hint: row.3,
            retryable: row.4,
        }
    }

    /// Parses a wire spelling; unknown codes are None.
    pub fn parse(text: &str) -> Option<Self> {
        TABLE.iter().find(|row| row.1 == text).map(|row| row.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_row() {
        for row in TABLE {
            assert_eq!(row.0.as_str(), row.1);
            assert_eq!(ErrorCode::parse(row.1), Some(row.0));
        }
        assert_eq!(TABLE.len(), 22);
        assert_eq!(ErrorCode::parse("ERR_NOPE"), None);
    }

    #[test]
    fn overload_is_a_retryable_503_that_grpc_sees_as_resource_exhausted() {
        let d = ErrorCode::Overloaded.defaults();
        assert_eq!(
            (d.http_status, d.hint, d.retryable),
            (503, SourceDown, true)
        );
        let status = tonic::Status::from(crate::PecrError::new(ErrorCode::Overloaded, "busy"));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn defaults_follow_the_contract() {
        let d = ErrorCode::LedgerUnavailable.defaults();
        assert_eq!(
            (d.http_status, d.hint, d.retryable),
            (503, SourceDown, true)
        );
        let d = ErrorCode::InvalidParams.defaults();
        assert_eq!(
            (d.http_status, d.hint, d.retryable),
            (400, InsufficientEvidence, false)
        );
    }
}

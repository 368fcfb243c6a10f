//! PecrError ⇄ tonic::Status, with the ErrorResponse in the status details.

use prost::Message;
use tonic::Code;

use pecr_proto::error_detail::status_with_detail;
use pecr_proto::google::rpc;
use pecr_proto::v1::{ErrorDetail, TerminalMode};

use crate::{ErrorCode, PecrError};

pub use pecr_proto::error_detail::ERROR_DETAIL_TYPE_URL;

/// The gRPC code for an HTTP status, as the contract suggests.
pub fn grpc_code_for_http(http_status: u16) -> Code {
    match http_status {
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        502 | 503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

impl From<PecrError> for tonic::Status {
    fn from(error: PecrError) -> Self {
        // An overloaded server is out of a resource, not down: gRPC clients
        // back off on RESOURCE_EXHAUSTED; REST clients see 503.
        let code = match error.code {
            ErrorCode::Overloaded => Code::ResourceExhausted,
            _ => grpc_code_for_http(error.http_status),
        };
        status_with_detail(code, error.to_error_response(), error.http_status)
    }
}

impl PecrError {
    /// The PECR error carried in a status, if it carries one.
    pub fn from_status(status: &tonic::Status) -> Option<Self> {
        let details = rpc::Status::decode(status.details()).ok()?;
        let any = details
            .details
            .iter()
            .find(|any| any.type_url == ERROR_DETAIL_TYPE_URL)?;
        Self::from_detail(ErrorDetail::decode(any.value.as_slice()).ok()?)
    }

    /// The error an `ErrorDetail` describes (one outcome of a batch, say).
    pub fn from_detail(detail: ErrorDetail) -> Option<Self> {
        let response = detail.error?;
        let code = ErrorCode::parse(&response.code)?;
        Some(Self {
            code,
            message: response.message,
            http_status: u16::try_from(detail.http_status).ok()?,
            hint: TerminalMode::try_from(response.terminal_mode_hint)
                .unwrap_or(TerminalMode::SourceUnavailable),
            retryable: response.retryable,
        })
    }

    /// The error as an `ErrorDetail`: its REST body and HTTP status.
    pub fn to_error_detail(&self) -> ErrorDetail {
        ErrorDetail {
            error: Some(self.to_error_response()),
            http_status: u32::from(self.http_status),
        }
    }

    /// The PECR error carried in a status, or `fallback` for statuses that
    /// carry none (connection refused, deadline, a foreign server).
    pub fn from_status_or(status: &tonic::Status, fallback: impl FnOnce() -> Self) -> Self {
        Self::from_status(status).unwrap_or_else(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_survives_a_round_trip_through_a_status() {
        let error = PecrError::invalid_params("unknown session_id").with_http(404);
        let status = tonic::Status::from(error.clone());
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "unknown session_id");
        assert_eq!(PecrError::from_status(&status), Some(error));
    }

    #[test]
    fn bad_gateway_and_unavailable_share_a_code_but_not_a_status() {
        let bad_gateway =
            PecrError::new(ErrorCode::SourceUnavailable, "gateway request failed").with_http(502);
        let status = tonic::Status::from(bad_gateway);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            PecrError::from_status(&status).map(|e| e.http_status),
            Some(502)
        );
    }

    #[test]
    fn a_plain_status_has_no_pecr_error() {
        let status = tonic::Status::unavailable("connection refused");
        assert_eq!(PecrError::from_status(&status), None);
        let fallback = PecrError::from_status_or(&status, PecrError::ledger_unavailable);
        assert_eq!(fallback.code, ErrorCode::LedgerUnavailable);
    }

    #[test]
    fn a_malformed_request_is_the_invalid_params_error() {
        let status = pecr_proto::codec::malformed_request();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            PecrError::from_status(&status),
            Some(PecrError::invalid_params(
                pecr_proto::codec::MALFORMED_REQUEST
            ))
        );
    }

    #[test]
    fn not_implemented_is_501_unimplemented() {
        let status = tonic::Status::from(PecrError::not_implemented("GatewayService/Finalize"));
        assert_eq!(status.code(), Code::Unimplemented);
    }
}

//! The one way a PECR error travels in a gRPC status: a `google.rpc.Status`
//! in the status details holding a `pecr.v1.ErrorDetail` (the REST body and
//! its HTTP status). `pecr-errors` and the request codec both build it here.

use prost::Message;

use crate::google::rpc;
use crate::v1::{ErrorDetail, ErrorResponse};

pub const ERROR_DETAIL_TYPE_URL: &str = "type.googleapis.com/pecr.v1.ErrorDetail";

/// A status with `code`, the error's message, and the detail.
pub fn status_with_detail(
    code: tonic::Code,
    error: ErrorResponse,
    http_status: u16,
) -> tonic::Status {
    let message = error.message.clone();
    let detail = ErrorDetail {
        error: Some(error),
        http_status: u32::from(http_status),
    };
    let details = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: ERROR_DETAIL_TYPE_URL.to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(code, message, details.encode_to_vec().into())
}

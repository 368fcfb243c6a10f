//! Tool results: contract messages as the REST contract writes them, and
//! PECR errors as tool errors. A refusal is never a protocol error: the
//! agent reads `isError: true`, the PECR code and message as text, and the
//! `ErrorDetail` (`{"error": ErrorResponse, "http_status": …}`) as
//! structured content.

use std::sync::OnceLock;

use pecr_edge_json::DecodeError;
use pecr_errors::PecrError;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

/// The contract's descriptors, decoded once for every MCP use.
pub fn contract_pool() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).map_err(|err| err.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `message` (of contract type `full_name`) as the REST edge writes it.
pub fn contract_json<M: Message>(full_name: &str, message: &M) -> Result<Value, PecrError> {
    let pool = contract_pool().map_err(|_| PecrError::internal("descriptor set unavailable"))?;
    let descriptor = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| PecrError::internal(format!("{full_name} is not in the contract")))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|_| PecrError::internal("a reply does not fit its contract type"))?;
    let bytes = pecr_edge_json::message_json(pool, &dynamic).map_err(PecrError::internal)?;
    serde_json::from_slice(&bytes).map_err(|_| PecrError::internal("a reply is not JSON"))
}

/// A refusal as a tool error.
pub fn tool_error(error: &PecrError) -> CallToolResult {
    let text = format!("{}: {}", error.code.as_str(), error.message);
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = contract_json("pecr.v1.ErrorDetail", &error.to_error_detail()).ok();
    result
}

/// The PECR error a failed in-process call carries, or `ERR_INTERNAL` for
/// a status without one (the cause is logged, never shown).
pub fn pecr_error_of(status: &tonic::Status) -> PecrError {
    PecrError::from_status_or(status, || {
        tracing::error!(code = ?status.code(), "mcp.call_failed: a status without a PECR detail");
        PecrError::internal("internal error")
    })
}

/// A failed in-process call as a tool error.
pub fn status_error(status: &tonic::Status) -> CallToolResult {
    tool_error(&pecr_error_of(status))
}

/// An in-process call's reply as the contract's JSON, or the tool error
/// its refusal is.
pub fn reply_json<M: Message>(
    full_name: &str,
    reply: Result<tonic::Response<M>, tonic::Status>,
) -> Result<Value, CallToolResult> {
    let message = reply.map_err(|status| status_error(&status))?.into_inner();
    contract_json(full_name, &message).map_err(|error| tool_error(&error))
}

/// Arguments the contract's decoder refused: `ERR_INVALID_PARAMS` whose
/// `detail` names the member and why, as the REST edge's 400 does.
pub fn invalid_arguments(refused: &DecodeError) -> CallToolResult {
    let error = PecrError::invalid_params("invalid arguments");
    let mut detail = error.to_error_detail();
    if let Some(response) = detail.error.as_mut() {
        response.detail = Some(refused.detail_json());
    }
    let text = format!("ERR_INVALID_PARAMS: invalid arguments: {refused}");
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = contract_json("pecr.v1.ErrorDetail", &detail).ok();
    result
}

/// A short label of an evidence unit (or of its identity, as a run's
/// cited evidence gives it): its id, source, object and version.
pub fn evidence_label(unit: &Value) -> String {
    let text = |key: &str| unit.get(key).and_then(Value::as_str).unwrap_or("?");
    format!(
        "evidence {} ({} {} @ {})",
        text("evidence_unit_id"),
        text("source_system"),
        text("object_id"),
        text("version_id")
    )
}

/// A success: `structured` as structured content, `text` for clients (and
/// models) that read text only.
pub fn success(structured: Value, text: String) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

#[cfg(test)]
mod tests {
    use pecr_errors::ErrorCode;

    use super::*;

    #[test]
    fn a_refusal_is_a_tool_error_carrying_the_pecr_code() {
        let error = PecrError::new(ErrorCode::PolicyDenied, "policy denied");
        let result = tool_error(&error);
        assert_eq!(result.is_error, Some(true));
        let structured = result.structured_content.expect("structured content");
        assert_eq!(structured["error"]["code"], "ERR_POLICY_DENIED");
        assert_eq!(structured["error"]["message"], "policy denied");
        assert_eq!(structured["http_status"], 403);
        let text = serde_json::to_value(&result.content).expect("content");
        assert_eq!(text[0]["text"], "ERR_POLICY_DENIED: policy denied");
    }

    #[test]
    fn a_status_keeps_its_detail_and_one_without_is_internal() {
        let status =
            tonic::Status::from(PecrError::new(ErrorCode::BudgetExceeded, "budget exceeded"));
        let structured = status_error(&status).structured_content.expect("detail");
        assert_eq!(structured["error"]["code"], "ERR_BUDGET_EXCEEDED");
        let bare = tonic::Status::unavailable("connection refused to 10.0.0.1");
        let result = status_error(&bare);
        let structured = result.structured_content.expect("detail");
        assert_eq!(structured["error"]["code"], "ERR_INTERNAL");
        assert!(!structured.to_string().contains("10.0.0.1"));
    }
}

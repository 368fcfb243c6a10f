//! The one renderer of every non-2xx JSON response of the edge: gRPC
//! statuses (with their `pecr.v1.ErrorDetail`) and the edge's own
//! rejections all become `ErrorResponse` bodies here.

use std::sync::{Arc, OnceLock};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use pecr_edge_json::{DecodeError, ERROR_DETAIL, ERROR_RESPONSE, JsonMapping};
use pecr_errors::{ERROR_DETAIL_TYPE_URL, PecrError};
use pecr_proto::v1::ErrorResponse;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

use crate::EdgeError;
use crate::metadata::add_response_headers;

/// Written when even the renderer fails; equal to what it would render.
const INTERNAL_BODY: &str = r#"{"code":"ERR_INTERNAL","message":"internal error","terminal_mode_hint":"SOURCE_UNAVAILABLE","retryable":false}"#;

/// What the edge itself refuses, before any gRPC call. The 400s carry
/// the refused field and the reason, which the body's `detail` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Malformed JSON, wrong types, unknown or missing fields, no body.
    InvalidBody(DecodeError),
    /// Missing or non-JSON `content-type`.
    UnsupportedMediaType,
    /// Body over `max_body_bytes`.
    TooLarge,
    /// A path parameter that is not UTF-8 or does not parse for its field.
    InvalidPath(DecodeError),
    /// A query parameter that does not parse for its field, or a repeated
    /// singular parameter.
    InvalidQuery(DecodeError),
}

#[derive(Debug, Clone)]
pub(crate) struct ErrorRenderer {
    mapping: Arc<JsonMapping>,
    error_response: MessageDescriptor,
    error_detail: MessageDescriptor,
}

impl ErrorRenderer {
    pub fn new(pool: &DescriptorPool, mapping: Arc<JsonMapping>) -> Result<Self, EdgeError> {
        let find = |name: &str| {
            pool.get_message_by_name(name)
                .ok_or_else(|| EdgeError::MissingDescriptor(name.to_owned()))
        };
        Ok(Self {
            mapping,
            error_response: find(ERROR_RESPONSE)?,
            error_detail: find(ERROR_DETAIL)?,
        })
    }

    /// An edge rejection: always a 4xx `ERR_INVALID_PARAMS`; a 400 names
    /// the refused field in `detail`.
    pub fn rejection(&self, rejection: &Rejection) -> Response {
        let (status, message, refusal) = match rejection {
            Rejection::InvalidBody(err) => {
                (StatusCode::BAD_REQUEST, "invalid JSON body", Some(err))
            }
            Rejection::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid JSON body",
                None,
            ),
            Rejection::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid JSON body", None),
            Rejection::InvalidPath(err) => {
                (StatusCode::BAD_REQUEST, "invalid path parameter", Some(err))
            }
            Rejection::InvalidQuery(err) => {
                (StatusCode::BAD_REQUEST, "invalid query string", Some(err))
            }
        };
        tracing::debug!(
            ?rejection,
            status = status.as_u16(),
            "edge rejected a request"
        );
        let error = PecrError::invalid_params(message).with_http(status.as_u16());
        let mut response = error.to_error_response();
        response.detail = refusal.map(DecodeError::detail_json);
        self.error_response(status, &response)
    }

    /// A gRPC error status. With a `pecr.v1.ErrorDetail`: its HTTP status
    /// and `ErrorResponse`, exactly. Without: 500 `ERR_INTERNAL` with a
    /// generic message (the real one is logged).
    pub fn status(&self, status: &tonic::Status) -> Response {
        let (http, body) = self.status_json(status);
        let mut response = json_response(http, body);
        add_response_headers(status.metadata(), response.headers_mut());
        response
    }

    /// The HTTP status and `ErrorResponse` JSON of a gRPC error status, as
    /// [`Self::status`] answers them (also the data of a stream's `error`
    /// event).
    pub fn status_json(&self, status: &tonic::Status) -> (StatusCode, Vec<u8>) {
        let encoded = self.detail(status).and_then(|(http, error)| {
            self.mapping
                .encode_message(&error)
                .inspect_err(
                    |err| tracing::warn!(error = %err, "ErrorResponse could not be written"),
                )
                .ok()
                .map(|body| (http, body))
        });
        encoded.unwrap_or_else(|| {
            tracing::warn!(
                grpc.code = ?status.code(),
                grpc.message = status.message(),
                "gRPC status without a PECR error detail"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL_BODY.as_bytes().to_vec(),
            )
        })
    }

    /// 500 `ERR_INTERNAL`, for responses the edge cannot write.
    pub fn internal(&self) -> Response {
        internal_response()
    }

    pub fn pecr(&self, error: &PecrError) -> Response {
        let status = StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        self.error_response(status, &error.to_error_response())
    }

    fn error_response(&self, status: StatusCode, error: &ErrorResponse) -> Response {
        let bytes = error.encode_to_vec();
        match DynamicMessage::decode(self.error_response.clone(), bytes.as_slice()) {
            Ok(message) => self.render(status, &message),
            Err(_) => internal_response(),
        }
    }

    /// The HTTP status and ErrorResponse carried in a status, if valid.
    fn detail(&self, status: &tonic::Status) -> Option<(StatusCode, DynamicMessage)> {
        let details = pecr_proto::google::rpc::Status::decode(status.details()).ok()?;
        let any = details
            .details
            .iter()
            .find(|any| any.type_url == ERROR_DETAIL_TYPE_URL)?;
        let detail =
            DynamicMessage::decode(self.error_detail.clone(), any.value.as_slice()).ok()?;
        let http = match detail.get_field_by_name("http_status").as_deref() {
            Some(Value::U32(code)) => u16::try_from(*code).ok()?,
            _ => return None,
        };
        let http = StatusCode::from_u16(http)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())?;
        if !detail.has_field_by_name("error") {
            return None;
        }
        let error = detail.get_field_by_name("error")?.as_message()?.clone();
        let code_set = matches!(
            error.get_field_by_name("code").as_deref(),
            Some(Value::String(code)) if !code.is_empty()
        );
        code_set.then_some((http, error))
    }

    fn render(&self, status: StatusCode, error: &DynamicMessage) -> Response {
        match self.mapping.encode_message(error) {
            Ok(body) => json_response(status, body),
            Err(err) => {
                tracing::warn!(error = %err, "ErrorResponse could not be written");
                internal_response()
            }
        }
    }
}

/// Renders a PECR error with a renderer over pecr-proto's own descriptors
/// (for callers that have no router at hand).
pub(crate) fn render_pecr(error: &PecrError) -> Response {
    static RENDERER: OnceLock<Option<ErrorRenderer>> = OnceLock::new();
    let renderer = RENDERER.get_or_init(|| {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).ok()?;
        let mapping = Arc::new(JsonMapping::new(&pool, &[]));
        ErrorRenderer::new(&pool, mapping).ok()
    });
    match renderer {
        Some(renderer) => renderer.pecr(error),
        None => internal_response(),
    }
}

fn internal_response() -> Response {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        INTERNAL_BODY.as_bytes().to_vec(),
    )
}

/// A JSON response with the given status and body bytes.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn renderer() -> ErrorRenderer {
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool");
        let mapping = Arc::new(JsonMapping::new(&pool, &[]));
        ErrorRenderer::new(&pool, mapping).expect("renderer")
    }

    fn body(response: Response) -> (u16, String) {
        let status = response.status().as_u16();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = runtime
            .block_on(response.into_body().collect())
            .expect("body")
            .to_bytes();
        (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
    }

    #[test]
    fn the_fallback_body_is_what_the_renderer_writes() {
        let (status, text) = body(renderer().pecr(&PecrError::internal("internal error")));
        assert_eq!((status, text.as_str()), (500, INTERNAL_BODY));
    }

    #[test]
    fn statuses_without_a_valid_detail_are_internal() {
        let renderer = renderer();
        let (status, text) = body(renderer.status(&tonic::Status::internal("db password wrong")));
        assert_eq!((status, text.as_str()), (500, INTERNAL_BODY));
        let not_an_error = tonic::Status::from(PecrError::invalid_params("x").with_http(200));
        assert_eq!(body(renderer.status(&not_an_error)).0, 500);
        let mut blank = PecrError::invalid_params("x");
        blank.hint = pecr_errors::TerminalMode::Unspecified;
        assert_eq!(body(renderer.status(&tonic::Status::from(blank))).0, 500);
    }

    #[test]
    fn rejections_are_error_responses() {
        let renderer = renderer();
        let (status, text) = body(renderer.rejection(&Rejection::TooLarge));
        assert_eq!(status, 413);
        assert_eq!(
            text,
            r#"{"code":"ERR_INVALID_PARAMS","message":"invalid JSON body","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false}"#
        );
        assert_eq!(
            body(renderer.rejection(&Rejection::UnsupportedMediaType)).0,
            415
        );
        let refusal = DecodeError::new(Some("budget.max_bytes".into()), "expected an integer");
        assert_eq!(
            body(renderer.rejection(&Rejection::InvalidBody(refusal))),
            (
                400,
                r#"{"code":"ERR_INVALID_PARAMS","message":"invalid JSON body","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false,"detail":{"field":"budget.max_bytes","reason":"expected an integer"}}"#.to_owned()
            )
        );
        let whole = DecodeError::new(None, "body is not UTF-8");
        assert!(
            body(renderer.rejection(&Rejection::InvalidBody(whole)))
                .1
                .ends_with(r#""detail":{"reason":"body is not UTF-8"}}"#)
        );
        let query = DecodeError::new(Some("limit".into()), "given twice");
        assert!(
            body(renderer.rejection(&Rejection::InvalidQuery(query)))
                .1
                .contains(r#""message":"invalid query string","terminal_mode_hint":"INSUFFICIENT_EVIDENCE","retryable":false,"detail":{"field":"limit","reason":"given twice"}}"#)
        );
    }

    #[test]
    fn pecr_errors_render_without_a_router() {
        let error = PecrError::new(
            pecr_errors::ErrorCode::AuthRequired,
            "missing local auth secret",
        );
        let (status, text) = body(render_pecr(&error));
        assert_eq!(status, 401);
        assert_eq!(
            text,
            r#"{"code":"ERR_AUTH_REQUIRED","message":"missing local auth secret","terminal_mode_hint":"INSUFFICIENT_PERMISSION","retryable":false}"#
        );
    }
}

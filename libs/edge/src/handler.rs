//! One REST request: body limit → content type → transcode → in-process
//! gRPC call → transcode back (or render the error).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use pecr_edge_json::{Binding, BodyRule, DecodeError, EventNames, JsonMapping, parse_body};
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, MessageDescriptor, Value};

use crate::GrpcStack;
use crate::call;
use crate::error_response::{ErrorRenderer, Rejection, json_response};
use crate::metadata::{add_response_headers, forwarded_metadata};
use crate::sse;

/// What every route shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub mapping: Arc<JsonMapping>,
    pub errors: ErrorRenderer,
    pub max_body_bytes: usize,
    pub sse_keep_alive: std::time::Duration,
}

/// One bound RPC with the service that answers it.
pub(crate) struct Route<S> {
    pub binding: Binding,
    grpc_path: PathAndQuery,
    shared: Arc<Shared>,
    service: S,
    /// Field paths of the path variables, by position (`v0`, `v1`, …).
    variables: Vec<Vec<FieldDescriptor>>,
    /// Top-level fields bound by the path (refused in a `*` body).
    path_bound: Vec<FieldDescriptor>,
    /// Top-level fields filled from query parameters.
    query_fields: Vec<FieldDescriptor>,
    /// Set for a server-streaming method, answered as Server-Sent Events.
    events: Option<Arc<EventNames>>,
}

impl<S> Route<S> {
    pub fn new(binding: Binding, grpc_path: PathAndQuery, shared: Arc<Shared>, service: S) -> Self {
        let variables = binding.variables().map(|(_, path)| path.to_vec()).collect();
        let path_bound = binding.path_bound_fields();
        let query_fields = binding.query_fields();
        let events = binding
            .method
            .is_server_streaming()
            .then(|| Arc::new(EventNames::of(binding.method.output())));
        Self {
            events,
            binding,
            grpc_path,
            shared,
            service,
            variables,
            path_bound,
            query_fields,
        }
    }
}

impl<S> Route<S>
where
    S: GrpcStack,
{
    pub async fn handle(self: Arc<Self>, request: Request) -> Response {
        let errors = &self.shared.errors;
        let (mut parts, body) = request.into_parts();
        let message = match self.request_message(&mut parts, body).await {
            Ok(message) => message,
            Err(rejection) => return errors.rejection(&rejection),
        };

        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        let request = tonic::Request::from_parts(
            forwarded_metadata(&parts.headers),
            crate::in_process_extensions(peer),
            Bytes::from(message.encode_to_vec()),
        );
        if let Some(names) = &self.events {
            return self.stream(names.clone(), request).await;
        }
        let result = call::unary(self.service.clone(), self.grpc_path.clone(), request).await;
        match result {
            Ok(response) => self.response(response),
            Err(status) => errors.status(&status),
        }
    }

    async fn stream(&self, names: Arc<EventNames>, request: tonic::Request<Bytes>) -> Response {
        let path = self.grpc_path.clone();
        match call::server_streaming(self.service.clone(), path, request).await {
            Ok(response) => {
                let (metadata, messages, _) = response.into_parts();
                let method = self.binding.method.full_name().to_owned();
                let mut response = sse::event_stream(names, self.shared.clone(), messages, method);
                add_response_headers(&metadata, response.headers_mut());
                response
            }
            Err(status) => self.shared.errors.status(&status),
        }
    }

    fn response(&self, response: tonic::Response<Bytes>) -> Response {
        let (metadata, bytes, _) = response.into_parts();
        let output = self.binding.method.output();
        let encoded = DynamicMessage::decode(output, bytes)
            .map_err(|err| err.to_string())
            .and_then(|message| {
                match &self.binding.response_body {
                    None => self.shared.mapping.encode_message(&message),
                    Some(field) => self.shared.mapping.encode_field(&message, field),
                }
                .map_err(|err| err.to_string())
            });
        match encoded {
            Ok(body) => {
                let mut response = json_response(StatusCode::OK, body);
                add_response_headers(&metadata, response.headers_mut());
                response
            }
            Err(reason) => {
                tracing::error!(
                    rpc.method = self.binding.method.full_name(),
                    error = %reason,
                    "response does not fit the JSON contract"
                );
                self.shared.errors.internal()
            }
        }
    }

    /// The request message from body, path and query, in that order (path
    /// variables override anything a body could say).
    async fn request_message(
        &self,
        parts: &mut Parts,
        body: Body,
    ) -> Result<DynamicMessage, Rejection> {
        let input = self.binding.method.input();
        let mapping = &self.shared.mapping;
        let mut message = match &self.binding.body {
            BodyRule::None => DynamicMessage::new(input.clone()),
            BodyRule::Whole => {
                let bytes = self.read_body(&parts.headers, body).await?;
                let raw = parse_body(&bytes).map_err(Rejection::InvalidBody)?;
                mapping
                    .decode_message(&input, raw, &self.path_bound)
                    .map_err(Rejection::InvalidBody)?
            }
            BodyRule::Field(field) => {
                let bytes = self.read_body(&parts.headers, body).await?;
                let raw = parse_body(&bytes).map_err(Rejection::InvalidBody)?;
                let mut message = DynamicMessage::new(input.clone());
                let value = mapping
                    .decode_field(field, raw)
                    .map_err(Rejection::InvalidBody)?;
                if let Some(value) = value {
                    message.try_set_field(field, value).map_err(|_| {
                        Rejection::InvalidBody(DecodeError::new(
                            Some(field.name().to_owned()),
                            "value does not fit the field",
                        ))
                    })?;
                }
                message
            }
        };
        self.apply_path(parts, &mut message).await?;
        self.apply_query(parts.uri.query(), &input, &mut message)?;
        Ok(message)
    }

    /// Body limit first, then content type, then the bytes.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Rejection> {
        let limit = self.shared.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(Rejection::TooLarge);
        }
        if !is_json_content_type(headers) {
            return Err(Rejection::UnsupportedMediaType);
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) if err.is::<LengthLimitError>() => Err(Rejection::TooLarge),
            Err(err) => {
                // The cause (a reset, a slow client's timeout) is ours to
                // log; the client hears only that its body did not arrive.
                tracing::debug!(error = %err, "request body read failed");
                Err(Rejection::InvalidBody(DecodeError::new(
                    None,
                    "body could not be read",
                )))
            }
        }
    }

    async fn apply_path(
        &self,
        parts: &mut Parts,
        message: &mut DynamicMessage,
    ) -> Result<(), Rejection> {
        let variables = &self.variables;
        if variables.is_empty() {
            return Ok(());
        }
        let params = RawPathParams::from_request_parts(parts, &())
            .await
            .map_err(|_| {
                // axum names the variable by its route name (`v0`); name
                // the field instead when the route has only one.
                let field = match variables.as_slice() {
                    [only] => Some(field_path(only)),
                    _ => None,
                };
                Rejection::InvalidPath(DecodeError::new(field, "not valid UTF-8"))
            })?;
        for (name, value) in &params {
            // Route paths name variables v0, v1, … in template order.
            let Some(path) = name
                .strip_prefix('v')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|index| variables.get(index))
            else {
                continue;
            };
            let Some(last) = path.last() else {
                continue;
            };
            let named = |reason: String| DecodeError::new(Some(field_path(path)), reason);
            let value = self
                .shared
                .mapping
                .parse_text(last, value)
                .map_err(|err| Rejection::InvalidPath(named(err.reason)))?;
            set_path(message, path, value).map_err(|err| Rejection::InvalidPath(named(err)))?;
        }
        Ok(())
    }

    fn apply_query(
        &self,
        query: Option<&str>,
        input: &MessageDescriptor,
        message: &mut DynamicMessage,
    ) -> Result<(), Rejection> {
        let Some(query) = query else {
            return Ok(());
        };
        let fields = &self.query_fields;
        if fields.is_empty() {
            return Ok(());
        }
        let mut seen: HashSet<String> = HashSet::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // Unknown parameters are ignored; a known one that is not a list
            // may appear only once.
            let Some(field) = input
                .get_field_by_name(&key)
                .filter(|field| fields.contains(field))
            else {
                continue;
            };
            let parsed = self
                .shared
                .mapping
                .parse_text(&field, &value)
                .map_err(Rejection::InvalidQuery)?;
            if field.is_list() {
                if let Value::List(items) = message.get_field_mut(&field) {
                    items.push(parsed);
                }
            } else {
                if !seen.insert(key.to_string()) {
                    return Err(Rejection::InvalidQuery(DecodeError::new(
                        Some(key.into_owned()),
                        "given twice",
                    )));
                }
                message.try_set_field(&field, parsed).map_err(|_| {
                    Rejection::InvalidQuery(DecodeError::new(
                        Some(field.name().to_owned()),
                        "value does not fit the field",
                    ))
                })?;
            }
        }
        Ok(())
    }
}

/// `a.b.c`: the proto names of a path variable's field path.
fn field_path(path: &[FieldDescriptor]) -> String {
    let names: Vec<&str> = path.iter().map(FieldDescriptor::name).collect();
    names.join(".")
}

/// Sets a nested field `a.b.c`, creating the messages on the way.
fn set_path(
    message: &mut DynamicMessage,
    path: &[FieldDescriptor],
    value: Value,
) -> Result<(), String> {
    match path {
        [] => Err("empty field path".into()),
        [last] => message
            .try_set_field(last, value)
            .map_err(|err| err.to_string()),
        [first, rest @ ..] => match message.get_field_mut(first) {
            Value::Message(inner) => set_path(inner, rest, value),
            _ => Err(format!("{} is not a message", first.name())),
        },
    }
}

/// `application/json` or any `application/*+json`, parameters allowed.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json"
        || subtype
            .strip_suffix("+json")
            .is_some_and(|prefix| !prefix.is_empty() && !prefix.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn json_content_types() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("header"),
            );
            is_json_content_type(&headers)
        };
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/problem+json"));
        assert!(check("application/vnd.pecr.v1+json"));
        assert!(!check("application/+json"));
        assert!(!check("text/json"));
        assert!(!check("text/plain"));
        assert!(!check("application/jsonx"));
        assert!(!check("application/x-www-form-urlencoded"));
        assert!(!is_json_content_type(&HeaderMap::new()));
    }
}

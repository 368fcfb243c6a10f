//! The OAuth 2.0 protected-resource metadata (RFC 9728) an MCP client
//! reads after a 401 to find where to get a token: the resource (this
//! service's `/mcp`) and its authorization server, the OIDC issuer.
//! Served in OIDC mode only; local mode has no authorization server.

use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::HeaderMap;
use serde_json::{Value, json};

/// Where the document is served (and, per RFC 9728, its path-inserted
/// form for the resource `/mcp`).
pub const DOCUMENT_PATH: &str = "/.well-known/oauth-protected-resource";
const DOCUMENT_PATH_FOR_MCP: &str = "/.well-known/oauth-protected-resource/mcp";

/// The origin clients reached this service at: `x-forwarded-proto` when a
/// TLS-terminating proxy says `https`, plain HTTP otherwise (the port
/// itself never serves TLS), and the `Host` header.
pub fn origin(headers: &HeaderMap) -> String {
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some(proto) if proto.trim().eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| http::uri::Authority::try_from(*host).is_ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The document's URL as the client sees it.
pub fn document_url(headers: &HeaderMap) -> String {
    format!("{}{DOCUMENT_PATH}", origin(headers))
}

/// The metadata for a resource at `origin`, protected by `issuer`.
pub fn document(origin: &str, issuer: &str, resource_name: &str) -> Value {
    json!({
        "resource": format!("{origin}/mcp"),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": resource_name,
    })
}

/// Both paths of the document, unauthenticated (it holds nothing secret).
pub(crate) fn routes(issuer: String, resource_name: &'static str) -> Router {
    let answer = move |request: Request| {
        let issuer = issuer.clone();
        async move { Json(document(&origin(request.headers()), &issuer, resource_name)) }
    };
    Router::new()
        .route(DOCUMENT_PATH, get(answer.clone()))
        .route(DOCUMENT_PATH_FOR_MCP, get(answer))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_document_names_the_resource_as_the_client_reached_it() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(origin(&headers), "http://127.0.0.1:8080");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(
            document_url(&headers),
            "https://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
        let doc = document(&origin(&headers), "https://idp.example", "PECR gateway");
        assert_eq!(doc["resource"], "https://127.0.0.1:8080/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://idp.example");
        headers.insert("host", HeaderValue::from_static("bad host\"x"));
        assert_eq!(origin(&headers), "https://localhost");
    }
}

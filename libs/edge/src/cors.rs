//! CORS for the REST edge. Origins not configured get no CORS headers at
//! all; a preflight from an allowed origin is answered 204 with the route's
//! own methods (see `router`) and the request headers the edge forwards.
//! Credentials (cookies) are never allowed, so `*` is safe when configured.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ALLOW,
    ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// Request headers a browser may send: those the edge forwards.
pub const ALLOWED_REQUEST_HEADERS: &str = "authorization, content-type, traceparent, tracestate, \
     x-pecr-principal-id, x-pecr-local-auth-secret, x-pecr-session-token, x-pecr-request-id, \
     x-pecr-trace-id";

/// Response headers a browser script may read.
pub const EXPOSED_RESPONSE_HEADERS: &str =
    "x-pecr-session-token, x-pecr-trace-id, x-pecr-request-id, retry-after";

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Which browser origins may call the REST edge (`PECR_CORS_ALLOWED_ORIGINS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers for anyone (the default).
    #[default]
    None,
    /// Any origin (`*`, only when configured so).
    Any,
    /// These exact origins (`scheme://host[:port]`, lowercase).
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses a comma-separated list of origins, `*`, or nothing. Each
    /// origin is `http` or `https`, a host and an optional port, without
    /// path, query or trailing slash; `*` stands alone.
    pub fn parse(text: &str) -> Result<Self, String> {
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Self::None);
        }
        if items.contains(&"*") {
            return if items.len() == 1 {
                Ok(Self::Any)
            } else {
                Err("`*` cannot be combined with listed origins".to_owned())
            };
        }
        let mut origins = Vec::new();
        for item in items {
            let origin = parse_origin(item)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::List(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`,
    /// or None when that origin is not allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        match self {
            Self::None => None,
            Self::Any => Some(HeaderValue::from_static("*")),
            Self::List(origins) => {
                let text = origin.to_str().ok()?.to_ascii_lowercase();
                origins.contains(&text).then(|| origin.clone())
            }
        }
    }

    pub fn is_enabled(&self) -> bool {
        *self != Self::None
    }
}

fn parse_origin(item: &str) -> Result<String, String> {
    let bad = |why: &str| format!("origin {item:?}: {why}");
    let lower = item.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    // An IPv6 literal keeps its colons inside brackets.
    let port = if let Some(inside) = rest.strip_prefix('[') {
        let (address, after) = inside
            .split_once(']')
            .ok_or_else(|| bad("unclosed IPv6 bracket"))?;
        let valid = !address.is_empty()
            && address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        if !valid {
            return Err(bad("invalid IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => {
                return Err(bad(
                    "must be scheme://host[:port] without path, query or slash",
                ));
            }
        }
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
        if !valid {
            return Err(bad(
                "must be scheme://host[:port] without path, query or slash",
            ));
        }
        port
    };
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad("port must be 1-65535"));
    }
    Ok(lower)
}

/// Adds the CORS headers of an actual (non-preflight) request's response.
pub(crate) async fn cors_headers(
    origins: Arc<CorsOrigins>,
    request: Request,
    next: Next,
) -> Response {
    // Preflights are answered whole by the route's OPTIONS handler.
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let allowed = origins.allow_origin(request.headers().get(ORIGIN));
    let mut response = next.run(request).await;
    add_vary(&origins, response.headers_mut());
    if let Some(value) = allowed {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_RESPONSE_HEADERS),
        );
    }
    response
}

/// Answers `OPTIONS` on a route whose methods are `methods`: a CORS
/// preflight from an allowed origin for one of them gets the CORS grant;
/// anything else gets only `Allow`.
pub(crate) fn preflight(
    origins: &CorsOrigins,
    methods: &[Method],
    headers: &HeaderMap,
) -> Response {
    let allow = methods
        .iter()
        .map(Method::as_str)
        .chain(["OPTIONS"])
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        out.insert(ALLOW, value);
    }
    add_vary(origins, out);
    let requested = headers
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|value| Method::from_bytes(value.as_bytes()).ok());
    let Some(requested) = requested else {
        return response;
    };
    let Some(origin) = origins.allow_origin(headers.get(ORIGIN)) else {
        return response;
    };
    if !methods.contains(&requested) {
        return response;
    }
    let route_methods = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Ok(value) = HeaderValue::from_str(&route_methods) {
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    out.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_REQUEST_HEADERS),
    );
    out.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

/// Answers differ by `Origin` when specific origins are listed: caches
/// must keep them apart.
fn add_vary(origins: &CorsOrigins, headers: &mut HeaderMap) {
    if matches!(origins, CorsOrigins::List(_)) {
        headers.append(VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_strictly() {
        assert_eq!(CorsOrigins::parse(""), Ok(CorsOrigins::None));
        assert_eq!(CorsOrigins::parse(" , "), Ok(CorsOrigins::None));
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("http://[::1]:8080, http://[::1]"),
            Ok(CorsOrigins::List(vec![
                "http://[::1]:8080".to_owned(),
                "http://[::1]".to_owned()
            ]))
        );
        assert_eq!(
            CorsOrigins::parse(
                "https://App.example.com, http://localhost:3000,https://app.example.com"
            ),
            Ok(CorsOrigins::List(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:3000".to_owned()
            ]))
        );
        for bad in [
            "*, https://a.example",
            "app.example.com",
            "ftp://a.example",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example:0",
            "https://a.example:99999",
            "https://",
            "https://a b",
            "http://[::1",
            "http://[zz]:80",
            "http://[::1]/x",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_listed_origins_are_granted() {
        let origins = CorsOrigins::parse("https://app.example.com").expect("origins");
        let granted = |origin: &str| {
            origins.allow_origin(Some(&HeaderValue::from_str(origin).expect("value")))
        };
        assert_eq!(
            granted("https://APP.example.com")
                .as_ref()
                .map(|v| v.as_bytes()),
            Some(&b"https://APP.example.com"[..])
        );
        assert!(granted("https://evil.example").is_none());
        assert!(granted("null").is_none());
        assert!(
            CorsOrigins::None
                .allow_origin(Some(&HeaderValue::from_static("https://a.example")))
                .is_none()
        );
        assert!(CorsOrigins::Any.allow_origin(None).is_none());
    }
}

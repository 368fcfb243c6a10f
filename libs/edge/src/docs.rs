//! The served contract: each REST port's OpenAPI document (YAML and JSON,
//! rendered once at startup by the same generator as the committed copy,
//! for the services that port serves) and a Redoc reference page. The
//! Redoc bundle is vendored (vendor/redoc/) and embedded, so nothing is
//! fetched at build or run time.

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use prost_reflect::DescriptorPool;

use crate::EdgeError;

/// Redoc's standalone bundle, as vendored (see vendor/README.md).
pub const REDOC_STANDALONE_JS: &[u8] = include_bytes!("../../../vendor/redoc/redoc.standalone.js");

/// The vendored Redoc version.
pub const REDOC_VERSION: &str = include_str!("../../../vendor/redoc/VERSION");

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PECR REST API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/docs/redoc.standalone.js"></script>
</body>
</html>
"#;

/// `/openapi.yaml`, `/openapi.json`, `/docs` and `/docs/redoc.standalone.js`
/// for `services`.
pub(crate) fn router(pool: &DescriptorPool, services: &[&str]) -> Result<Router, EdgeError> {
    let yaml = pecr_edge_json::openapi_document(pool, services)?;
    let json = pecr_edge_json::openapi_json(pool, services)?;
    let served = |content_type: &'static str, body: Bytes| {
        move || {
            let body = body.clone();
            async move {
                (
                    [
                        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
                        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    ],
                    body,
                )
                    .into_response()
            }
        }
    };
    // Rendered once per router; each answer shares the bytes.
    let (yaml, json) = (Bytes::from(yaml), Bytes::from(json));
    Ok(Router::new()
        .route("/openapi.yaml", get(served("application/yaml", yaml)))
        .route("/openapi.json", get(served("application/json", json)))
        .route(
            "/docs",
            get(served(
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            )),
        )
        .route(
            "/docs/redoc.standalone.js",
            get(served(
                "text/javascript; charset=utf-8",
                Bytes::from_static(REDOC_STANDALONE_JS),
            )),
        ))
}

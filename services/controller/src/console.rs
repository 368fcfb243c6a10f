//! The browser console: one page at `/` of the HTTP port, its script and its
//! style sheet, built into the binary from `services/controller/console/`.
//! The page calls the REST edge of the same origin only; serving it grants
//! nothing, since every call it makes carries the person's own credentials
//! through the request stack like any other REST client's.
//!
//! Every answer forbids anything but same-origin files (no inline script or
//! style, no framing, no plug-ins) and carries a strong `etag` with
//! `cache-control: no-cache`, so a browser revalidates and a new binary's
//! page is never mixed with an old script.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The console's paths.
pub const PAGE_PATH: &str = "/";
pub const SCRIPT_PATH: &str = "/console/console.js";
pub const STYLE_PATH: &str = "/console/console.css";

/// Only same-origin files; `require-trusted-types-for` makes the browser
/// refuse any HTML string written into the page, so server text can only
/// ever land as text.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// One embedded file and how it is served.
#[derive(Clone)]
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Self {
        let digest = pecr_contracts::sha256_hex(body.as_bytes());
        // Hex digits and quotes only, always a valid header value.
        let etag = HeaderValue::from_str(&format!("\"{}\"", digest.get(..32).unwrap_or(&digest)))
            .unwrap_or_else(|_| HeaderValue::from_static("\"console\""));
        Self {
            body,
            content_type,
            etag,
        }
    }

    fn answer(&self, request: &HeaderMap) -> Response {
        let unchanged = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == self.etag || tag.trim() == "*");
        let common = [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, self.etag.clone()),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        if unchanged {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        (
            common,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            )],
            self.body,
        )
            .into_response()
    }
}

/// The console's routes (GET and HEAD; other methods answer 405 with an
/// empty body, as the REST edge's known paths do).
pub fn router() -> Router {
    let serve = |asset: Asset| {
        get(move |headers: HeaderMap| {
            let asset = asset.clone();
            async move { asset.answer(&headers) }
        })
    };
    Router::new()
        .route(
            PAGE_PATH,
            serve(Asset::new(PAGE, "text/html; charset=utf-8")),
        )
        .route(
            SCRIPT_PATH,
            serve(Asset::new(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            STYLE_PATH,
            serve(Asset::new(STYLE, "text/css; charset=utf-8")),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_style_from_the_served_paths_only() {
        assert!(PAGE.contains(&format!(
            r#"<script type="module" src="{SCRIPT_PATH}"></script>"#
        )));
        assert!(PAGE.contains(&format!(r#"<link rel="stylesheet" href="{STYLE_PATH}">"#)));
        assert_eq!(PAGE.matches("<script").count(), 1, "one script element");
        assert_eq!(PAGE.matches("<link").count(), 1, "one link element");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The policy would block them; this says so before a browser does.
        let lower = PAGE.to_ascii_lowercase();
        for forbidden in ["<style", " style=", "javascript:"] {
            assert!(
                !lower.contains(forbidden),
                "index.html contains {forbidden:?}"
            );
        }
        assert!(
            !has_event_handler_attribute(&lower),
            "index.html has an on…= attribute"
        );
    }

    /// ` onclick=` and the like: " on", letters, then `=`.
    fn has_event_handler_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn the_script_never_writes_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "console.js uses {sink}");
        }
    }

    #[test]
    fn a_matching_etag_answers_not_modified() {
        let asset = Asset::new(STYLE, "text/css; charset=utf-8");
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, asset.etag.clone());
        assert_eq!(asset.answer(&headers).status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(asset.answer(&headers).status(), StatusCode::OK);
    }
}

//! The browser console on the real controller's HTTP port: the page at `/`
//! and the files it loads, their content types, caching and policy headers,
//! and the REST edge, the served contract and the admin endpoints still
//! answering beside them as before. (scripts/browser-check.sh uses the page
//! in a browser.)

use pecr_mesh_tests::Mesh;
use pecr_testkit::{HttpAnswer, ServiceProcess, http_get, http_post_json, http_request};

/// The `src`/`href` values of the page's script and style sheet.
fn referenced_files(page: &str) -> Vec<String> {
    let mut files = Vec::new();
    for attribute in [" src=\"", " href=\""] {
        for (at, _) in page.match_indices(attribute) {
            let rest = &page[at + attribute.len()..];
            if let Some(end) = rest.find('"') {
                files.push(rest[..end].to_owned());
            }
        }
    }
    files
}

fn assert_console_headers(answer: &HttpAnswer, what: &str) {
    let policy = answer
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no content-security-policy"));
    for directive in [
        "default-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(policy.contains(directive), "{what}: {policy}");
    }
    assert!(!policy.contains("unsafe"), "{what}: {policy}");
    assert_eq!(
        answer.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("cache-control").as_deref(),
        Some("no-cache"),
        "{what}"
    );
    assert!(answer.header("etag").is_some(), "{what}: no etag");
    // Same origin only: the console is never granted to other origins.
    assert!(
        answer.header("access-control-allow-origin").is_none(),
        "{what}"
    );
}

async fn assert_served(controller: &ServiceProcess, path: &str, content_type: &str) -> HttpAnswer {
    let answer = http_get(&controller.http_url(path)).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    assert_eq!(answer.content_type, content_type, "{path}");
    assert!(!answer.body.is_empty(), "{path}");
    assert_console_headers(&answer, path);
    answer
}

#[tokio::test]
async fn the_controller_serves_the_console_beside_its_rest_edge() {
    let mesh = Mesh::start().await;
    let controller = &mesh.controller;

    let page = assert_served(controller, "/", "text/html; charset=utf-8").await;
    assert!(page.body.contains("<title>PECR console</title>"));
    let files = referenced_files(&page.body);
    assert_eq!(
        files,
        ["/console/console.js", "/console/console.css"],
        "the page loads exactly its script and style sheet"
    );
    let script = assert_served(controller, &files[0], "text/javascript; charset=utf-8").await;
    assert!(script.body.contains("/v1/run/stream"));
    assert_served(controller, &files[1], "text/css; charset=utf-8").await;

    // A browser's revalidation: unchanged files answer 304 without a body.
    let etag = page.header("etag").expect("etag");
    let revalidated = http_request(
        "GET",
        &controller.http_url("/"),
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_console_headers(&revalidated, "/ revalidated");
    let head = http_request("HEAD", &controller.http_url("/"), &[], None).await;
    assert_eq!(head.status, 200);

    // Other methods and unknown files answer as the edge's own paths do:
    // 405 and 404 with empty bodies.
    let posted = http_post_json(&controller.http_url("/"), &[], "{}").await;
    assert_eq!(posted.status, 405);
    assert!(posted.body.is_empty());
    let missing = http_get(&controller.http_url("/console/missing.js")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.is_empty());

    // The REST edge, the served contract and the admin endpoints as before.
    let refused = http_post_json(&controller.http_url("/v1/run"), &[], r#"{"query":"q"}"#).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.json()["code"], "ERR_POLICY_DENIED");
    let streamed = http_post_json(
        &controller.http_url("/v1/run/stream"),
        &[],
        r#"{"query":"q"}"#,
    )
    .await;
    assert_eq!(streamed.status, 401, "{}", streamed.body);
    assert_eq!(http_get(&controller.http_url("/docs")).await.status, 200);
    assert_eq!(
        http_get(&controller.http_url("/openapi.json")).await.status,
        200
    );
    assert_eq!(http_get(&controller.http_url("/healthz")).await.status, 200);
    // Only the controller serves a console.
    let gateway = mesh.gateway.as_ref().expect("gateway runs");
    assert_eq!(http_get(&gateway.http_url("/")).await.status, 404);
}

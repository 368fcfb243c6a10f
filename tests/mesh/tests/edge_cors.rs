//! CORS and the served contract on the real gateway and controller REST
//! ports, with `PECR_CORS_ALLOWED_ORIGINS` set: every route the
//! descriptors bind, walked from the descriptor set.

use pecr_mesh_tests::{Mesh, MeshOptions};
use pecr_testkit::{HttpAnswer, ServiceProcess, http_get, http_request};
use prost_reflect::DescriptorPool;

const ALLOWED: &str = "http://localhost:3000";
const UNKNOWN: &str = "https://evil.example.com";

/// (method, concrete path) of every binding of `service`.
fn routes(service: &str) -> Vec<(String, String)> {
    let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    pecr_edge_json::bindings(&pool, &[service])
        .expect("bindings")
        .iter()
        .map(|binding| {
            // Path variables take a value their rules accept.
            (binding.verb.to_string(), binding.concrete_path("x1"))
        })
        .collect()
}

async fn preflight(process: &ServiceProcess, path: &str, origin: &str, method: &str) -> HttpAnswer {
    http_request(
        "OPTIONS",
        &process.http_url(path),
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            (
                "access-control-request-headers",
                "content-type, x-pecr-principal-id",
            ),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn rest_ports_grant_cors_to_configured_origins_and_serve_their_contract() {
    let cors = [("PECR_CORS_ALLOWED_ORIGINS", ALLOWED.to_owned())];
    let mesh = Mesh::start_with(MeshOptions {
        gateway: cors.to_vec(),
        controller: cors.to_vec(),
    })
    .await;
    let gateway = mesh.gateway.as_ref().expect("gateway runs");
    let ports = [
        (pecr_proto::service_names::GATEWAY, gateway),
        (pecr_proto::service_names::CONTROLLER, &mesh.controller),
    ];
    for (service, process) in ports {
        let routes = routes(service);
        assert!(!routes.is_empty(), "{service} has REST routes");
        for (method, path) in routes {
            let at = format!("{service} {method} {path}");
            let granted = preflight(process, &path, ALLOWED, &method).await;
            assert_eq!(granted.status, 204, "{at}: {}", granted.body);
            assert_eq!(
                granted.header("access-control-allow-origin").as_deref(),
                Some(ALLOWED),
                "{at}"
            );
            let methods = granted
                .header("access-control-allow-methods")
                .unwrap_or_default();
            assert!(methods.split(", ").any(|m| m == method), "{at}: {methods}");
            let headers = granted
                .header("access-control-allow-headers")
                .unwrap_or_default();
            assert!(
                headers.contains("x-pecr-principal-id") && headers.contains("authorization"),
                "{at}"
            );
            assert!(
                granted.header("access-control-allow-credentials").is_none(),
                "{at}"
            );

            let refused = preflight(process, &path, UNKNOWN, &method).await;
            assert!(
                refused.header("access-control-allow-origin").is_none(),
                "{at}"
            );
        }

        // The port's own document, YAML and JSON, and the reference page.
        let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let yaml = http_get(&process.http_url("/openapi.yaml")).await;
        assert_eq!(yaml.status, 200);
        assert_eq!(
            yaml.body,
            pecr_edge::openapi_document(&pool, &[service]).expect("document")
        );
        let json = http_get(&process.http_url("/openapi.json")).await;
        assert_eq!(json.status, 200);
        assert_eq!(json.json()["info"]["title"], "PECR REST API");
        let page = http_get(&process.http_url("/docs")).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("/docs/redoc.standalone.js"));
        let script = http_get(&process.http_url("/docs/redoc.standalone.js")).await;
        assert_eq!(script.body.as_bytes(), pecr_edge::REDOC_STANDALONE_JS);
    }

    // An actual call from the allowed origin exposes the PECR headers; the
    // controller's error answer (no principal) carries them too.
    let answer = http_request(
        "POST",
        &mesh.controller.http_url("/v1/run"),
        &[("origin", ALLOWED), ("content-type", "application/json")],
        Some(r#"{"query":"q"}"#),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.header("access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let exposed = answer
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(exposed.contains("x-pecr-trace-id") && exposed.contains("x-pecr-session-token"));
}

#[tokio::test]
async fn without_configured_origins_nothing_is_granted() {
    let mesh = Mesh::start().await;
    let answer = preflight(&mesh.controller, "/v1/run", ALLOWED, "POST").await;
    assert_eq!(answer.status, 204);
    assert!(answer.header("access-control-allow-origin").is_none());
}

//! CORS and the served contract, over every REST route the descriptors
//! bind, through a real HTTP client.

use pecr_edge::{CorsOrigins, EdgeConfig};
use pecr_proto::service_names::{CONTROLLER, GATEWAY};

use crate::client::{Edge, Reply, start};

const ALLOWED: &str = "https://app.example.com";
const UNKNOWN: &str = "https://evil.example.com";

/// Every bound route: (method, a concrete path for it).
fn routes() -> Vec<(String, String)> {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let bindings = pecr_edge_json::bindings(&pool, &[GATEWAY, CONTROLLER]).expect("bindings");
    assert!(bindings.len() >= 10, "every route is walked");
    bindings
        .iter()
        .map(|binding| {
            // Path variables take a value their rules accept.
            (binding.verb.to_string(), binding.concrete_path("x1"))
        })
        .collect()
}

async fn with_origins(origins: &str) -> Edge {
    start(EdgeConfig {
        cors: CorsOrigins::parse(origins).expect("origins"),
        ..EdgeConfig::default()
    })
    .await
}

async fn preflight(edge: &Edge, path: &str, origin: &str, method: &str) -> Reply {
    edge.send(
        "OPTIONS",
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            (
                "access-control-request-headers",
                "content-type, x-pecr-principal-id, authorization",
            ),
        ],
        None,
    )
    .await
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_granted_on_every_route() {
    let edge = with_origins(ALLOWED).await;
    for (method, path) in routes() {
        let reply = preflight(&edge, &path, ALLOWED, &method).await;
        let at = format!("{method} {path}");
        assert_eq!(reply.status, 204, "{at}");
        assert_eq!(
            header(&reply, "access-control-allow-origin"),
            Some(ALLOWED),
            "{at}"
        );
        let methods = header(&reply, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.split(", ").any(|m| m == method), "{at}: {methods}");
        let allowed_headers = header(&reply, "access-control-allow-headers").unwrap_or_default();
        for wanted in [
            "authorization",
            "content-type",
            "x-pecr-principal-id",
            "x-pecr-session-token",
        ] {
            assert!(allowed_headers.contains(wanted), "{at}: {allowed_headers}");
        }
        assert!(
            header(&reply, "access-control-allow-credentials").is_none(),
            "{at}"
        );
        assert_eq!(header(&reply, "vary"), Some("origin"), "{at}");
        assert!(reply.body.is_empty(), "{at}");
    }
    assert_eq!(
        edge.calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a preflight never reaches the service"
    );
}

#[tokio::test]
async fn unknown_origins_and_other_methods_get_no_cors_headers() {
    let edge = with_origins(ALLOWED).await;
    for (method, path) in routes() {
        let at = format!("{method} {path}");
        let unknown = preflight(&edge, &path, UNKNOWN, &method).await;
        assert_eq!(unknown.status, 204, "{at}");
        assert!(
            header(&unknown, "access-control-allow-origin").is_none(),
            "{at}"
        );
        assert!(
            header(&unknown, "access-control-allow-methods").is_none(),
            "{at}"
        );
        // A method the route does not serve is not granted.
        let other = if method == "GET" { "DELETE" } else { "PUT" };
        let wrong = preflight(&edge, &path, ALLOWED, other).await;
        assert!(
            header(&wrong, "access-control-allow-origin").is_none(),
            "{at}"
        );
        // Plain OPTIONS lists the route's methods.
        let plain = edge.send("OPTIONS", &path, &[], None).await;
        assert_eq!(plain.status, 204, "{at}");
        assert_eq!(
            header(&plain, "allow"),
            Some(format!("{method}, OPTIONS").as_str()),
            "{at}"
        );
    }
    // Without configured origins nobody is granted.
    let closed = start(EdgeConfig::default()).await;
    let reply = preflight(&closed, "/v1/run", ALLOWED, "POST").await;
    assert!(header(&reply, "access-control-allow-origin").is_none());
    assert!(header(&reply, "vary").is_none());
}

#[tokio::test]
async fn answers_to_an_allowed_origin_expose_the_pecr_headers() {
    let edge = with_origins(ALLOWED).await;
    let run = |origin: &'static str| {
        let edge = &edge;
        async move {
            edge.send(
                "POST",
                "/v1/run",
                &[
                    ("origin", origin),
                    ("content-type", "application/json"),
                    ("x-pecr-principal-id", "dev"),
                ],
                Some(r#"{"query":"q"}"#),
            )
            .await
        }
    };
    let granted = run(ALLOWED).await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(
        header(&granted, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let exposed = header(&granted, "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("x-pecr-session-token") && exposed.contains("x-pecr-trace-id"));
    let refused = run(UNKNOWN).await;
    assert_eq!(refused.status, 200);
    assert!(header(&refused, "access-control-allow-origin").is_none());
    assert!(header(&refused, "access-control-expose-headers").is_none());

    // `*`, when configured, answers any origin and never allows credentials.
    let any = with_origins("*").await;
    let reply = preflight(&any, "/v1/replays", UNKNOWN, "GET").await;
    assert_eq!(header(&reply, "access-control-allow-origin"), Some("*"));
    assert!(header(&reply, "access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn the_port_serves_its_document_and_reference_page() {
    let edge = start(EdgeConfig::default()).await;
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");

    let yaml = edge.send("GET", "/openapi.yaml", &[], None).await;
    assert_eq!(yaml.status, 200);
    assert_eq!(header(&yaml, "content-type"), Some("application/yaml"));
    let expected = pecr_edge::openapi_document(&pool, &[GATEWAY, CONTROLLER]).expect("document");
    assert_eq!(yaml.body, expected);

    let json = edge.send("GET", "/openapi.json", &[], None).await;
    assert_eq!(json.status, 200);
    assert_eq!(header(&json, "content-type"), Some("application/json"));
    let from_yaml: serde_json::Value = yaml_serde::from_str(&expected).expect("YAML");
    assert_eq!(
        json.json(),
        from_yaml,
        "the JSON and YAML documents say the same"
    );

    let page = edge.send("GET", "/docs", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(header(&page, "content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(page.body.contains(r#"spec-url="/openapi.json""#));
    assert!(page.body.contains(r#"src="/docs/redoc.standalone.js""#));

    let script = edge
        .send("GET", "/docs/redoc.standalone.js", &[], None)
        .await;
    assert_eq!(script.status, 200);
    assert_eq!(script.body.as_bytes(), pecr_edge::REDOC_STANDALONE_JS);
}

#[tokio::test]
async fn a_port_serves_only_its_own_routes_in_its_document() {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let routes = tonic::service::Routes::new(
        pecr_proto::v1::gateway_service_server::GatewayServiceServer::new(
            crate::harness::HarnessGateway {
                recorder: crate::harness::Recorder::default(),
            },
        ),
    );
    let router =
        pecr_edge::router(&pool, &[GATEWAY], routes, EdgeConfig::default()).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let edge = Edge {
        addr,
        recorder: crate::harness::Recorder::default(),
        calls: std::sync::Arc::default(),
        client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    };
    let reply = edge.send("GET", "/openapi.yaml", &[], None).await;
    assert_eq!(
        reply.body,
        pecr_edge::openapi_document(&pool, &[GATEWAY]).expect("document")
    );
    assert!(
        !reply.body.contains("/v1/run:"),
        "the controller's routes are not the gateway's"
    );
}

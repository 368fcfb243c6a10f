//! The edge served on 127.0.0.1:0 in front of the harness services, and a
//! real HTTP client for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pecr_edge::EdgeConfig;
use pecr_proto::service_names::{CONTROLLER, GATEWAY};
use pecr_proto::v1::controller_service_server::ControllerServiceServer;
use pecr_proto::v1::gateway_service_server::GatewayServiceServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Counted, HarnessController, HarnessGateway, Recorder};

pub struct Edge {
    pub addr: SocketAddr,
    pub recorder: Recorder,
    pub calls: Arc<AtomicUsize>,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }

    /// A reply read off the wire by [`Edge::raw`].
    pub fn parse(raw: &str) -> Self {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {raw}"));
        let mut headers = http::HeaderMap::new();
        for (name, value) in lines.filter_map(|line| line.split_once(':')) {
            headers.append(
                http::HeaderName::try_from(name.trim()).expect("header name"),
                http::HeaderValue::try_from(value.trim()).expect("header value"),
            );
        }
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }
}

pub async fn start(config: EdgeConfig) -> Edge {
    let recorder = Recorder::default();
    let routes = tonic::service::Routes::new(GatewayServiceServer::new(HarnessGateway {
        recorder: recorder.clone(),
    }))
    .add_service(ControllerServiceServer::new(HarnessController {
        recorder: recorder.clone(),
    }));
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = Counted {
        inner: routes,
        calls: calls.clone(),
    };
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let router = pecr_edge::router(&pool, &[GATEWAY, CONTROLLER], stack, config).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    Edge {
        addr,
        recorder,
        calls,
        client,
    }
}

pub async fn edge() -> Edge {
    start(EdgeConfig::default()).await
}

impl Edge {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        let request = builder.body(body).expect("request");
        let response = self.client.request(request).await.expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("x-pecr-principal-id", "dev"),
            ],
            Some(body),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[("x-pecr-principal-id", "dev")], None)
            .await
    }

    /// Sends raw bytes (for bodies a client library would not produce).
    pub async fn raw(&self, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.write_all(request).await.expect("write");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("read");
        String::from_utf8_lossy(&out).into_owned()
    }
}

//! Hostile clients against a real mesh: ids and text the store cannot hold,
//! malformed protobuf, repeated identity headers and slow clients are all
//! refused with a 4xx (or the connection closed), never a 5xx; and the
//! schemathesis gate finds no server error or contract drift on either port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pecr_errors::{ErrorCode, PecrError};
use pecr_mesh_tests::{Mesh, MeshOptions, as_principal};
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use pecr_testkit::{HttpAnswer, http_post_json, http_request, workspace_root};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const DEV: (&str, &str) = ("x-pecr-principal-id", "dev");

fn assert_invalid(answer: &HttpAnswer, what: &str) -> Value {
    assert_eq!(answer.status, 400, "{what}: {}", answer.body);
    let body = answer.json();
    assert_eq!(
        body["code"], "ERR_INVALID_PARAMS",
        "{what}: {}",
        answer.body
    );
    body
}

fn gateway(mesh: &Mesh) -> &pecr_testkit::ServiceProcess {
    mesh.gateway
        .as_ref()
        .unwrap_or_else(|| panic!("gateway is running"))
}

/// A session over the gateway's REST edge: (session_id, token).
async fn rest_session(mesh: &Mesh) -> (String, String) {
    let answer = http_post_json(
        &gateway(mesh).http_url("/v1/sessions"),
        &[DEV],
        r#"{"budget":{"max_operator_calls":100,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let token = answer
        .headers
        .get("x-pecr-session-token")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let session_id = answer.json()["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (session_id, token)
}

#[tokio::test]
async fn ids_and_text_the_store_cannot_hold_are_400_on_both_protocols() {
    let mesh = Mesh::start().await;
    let (session_id, token) = rest_session(&mesh).await;
    let headers = [DEV, ("x-pecr-session-token", token.as_str())];
    let operator = |op: &str, body: Value| {
        let url = gateway(&mesh).http_url(&format!("/v1/operators/{op}"));
        async move { http_post_json(&url, &headers, &body.to_string()).await }
    };

    let long_id = "a".repeat(5000);
    let cases = [
        (
            "search",
            json!({"session_id": long_id, "params": {}}),
            "over-long session id",
        ),
        (
            "search",
            json!({"session_id": "a\u{0}b", "params": {}}),
            "NUL in session id",
        ),
        (
            "search",
            json!({"session_id": "a b", "params": {}}),
            "space in session id",
        ),
        (
            "se%00arch",
            json!({"session_id": session_id, "params": {}}),
            "NUL in op_name",
        ),
        (
            "fetch_rows",
            json!({"session_id": session_id, "params": {"view_id": "safe_customer_view_public", "fields": ["status"], "filter_spec": {"status": "a\u{0}"}}}),
            "NUL in a filter value",
        ),
        (
            "search",
            json!({"session_id": session_id, "params": {"query": "x\u{0}"}}),
            "NUL in params",
        ),
    ];
    for (op, body, what) in cases {
        let answer = operator(op, body).await;
        assert_invalid(&answer, what);
    }
    // The session still works afterwards: nothing was half-written.
    let fine = operator(
        "fetch_rows",
        json!({"session_id": session_id, "params": {"view_id": "safe_customer_view_public", "fields": ["status"]}}),
    )
    .await;
    assert_eq!(fine.status, 200, "{}", fine.body);

    let finalize = http_post_json(
        &gateway(&mesh).http_url("/v1/finalize"),
        &headers,
        &json!({"session_id": session_id, "response_text": "a", "claim_map": {
            "claim_map_id": "cm", "terminal_mode": "SUPPORTED", "coverage_threshold": 0, "coverage_observed": 0,
            "claims": [{"claim_id": "", "claim_text": "x\u{0}", "status": "UNKNOWN", "evidence_unit_ids": []}]}})
        .to_string(),
    )
    .await;
    assert_invalid(&finalize, "NUL in claim text");

    let run = http_post_json(&mesh.url("/v1/run"), &[DEV], r#"{"query":"a\u0000"}"#).await;
    assert_eq!(
        assert_invalid(&run, "NUL in query")["message"],
        "invalid query: must not contain NUL characters"
    );
    let evaluation = |body: &str| {
        let url = mesh.url("/v1/evaluations");
        let body = body.to_owned();
        async move { http_post_json(&url, &[DEV], &body).await }
    };
    assert_invalid(
        &evaluation(r#"{"evaluation_name":"a\u0000"}"#).await,
        "NUL in evaluation name",
    );
    assert_invalid(
        &evaluation(r#"{"evaluation_name":"a","replay_ids":["x\u0000"]}"#).await,
        "NUL in a replay id",
    );
    // The contract keeps 404 for an unsafe run id in the path.
    let replay = http_request("GET", &mesh.url("/v1/replays/a%00b"), &[DEV], None).await;
    assert_eq!(replay.status, 404, "{}", replay.body);
    assert_eq!(replay.json()["code"], "ERR_REPLAY_NOT_FOUND");
    // A principal header with a control character.
    let tab = http_post_json(
        &mesh.url("/v1/run"),
        &[("x-pecr-principal-id", "d\tev")],
        r#"{"query":"q"}"#,
    )
    .await;
    assert_invalid(&tab, "tab in the principal header");

    // gRPC: the same rules at the same entry.
    let mut client = GatewayServiceClient::connect(gateway(&mesh).grpc_url())
        .await
        .unwrap_or_else(|err| panic!("connect gateway: {err}"));
    let mut request = as_principal(
        "dev",
        v1::CallOperatorRequest {
            op_name: "search".into(),
            session_id: "a\u{0}".into(),
            params: "{}".into(),
        },
    );
    request.metadata_mut().insert(
        "x-pecr-session-token",
        token.parse().unwrap_or_else(|_| panic!("token")),
    );
    let status = client
        .call_operator(request)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted a NUL session id"));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        pecr_mesh_tests::error_of(&status).code,
        ErrorCode::InvalidParams
    );
    let mut controller = mesh.client().await;
    let status = controller
        .run(pecr_mesh_tests::run_request("dev", "a\u{0}", None))
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted a NUL query"));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn repeated_identity_headers_are_400() {
    let mesh = Mesh::start().await;
    let (session_id, token) = rest_session(&mesh).await;
    let body = json!({"session_id": session_id, "params": {"query": "q"}}).to_string();
    let url = gateway(&mesh).http_url("/v1/operators/search");
    let with = |extra: [(&'static str, &'static str); 2]| {
        let mut headers = vec![DEV, ("x-pecr-session-token", token.as_str())];
        headers.extend(extra);
        headers
    };
    for key in [
        "x-pecr-principal-id",
        "authorization",
        "x-pecr-local-auth-secret",
        "x-pecr-session-token",
    ] {
        let headers = with([(key, "one"), (key, "two")]);
        let answer = http_post_json(&url, &headers, &body).await;
        assert_eq!(
            assert_invalid(&answer, key)["message"],
            format!("duplicate {key} header")
        );
    }
    let twice = http_post_json(
        &mesh.url("/v1/run"),
        &[DEV, ("x-pecr-principal-id", "ops")],
        r#"{"query":"q"}"#,
    )
    .await;
    assert_invalid(&twice, "two principals on the controller");

    let mut controller = mesh.client().await;
    let mut request = pecr_mesh_tests::run_request("dev", "q", None);
    request.metadata_mut().append(
        "x-pecr-principal-id",
        "ops".parse().unwrap_or_else(|_| panic!("ascii")),
    );
    let status = controller
        .run(request)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted two principals"));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        pecr_mesh_tests::error_of(&status),
        PecrError::invalid_params("duplicate x-pecr-principal-id header")
    );
}

/// A gRPC request body: one chunk, then the end or (`stall`) nothing ever.
struct RawBody {
    chunk: Option<Bytes>,
    stall: bool,
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this.chunk.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None if this.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

/// One gRPC call over a fresh HTTP/2 connection: the status it ended with
/// (from headers or trailers) and how long it took.
async fn raw_grpc(addr: SocketAddr, path: &str, body: RawBody) -> (tonic::Status, Duration) {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap_or_else(|err| panic!("h2 handshake: {err}"));
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-pecr-principal-id", "dev")
        .body(body)
        .unwrap_or_else(|err| panic!("request: {err}"));
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|err| panic!("send: {err}"));
    let mut headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|err| panic!("body: {err}"));
    if let Some(trailers) = collected.trailers() {
        headers.extend(trailers.clone());
    }
    let status = tonic::Status::from_header_map(&headers)
        .unwrap_or_else(|| panic!("no grpc-status in {headers:?}"));
    (status, started.elapsed())
}

/// A length-prefixed gRPC message frame announcing `declared` bytes.
fn grpc_frame(declared: u32, payload: &[u8]) -> Bytes {
    let mut frame = vec![0_u8];
    frame.extend(declared.to_be_bytes());
    frame.extend(payload);
    Bytes::from(frame)
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_not_internal() {
    let mesh = Mesh::start().await;
    // Field 1 with wire type 7 (invalid), then a truncated varint.
    let garbage = [0x0f_u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let targets = [
        (
            gateway(&mesh).grpc_addr,
            "/pecr.v1.GatewayService/CreateSession",
        ),
        (mesh.controller.grpc_addr, "/pecr.v1.ControllerService/Run"),
    ];
    for (addr, path) in targets {
        let body = RawBody {
            chunk: Some(grpc_frame(garbage.len() as u32, &garbage)),
            stall: false,
        };
        let (status, _) = raw_grpc(addr, path, body).await;
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{path}: {status:?}"
        );
        assert_eq!(
            PecrError::from_status(&status),
            Some(PecrError::invalid_params("malformed request message")),
            "{path}"
        );
    }
}

/// Seconds until the server closes a raw TCP connection that sent `sent`.
async fn seconds_until_closed(addr: SocketAddr, sent: &[u8]) -> (f64, Vec<u8>) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    tcp.write_all(sent)
        .await
        .unwrap_or_else(|err| panic!("write: {err}"));
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "{addr} kept a slow connection open for 60 s");
    (started.elapsed().as_secs_f64(), received)
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let mesh = Mesh::start().await;
    let http = gateway(&mesh).http_addr;
    let grpc = gateway(&mesh).grpc_addr;
    let stalled_body = RawBody {
        chunk: Some(grpc_frame(100, &[0x0a, 0x02])),
        stall: true,
    };
    let (
        partial_head,
        idle,
        silent_http,
        missing_body,
        silent_grpc,
        partial_preface,
        (stalled, stalled_after),
    ) = tokio::join!(
        seconds_until_closed(http, b"GET /healthz HTTP/1.1\r\nHost: pecr\r\n"),
        seconds_until_closed(http, b"GET /healthz HTTP/1.1\r\nHost: pecr\r\n\r\n"),
        seconds_until_closed(http, b""),
        seconds_until_closed(
            http,
            b"POST /v1/sessions HTTP/1.1\r\nHost: pecr\r\nx-pecr-principal-id: dev\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{\"bud",
        ),
        seconds_until_closed(grpc, b""),
        seconds_until_closed(grpc, b"PRI * HTTP/2.0\r\n"),
        raw_grpc(grpc, "/pecr.v1.GatewayService/CreateSession", stalled_body),
    );
    let head_window = 9.0..20.0;
    for (what, (seconds, _)) in [
        ("partial request head", &partial_head),
        ("idle keep-alive connection", &idle),
        ("silent HTTP connection", &silent_http),
        ("silent gRPC connection", &silent_grpc),
        ("partial HTTP/2 preface", &partial_preface),
    ] {
        assert!(
            head_window.contains(seconds),
            "{what}: closed after {seconds} s"
        );
    }
    assert!(
        idle.1.starts_with(b"HTTP/1.1 200"),
        "the idle connection was served first"
    );
    let (seconds, response) = &missing_body;
    assert!((29.0..45.0).contains(seconds), "missing body: {seconds} s");
    assert!(
        response.starts_with(b"HTTP/1.1 400"),
        "missing body: {}",
        String::from_utf8_lossy(response)
    );
    assert_eq!(stalled.code(), tonic::Code::DeadlineExceeded, "{stalled:?}");
    assert!(
        (29.0..45.0).contains(&stalled_after.as_secs_f64()),
        "stalled gRPC body: {stalled_after:?}"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_on_either_port() {
    // Rate limits off: the fuzzer sends far more than a person would.
    let no_limits = |keys: &[&'static str]| keys.iter().map(|key| (*key, "0".to_owned())).collect();
    let mesh = Mesh::start_with(MeshOptions {
        gateway: no_limits(&[
            "PECR_RATE_LIMIT_SESSIONS_PER_WINDOW",
            "PECR_RATE_LIMIT_OPERATORS_PER_WINDOW",
            "PECR_RATE_LIMIT_FINALIZE_PER_WINDOW",
        ]),
        controller: no_limits(&["PECR_RATE_LIMIT_RUN_PER_WINDOW"]),
    })
    .await;
    let script = workspace_root().join("scripts/security/schemathesis.sh");
    for (service, base_url) in [
        ("gateway", gateway(&mesh).http_url("")),
        ("controller", mesh.url("")),
    ] {
        let output = tokio::process::Command::new(&script)
            .arg(base_url.trim_end_matches('/'))
            .arg(service)
            .output()
            .await
            .unwrap_or_else(|err| panic!("run {}: {err}", script.display()));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis failed on the {service} port:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains("No issues found"), "{service}:\n{text}");
    }
}

//! OTLP trace export across the mesh (spec 40 §7.5): one `/v1/run` is one trace
//! whose id is the run's `trace_id`, with spans from controller, gateway and
//! ledger-writer, and no canary text in any span; nothing is exported while
//! `PECR_OTEL_ENABLED` is off, yet an incoming `traceparent` still reaches
//! the next hop and the response's trace id.
//!
//! The receiver speaks either transport the services export with: OTLP/HTTP
//! protobuf (`POST /v1/traces`) or OTLP/gRPC (the collector's
//! `TraceService/Export`, served by tonic).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use pecr_mesh_tests::{Mesh, MeshOptions, assert_no_canary, roomy_budget, run_request};
use pecr_testkit::ServiceProcess;
use prost::Message;

const QUERY: &str = "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f status";
const SERVICES: [&str; 3] = ["pecr-controller", "pecr-gateway", "pecr-ledger-writer"];

/// A received span with the `service.name` of its resource.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    exports: Arc<Mutex<usize>>,
}

/// The OTLP transports, as `OTEL_EXPORTER_OTLP_*PROTOCOL` spells them.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Http,
    Grpc,
}

impl Receiver {
    /// An OTLP/HTTP receiver.
    async fn start() -> (Self, SocketAddr) {
        Self::start_on(Transport::Http).await
    }

    async fn start_on(transport: Transport) -> (Self, SocketAddr) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("bind receiver: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("receiver addr: {err}"));
        match transport {
            Transport::Http => {
                let app = axum::Router::new()
                    .route("/v1/traces", post(export))
                    .with_state(receiver.clone());
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
            }
            Transport::Grpc => {
                let service = TraceServiceServer::new(receiver.clone());
                tokio::spawn(async move {
                    let _ = tonic::transport::Server::builder()
                        .add_service(service)
                        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                        .await;
                });
            }
        }
        (receiver, addr)
    }

    fn record(&self, request: ExportTraceServiceRequest) {
        if let Ok(mut exports) = self.exports.lock() {
            *exports += 1;
        }
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| string_attribute(&resource.attributes, "service.name"))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(received);
        }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }

    fn exports(&self) -> usize {
        self.exports.lock().map(|count| *count).unwrap_or_default()
    }
}

async fn export(
    State(receiver): State<Receiver>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body)
        .unwrap_or_else(|err| panic!("an OTLP export that does not decode: {err}"));
    receiver.record(request);
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|value| value.value.as_ref()) {
            Some(AnyValue::StringValue(text)) => Some(text.clone()),
            _ => None,
        }
    })
}

fn otel_env(addr: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("PECR_OTEL_ENABLED", "1".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

/// Everything a span carries as text: name, attributes, events.
fn span_text(span: &Span) -> String {
    let mut text = format!("{} {:?}", span.name, span.attributes);
    for event in &span.events {
        text.push_str(&format!(" {} {:?}", event.name, event.attributes));
    }
    text
}

#[tokio::test]
async fn one_run_is_one_trace_across_the_three_services() {
    let (receiver, addr) = Receiver::start().await;
    let env = otel_env(addr);
    let options = MeshOptions {
        gateway: env.clone(),
        controller: env.clone(),
    };
    let mesh = Mesh::start_with_ledger(options, &env).await;
    one_run_is_one_trace(mesh, receiver).await;
}

/// The same over OTLP/gRPC, chosen each way the variables allow: the
/// generic protocol variable (controller), the per-signal one winning over
/// a generic `http/protobuf` (gateway), the per-signal one alone (ledger).
/// The receiver answers nothing but gRPC, so every span it holds came that way.
#[tokio::test]
async fn one_run_is_one_trace_over_otlp_grpc() {
    let (receiver, addr) = Receiver::start_on(Transport::Grpc).await;
    let env = otel_env(addr);
    let with = |extra: &[(&'static str, &str)]| {
        let mut env = env.clone();
        env.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
        env
    };
    let options = MeshOptions {
        controller: with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
        gateway: with(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]),
    };
    let ledger = with(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")]);
    let mesh = Mesh::start_with_ledger(options, &ledger).await;
    one_run_is_one_trace(mesh, receiver).await;
}

async fn one_run_is_one_trace(mut mesh: Mesh, receiver: Receiver) {
    let response = mesh
        .client()
        .await
        .run(run_request("dev", QUERY, Some(roomy_budget())))
        .await
        .unwrap_or_else(|status| panic!("run: {status:?}"))
        .into_inner();
    let trace_id = ulid::Ulid::from_string(&response.trace_id)
        .unwrap_or_else(|err| panic!("trace_id {:?} is not a ULID: {err}", response.trace_id));
    let trace_bytes = trace_id.to_bytes().to_vec();

    // Wait for every service's spans of this trace.
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_trace = loop {
        let in_trace: Vec<Received> = receiver
            .spans()
            .into_iter()
            .filter(|received| received.span.trace_id == trace_bytes)
            .collect();
        // The spans that end last in each service: the run, the finalize
        // call, the finalize with its replay bundle.
        let covered = [
            "pecr.v1.ControllerService/Run",
            "pecr.v1.GatewayService/Finalize",
            "pecr.v1.LedgerService/RecordFinalize",
        ]
        .iter()
        .all(|name| in_trace.iter().any(|received| received.span.name == *name));
        if covered || Instant::now() > deadline {
            break in_trace;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names = |service: &str| -> Vec<String> {
        in_trace
            .iter()
            .filter(|received| received.service == service)
            .map(|received| received.span.name.clone())
            .collect()
    };
    for service in SERVICES {
        assert!(
            !names(service).is_empty(),
            "no {service} span in trace {trace_id}; received: {:?}",
            receiver
                .spans()
                .iter()
                .map(|received| (&received.service, &received.span.name))
                .collect::<Vec<_>>()
        );
    }
    let controller = names("pecr-controller");
    for name in [
        "controller.run",
        "session.create",
        "finalize.compile",
        "pecr.v1.ControllerService/Run",
    ] {
        assert!(
            controller.iter().any(|n| n == name),
            "controller spans {controller:?} lack {name}"
        );
    }
    assert!(controller.iter().any(|n| n.starts_with("operator.")));
    let gateway = names("pecr-gateway");
    for name in [
        "pecr.v1.GatewayService/CreateSession",
        "operator.fetch_rows",
        "policy.evaluate",
        "ledger.append",
    ] {
        assert!(
            gateway.iter().any(|n| n == name),
            "gateway spans {gateway:?} lack {name}"
        );
    }
    let ledger = names("pecr-ledger-writer");
    // The run's first calls are recorded with its session.
    assert!(
        ledger.iter().any(|n| n == "record_session"),
        "ledger-writer spans {ledger:?} lack the record_session db span"
    );
    let db_span = in_trace
        .iter()
        .find(|received| received.span.name == "record_session")
        .map(|received| &received.span.attributes);
    assert_eq!(
        db_span.and_then(|attributes| string_attribute(attributes, "db.system")),
        Some("postgresql".to_owned())
    );

    // Every server span of the run's calls belongs to this one trace (the
    // controller's start-up replay pruning is a trace of its own).
    for received in receiver.spans() {
        let name = &received.span.name;
        if name.starts_with("pecr.v1.ControllerService/")
            || name.starts_with("pecr.v1.GatewayService/")
            || name.starts_with("pecr.v1.LedgerService/Record")
        {
            assert_eq!(
                received.span.trace_id, trace_bytes,
                "{} span {} is outside the run's trace",
                received.service, received.span.name
            );
        }
        assert_no_canary(
            &format!("{} span {}", received.service, received.span.name),
            &span_text(&received.span),
        );
    }
    for line in mesh.logs() {
        assert_no_canary("a service log line", &line);
    }
}

#[tokio::test]
async fn nothing_is_exported_while_tracing_is_off() {
    let (receiver, addr) = Receiver::start().await;
    // The exporter's settings without the switch.
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    let options = MeshOptions {
        gateway: env.clone(),
        controller: env.clone(),
    };
    let mesh = Mesh::start_with_ledger(options, &env).await;
    let response = mesh
        .client()
        .await
        .run(run_request("dev", QUERY, Some(roomy_budget())))
        .await
        .unwrap_or_else(|status| panic!("run: {status:?}"))
        .into_inner();
    assert!(!response.trace_id.is_empty());
    // A graceful stop flushes whatever an exporter holds, so once every
    // service has exited, each span it would ever send has been sent.
    let Mesh {
        ledger,
        gateway,
        controller,
        ..
    } = mesh;
    let gateway = gateway.expect("gateway running");
    for service in [controller, gateway, ledger] {
        assert_eq!(service.terminate().await, Some(0), "a clean stop");
    }
    assert_eq!(receiver.exports(), 0, "spans were exported while disabled");
}

#[tokio::test]
async fn a_rest_traceparent_names_the_run_trace() {
    let (receiver, addr) = Receiver::start().await;
    let env = otel_env(addr);
    let options = MeshOptions {
        gateway: env.clone(),
        controller: env.clone(),
    };
    let mesh = Mesh::start_with_ledger(options, &env).await;
    let trace_hex = "0af7651916cd43dd8448eb211c80319c";
    let parent_hex = "b7ad6b7169203331";
    let traceparent = format!("00-{trace_hex}-{parent_hex}-01");
    let answer = pecr_testkit::http_post_json(
        &mesh.url("/v1/run"),
        &[
            ("x-pecr-principal-id", "dev"),
            ("traceparent", traceparent.as_str()),
        ],
        &serde_json::json!({ "query": "status" }).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let trace_id = answer.json()["trace_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let trace_bytes = ulid::Ulid::from_string(&trace_id)
        .unwrap_or_else(|err| panic!("trace_id {trace_id:?}: {err}"))
        .to_bytes()
        .to_vec();
    let hex: String = trace_bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, trace_hex, "the traceparent's trace is the run's trace");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = receiver.spans();
        let run = spans.iter().find(|received| {
            received.span.trace_id == trace_bytes
                && received.span.name == "pecr.v1.ControllerService/Run"
        });
        let gateway = spans.iter().any(|received| {
            received.span.trace_id == trace_bytes && received.service == "pecr-gateway"
        });
        if let (Some(run), true) = (run, gateway) {
            let parent: String = run
                .span
                .parent_span_id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(parent, parent_hex, "the REST caller's span is the parent");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no controller Run and gateway spans in trace {trace_hex}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `http/json` (or any other protocol) stops start-up with an error naming
/// the variable, reported together with the service's own bad settings.
#[tokio::test]
async fn an_unsupported_protocol_stops_start_up() {
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
    ] {
        // No PECR_DB_URL: the service's own configuration error.
        let env = vec![
            ("PECR_OTEL_ENABLED", "1".to_owned()),
            (var, value.to_owned()),
            ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ];
        let report = ServiceProcess::run_to_exit("pecr-ledger-writer", &env).await;
        assert_eq!(report.code, Some(1), "{}", report.stderr);
        assert!(
            report.stderr.contains(&format!(
                "STARTUP_ERROR ERR_INVALID_CONFIG: {var}=\"{value}\""
            )),
            "{}",
            report.stderr
        );
        assert!(report.stderr.contains("PECR_DB_URL"), "{}", report.stderr);
    }
}

/// With export off in the controller and the gateway, a caller's
/// `traceparent` (REST header or gRPC metadata, no `x-pecr-trace-id`) names
/// the run's trace id and travels on unchanged: controller → gateway →
/// ledger-writer. ledger-writer alone exports, and each of its server spans
/// in the trace has the caller's span as its parent, which only an
/// unchanged `traceparent` carries through both hops (a hop that dropped
/// it would leave the next one a parent derived from the trace id).
#[tokio::test]
async fn with_tracing_off_a_traceparent_reaches_the_next_hop_and_the_response() {
    let (receiver, addr) = Receiver::start().await;
    let mesh = Mesh::start_with_ledger(MeshOptions::default(), &otel_env(addr)).await;

    let rest_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let rest_parent = "00f067aa0ba902b7";
    let answer = pecr_testkit::http_post_json(
        &mesh.url("/v1/run"),
        &[
            ("x-pecr-principal-id", "dev"),
            (
                "traceparent",
                format!("00-{rest_trace}-{rest_parent}-01").as_str(),
            ),
        ],
        &serde_json::json!({ "query": "status" }).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let rest_trace_id = answer.json()["trace_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    assert_eq!(hex_of_ulid(&rest_trace_id), rest_trace, "REST trace_id");

    let grpc_trace = "0123456789abcdef0123456789abcdef";
    let grpc_parent = "1122334455667788";
    let mut request = run_request("dev", "status", Some(roomy_budget()));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace}-{grpc_parent}-01")
            .parse()
            .unwrap_or_else(|err| panic!("traceparent: {err}")),
    );
    let response = mesh
        .client()
        .await
        .run(request)
        .await
        .unwrap_or_else(|status| panic!("run: {status:?}"))
        .into_inner();
    assert_eq!(hex_of_ulid(&response.trace_id), grpc_trace, "gRPC trace_id");

    for (trace, parent) in [(rest_trace, rest_parent), (grpc_trace, grpc_parent)] {
        let spans = ledger_server_spans(&receiver, trace).await;
        for span in &spans {
            assert_eq!(
                hex(&span.parent_span_id),
                parent,
                "ledger-writer's {} span is not a child of the caller's span",
                span.name
            );
        }
        let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
        // The gateway's first and last ledger writes of the run.
        for name in [
            "pecr.v1.LedgerService/RecordSession",
            "pecr.v1.LedgerService/RecordFinalize",
        ] {
            assert!(
                names.contains(&name),
                "trace {trace}: {names:?} lack {name}"
            );
        }
    }
}

/// ledger-writer's server spans in `trace` (hex), once the run's last
/// ledger call, the finalize (with the replay bundle), has been exported.
async fn ledger_server_spans(receiver: &Receiver, trace: &str) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<Span> = receiver
            .spans()
            .into_iter()
            .filter(|received| received.service == "pecr-ledger-writer")
            .map(|received| received.span)
            .filter(|span| hex(&span.trace_id) == trace && span.name.starts_with("pecr.v1."))
            .collect();
        if spans
            .iter()
            .any(|span| span.name == "pecr.v1.LedgerService/RecordFinalize")
        {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "no ledger-writer finalize span in trace {trace}; received: {:?}",
            receiver
                .spans()
                .iter()
                .map(|received| (
                    &received.service,
                    &received.span.name,
                    hex(&received.span.trace_id)
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A ULID trace id as the 32 hex digits of `traceparent`.
fn hex_of_ulid(trace_id: &str) -> String {
    let id = ulid::Ulid::from_string(trace_id)
        .unwrap_or_else(|err| panic!("trace_id {trace_id:?} is not a ULID: {err}"));
    hex(&id.to_bytes())
}

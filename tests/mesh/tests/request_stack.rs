//! The request stack, checked against the descriptor set rather than a
//! list someone must remember to extend: every RPC of every PECR service
//! refuses a caller without credentials before anything of the service
//! runs, and every call is counted in the service's `grpc_server_*`
//! metrics under its own service, method and code. Health stays open.

use http::uri::PathAndQuery;
use pecr_mesh_tests::Mesh;
use pecr_testkit::{ServiceProcess, http_get};
use prost_reflect::DescriptorPool;
use tonic::Code;
use tonic::transport::Channel;

/// Calls `path` with an empty message (a valid encoding of every request
/// type) and no metadata at all.
async fn call_anonymously(channel: Channel, path: &str) -> tonic::Status {
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("channel ready");
    let path = PathAndQuery::try_from(path.to_owned()).expect("gRPC path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match client.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Status::ok("served"),
        Err(status) => status,
    }
}

async fn channel(service: &ServiceProcess) -> Channel {
    Channel::from_shared(service.grpc_url())
        .expect("gRPC URL")
        .connect()
        .await
        .expect("connect")
}

/// The value of the one `name{labels…}` sample whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn every_rpc_refuses_anonymous_callers_and_is_counted() {
    let mesh = Mesh::start().await;
    let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let gateway = mesh.gateway.as_ref().expect("gateway runs");
    let services = [
        (pecr_proto::service_names::GATEWAY, gateway),
        (pecr_proto::service_names::CONTROLLER, &mesh.controller),
        (pecr_proto::service_names::LEDGER, &mesh.ledger),
    ];
    for (name, process) in services {
        let service = pool
            .get_service_by_name(name)
            .expect("service in the descriptor set");
        let channel = channel(process).await;
        let mut methods = Vec::new();
        for method in service.methods() {
            let path = format!("/{name}/{}", method.name());
            let status = call_anonymously(channel.clone(), &path).await;
            assert!(
                matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied
                ),
                "{path} answered an anonymous caller with {status:?}"
            );
            let kind = if method.is_server_streaming() {
                "server_stream"
            } else {
                "unary"
            };
            methods.push((method.name().to_owned(), kind, status.code()));
        }
        assert!(!methods.is_empty(), "{name} has RPCs");

        let metrics = http_get(&process.http_url("/metrics")).await;
        assert_eq!(metrics.status, 200, "{}", metrics.body);
        for (method, kind, code) in &methods {
            let code = match code {
                Code::Unauthenticated => "Unauthenticated",
                _ => "PermissionDenied",
            };
            let labels = [
                ("grpc_service", name),
                ("grpc_method", method.as_str()),
                ("grpc_type", kind),
                ("grpc_code", code),
            ];
            assert!(
                sample(&metrics.body, "grpc_server_handled_total", &labels) >= 1,
                "{name}/{method} is not counted with code {code}"
            );
            assert!(
                sample(&metrics.body, "grpc_server_started_total", &labels[..3]) >= 1,
                "{name}/{method} is not counted as started"
            );
        }
        assert!(
            metrics.body.contains("process_resident_memory_bytes"),
            "{name} exports process metrics"
        );
    }

    // Health answers anonymously, and is counted too.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(gateway).await);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers anonymously");
    assert_eq!(answer.get_ref().status, 1, "SERVING");
    let metrics = http_get(&gateway.http_url("/metrics")).await.body;
    let health_labels = [
        ("grpc_service", "grpc.health.v1.Health"),
        ("grpc_method", "Check"),
        ("grpc_code", "OK"),
    ];
    assert!(sample(&metrics, "grpc_server_handled_total", &health_labels) >= 1);
}

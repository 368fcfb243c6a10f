//! Service-to-service mTLS: the whole mesh with TLS on every gRPC port and
//! client certificates required by ledger-writer and the gateway, a query
//! answered end to end, then real clients (tonic and grpcurl) with and
//! without the right certificates against ledger-writer and the gateway.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pecr_devcerts::{DevCa, LOCAL_NAMES};
use pecr_errors::{ErrorCode, PecrError};
use pecr_mesh_tests::{Mesh, MeshOptions, replay, run_request};
use pecr_proto::v1::{
    self, TerminalMode, controller_service_client::ControllerServiceClient,
    gateway_service_client::GatewayServiceClient, ledger_service_client::LedgerServiceClient,
};
use pecr_testkit::{ServiceProcess, binary_path, http_post_json, tool_path};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const STATUS_QUESTION: &str = "What is the customer status and plan tier?";

/// Certificates of one test in a temporary folder, removed on drop.
struct Pki {
    dir: PathBuf,
    ca: DevCa,
}

/// A certificate and key written to disk, with their PEM text.
struct Issued {
    cert: String,
    key: String,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pecr-mtls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("temp dir: {err}"));
        let ca = DevCa::new("PECR test CA").unwrap_or_else(|err| panic!("CA: {err}"));
        write(&dir, "ca.pem", ca.cert_pem());
        Self { dir, ca }
    }

    fn ca_path(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A certificate for `identity` (plus localhost and 127.0.0.1) signed by `ca`.
    fn issue_by(&self, ca: &DevCa, file: &str, identity: &str) -> Issued {
        let issued = ca
            .issue(identity, &LOCAL_NAMES)
            .unwrap_or_else(|err| panic!("issue {identity}: {err}"));
        Issued {
            cert: write(&self.dir, &format!("{file}.pem"), &issued.cert_pem),
            key: write(&self.dir, &format!("{file}.key"), &issued.key_pem),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }

    fn issue(&self, identity: &str) -> Issued {
        self.issue_by(&self.ca, identity, identity)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    path.display().to_string()
}

type Env = Vec<(&'static str, String)>;

/// A server certificate, and with `client_ca` required client certificates.
fn server_env(cert: &Issued, client_ca: Option<&str>) -> Env {
    let mut env = vec![
        ("PECR_TLS_CERT", cert.cert.clone()),
        ("PECR_TLS_KEY", cert.key.clone()),
    ];
    if let Some(ca) = client_ca {
        env.push(("PECR_TLS_CLIENT_CA", ca.to_owned()));
    }
    env
}

/// The CA to trust and the identity to present to https:// upstreams.
fn client_env(ca: &str, identity: &Issued) -> Env {
    vec![
        ("PECR_TLS_CA", ca.to_owned()),
        ("PECR_TLS_CLIENT_CERT", identity.cert.clone()),
        ("PECR_TLS_CLIENT_KEY", identity.key.clone()),
    ]
}

struct TlsMesh {
    mesh: Mesh,
    pki: Pki,
}

/// ledger-writer and gateway require client certificates (their default
/// allowlists); the controller serves TLS without asking for one.
async fn start_tls_mesh() -> TlsMesh {
    let pki = Pki::new();
    let ca = pki.ca_path();
    let ledger = pki.issue("pecr-ledger-writer");
    let gateway = pki.issue("pecr-gateway");
    let controller = pki.issue("pecr-controller");
    let mut gateway_env = server_env(&gateway, Some(&ca));
    gateway_env.extend(client_env(&ca, &gateway));
    let mut controller_env = server_env(&controller, None);
    controller_env.extend(client_env(&ca, &controller));
    let mesh = Mesh::start_with_ledger(
        MeshOptions {
            gateway: gateway_env,
            controller: controller_env,
        },
        &server_env(&ledger, Some(&ca)),
    )
    .await;
    TlsMesh { mesh, pki }
}

/// Connects to `addr` over TLS, trusting `ca_pem` and presenting `identity`.
async fn tls_channel(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(issued) = identity {
        tls = tls.identity(Identity::from_pem(&issued.cert_pem, &issued.key_pem));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// How a call to ledger-writer ended.
#[derive(Debug)]
enum Outcome {
    Answered,
    /// The connection itself failed (TLS handshake refused, …).
    NoConnection(String),
    Refused(tonic::Status),
}

async fn list_ledger_events(channel: Result<Channel, tonic::transport::Error>) -> Outcome {
    let channel = match channel {
        Ok(channel) => channel,
        Err(err) => return Outcome::NoConnection(format!("{err:?}")),
    };
    let mut request = tonic::Request::new(v1::ListEventsRequest {
        trace_id: Some("mtls-probe".into()),
        ..v1::ListEventsRequest::default()
    });
    request.set_timeout(Duration::from_secs(10));
    match LedgerServiceClient::new(channel).list_events(request).await {
        Ok(_) => Outcome::Answered,
        Err(status) => Outcome::Refused(status),
    }
}

/// A refusal below gRPC: no connection, or a failed call that carries no
/// PECR error and came from the transport (the server never ran it).
fn assert_transport_refusal(what: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Answered => panic!("{what}: ledger-writer answered"),
        Outcome::NoConnection(cause) => assert!(!cause.is_empty(), "{what}"),
        Outcome::Refused(status) => assert!(
            PecrError::from_status(status).is_none()
                && status.code() != Code::Unauthenticated
                && std::error::Error::source(status).is_some(),
            "{what}: expected a transport failure, got {status:?}"
        ),
    }
}

fn assert_auth_invalid(what: &str, status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    let error = PecrError::from_status(status)
        .unwrap_or_else(|| panic!("{what}: no PECR error detail in {status:?}"));
    assert_eq!(error.code, ErrorCode::AuthInvalid, "{what}: {error:?}");
}

async fn health(channel: Channel) -> i32 {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_or_else(|status| panic!("health: {status:?}"))
        .into_inner()
        .status
}

#[tokio::test]
async fn a_query_crosses_the_mesh_over_mtls_and_only_allowed_identities_reach_the_ledger() {
    let TlsMesh { mesh, pki } = start_tls_mesh().await;
    let ledger_addr = mesh.ledger.grpc_addr;

    // End to end: CLI-like client → controller (server TLS) → gateway
    // (mTLS, controller identity) → ledger-writer (mTLS, gateway identity),
    // and the replay stored by the controller through ledger-writer.
    let channel = tls_channel(mesh.controller.grpc_addr, pki.ca_pem(), None)
        .await
        .unwrap_or_else(|err| panic!("connect controller: {err:?}"));
    let mut controller = ControllerServiceClient::new(channel);
    let response = controller
        .run(run_request("dev", STATUS_QUESTION, None))
        .await
        .unwrap_or_else(|status| panic!("run over mTLS: {status:?}"))
        .into_inner();
    assert_eq!(
        TerminalMode::try_from(response.terminal_mode).ok(),
        Some(TerminalMode::Supported),
        "{response:?}"
    );
    let bundle = replay(&mut controller, "dev", &response.run_id).await;
    assert_eq!(
        bundle.metadata.map(|m| m.run_id).as_ref(),
        Some(&response.run_id)
    );

    // An auditor's identity reads what the run wrote.
    let auditor_identity = pki.issue("pecr-auditor");
    let channel = tls_channel(ledger_addr, pki.ca_pem(), Some(&auditor_identity))
        .await
        .unwrap_or_else(|err| panic!("connect ledger as auditor: {err:?}"));
    let events = LedgerServiceClient::new(channel)
        .list_events(v1::ListEventsRequest {
            trace_id: Some(response.trace_id.clone()),
            ..v1::ListEventsRequest::default()
        })
        .await
        .unwrap_or_else(|status| panic!("list events as auditor: {status:?}"))
        .into_inner()
        .events;
    assert!(!events.is_empty(), "the run wrote no ledger events");

    // No client certificate: refused in the handshake.
    let outcome = list_ledger_events(tls_channel(ledger_addr, pki.ca_pem(), None).await).await;
    assert_transport_refusal("no client certificate", &outcome);

    // The gateway's name, but signed by another CA: refused in the handshake.
    let rogue_ca = DevCa::new("rogue CA").unwrap_or_else(|err| panic!("CA: {err}"));
    let rogue = pki.issue_by(&rogue_ca, "rogue-gateway", "pecr-gateway");
    let outcome =
        list_ledger_events(tls_channel(ledger_addr, pki.ca_pem(), Some(&rogue)).await).await;
    assert_transport_refusal("certificate from another CA", &outcome);

    // A valid certificate naming an identity that is not allowed:
    // UNAUTHENTICATED with ERR_AUTH_INVALID; health stays open to it.
    let stranger = pki.issue("pecr-stranger");
    let outcome =
        list_ledger_events(tls_channel(ledger_addr, pki.ca_pem(), Some(&stranger)).await).await;
    match &outcome {
        Outcome::Refused(status) => assert_auth_invalid("pecr-stranger", status),
        other => panic!("pecr-stranger: expected UNAUTHENTICATED, got {other:?}"),
    }
    let channel = tls_channel(ledger_addr, pki.ca_pem(), Some(&stranger))
        .await
        .unwrap_or_else(|err| panic!("connect ledger as stranger: {err:?}"));
    assert_eq!(
        health(channel).await,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The gateway's and the controller's identities are admitted, each to
    // its own RPCs only: neither reads the audit trail.
    for identity in ["pecr-gateway", "pecr-controller"] {
        let issued = pki.issue(identity);
        let outcome =
            list_ledger_events(tls_channel(ledger_addr, pki.ca_pem(), Some(&issued)).await).await;
        match &outcome {
            Outcome::Refused(status) => {
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{identity}: {status:?}"
                );
                let error = PecrError::from_status(status)
                    .unwrap_or_else(|| panic!("{identity}: no PECR detail in {status:?}"));
                assert_eq!(error.code, ErrorCode::PolicyDenied);
            }
            other => panic!("{identity}: expected PERMISSION_DENIED, got {other:?}"),
        }
    }

    // Plaintext gRPC to the TLS port fails.
    let plaintext = Endpoint::from_shared(format!("http://{ledger_addr}"))
        .unwrap_or_else(|err| panic!("endpoint: {err}"))
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    assert_transport_refusal("plaintext", &list_ledger_events(plaintext).await);
}

#[tokio::test]
async fn the_gateway_admits_only_the_controller_over_grpc_and_users_over_rest() {
    let TlsMesh { mesh, pki } = start_tls_mesh().await;
    let gateway = mesh
        .gateway
        .as_ref()
        .unwrap_or_else(|| panic!("gateway running"));
    let simulate = || {
        let mut request = tonic::Request::new(v1::SimulatePolicyRequest {
            action: "operator_call".into(),
            params: r#"{"op_name":"fetch_span","object_id":"public/public_1.txt"}"#.into(),
            ..v1::SimulatePolicyRequest::default()
        });
        request.metadata_mut().insert(
            "x-pecr-principal-id",
            "support"
                .parse()
                .unwrap_or_else(|err| panic!("metadata: {err}")),
        );
        request
    };

    let controller_identity = pki.issue("pecr-controller");
    let channel = tls_channel(gateway.grpc_addr, pki.ca_pem(), Some(&controller_identity))
        .await
        .unwrap_or_else(|err| panic!("connect gateway as controller: {err:?}"));
    GatewayServiceClient::new(channel)
        .simulate_policy(simulate())
        .await
        .unwrap_or_else(|status| panic!("simulate as controller: {status:?}"));

    // ledger-writer's identity may not call the gateway's operator RPCs.
    let ledger_identity = pki.issue("pecr-ledger-writer");
    let channel = tls_channel(gateway.grpc_addr, pki.ca_pem(), Some(&ledger_identity))
        .await
        .unwrap_or_else(|err| panic!("connect gateway as ledger: {err:?}"));
    let status = GatewayServiceClient::new(channel)
        .simulate_policy(simulate())
        .await
        .err()
        .unwrap_or_else(|| panic!("the gateway admitted pecr-ledger-writer"));
    assert_auth_invalid("pecr-ledger-writer at the gateway", &status);

    // End users reach the gateway through its REST edge (in-process).
    let answer = http_post_json(
        &gateway.http_url("/v1/policies/simulate"),
        &[("x-pecr-principal-id", "support")],
        r#"{"action":"operator_call","params":{"op_name":"fetch_span","object_id":"public/public_1.txt"}}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// The `pecr` CLI reaches a TLS controller with `--tls-ca` (or
/// `PECR_TLS_CA`), and refuses TLS options with an http:// URL.
fn cli_runs_a_query_over_tls(mesh: &Mesh, pki: &Pki) {
    let https = format!("https://{}", mesh.controller.grpc_addr);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(binary_path("pecr"))
            .env_remove("PECR_TLS_CA")
            .env_remove("PECR_CONTROLLER_URL")
            .envs(env.iter().copied())
            .args(args)
            .args(["--principal", "dev", "run", STATUS_QUESTION])
            .output()
            .unwrap_or_else(|err| panic!("run pecr: {err}"))
    };
    let ca = pki.ca_path();
    for output in [
        run(&["--controller", &https, "--tls-ca", &ca], &[]),
        run(
            &[],
            &[("PECR_CONTROLLER_URL", &https), ("PECR_TLS_CA", &ca)],
        ),
    ] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("SUPPORTED"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Without the CA the test CA is not trusted (system roots only).
    assert!(!run(&["--controller", &https], &[]).status.success());
    let plaintext = format!("http://{}", mesh.controller.grpc_addr);
    let refused = run(&["--controller", &plaintext, "--tls-ca", &ca], &[]);
    assert_eq!(refused.status.code(), Some(2));
}

/// grpcurl against ledger-writer's health service: `-cacert` alone is not
/// enough, `-cert` and `-key` of an identity the CA signed are. Also the
/// CLI against the TLS controller of the same mesh.
#[tokio::test]
async fn grpcurl_needs_a_client_certificate_and_the_cli_speaks_tls() {
    let TlsMesh { mesh, pki } = start_tls_mesh().await;
    cli_runs_a_query_over_tls(&mesh, &pki);
    let gateway_identity = pki.issue("pecr-gateway");
    let ca = pki.ca_path();
    let addr = mesh.ledger.grpc_addr.to_string();
    let grpcurl = |cert: &[&str]| {
        Command::new(tool_path("grpcurl"))
            .args(["-cacert", &ca])
            .args(cert)
            .args(["-max-time", "10", "-d", r#"{"service":""}"#, &addr])
            .arg("grpc.health.v1.Health/Check")
            .output()
            .unwrap_or_else(|err| panic!("run grpcurl: {err}"))
    };
    let with_cert = grpcurl(&[
        "-cert",
        &gateway_identity.cert,
        "-key",
        &gateway_identity.key,
    ]);
    let stdout = String::from_utf8_lossy(&with_cert.stdout);
    assert!(
        with_cert.status.success() && stdout.contains("SERVING"),
        "grpcurl with a client certificate: {stdout}{}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    let without = grpcurl(&[]);
    assert!(
        !without.status.success(),
        "grpcurl without a client certificate succeeded: {}",
        String::from_utf8_lossy(&without.stdout)
    );
}

/// Bad TLS settings stop a service before it listens.
#[tokio::test]
async fn bad_tls_files_are_startup_errors() {
    let pki = Pki::new();
    let ledger = pki.issue("pecr-ledger-writer");
    let junk = write(&pki.dir, "junk.pem", "not a certificate\n");
    let base = vec![
        (
            "PECR_DB_URL",
            "postgres://postgres@127.0.0.1:5432/pecr_unused".to_owned(),
        ),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".to_owned()),
    ];
    let cases: [(&str, Env); 4] = [
        (
            "PECR_TLS_CERT",
            vec![
                (
                    "PECR_TLS_CERT",
                    pki.dir.join("missing.pem").display().to_string(),
                ),
                ("PECR_TLS_KEY", ledger.key.clone()),
            ],
        ),
        (
            "PECR_TLS_CERT",
            vec![
                ("PECR_TLS_CERT", junk.clone()),
                ("PECR_TLS_KEY", ledger.key.clone()),
            ],
        ),
        ("PECR_TLS_KEY", vec![("PECR_TLS_CERT", ledger.cert.clone())]),
        (
            "PECR_TLS_CLIENT_CA",
            vec![
                ("PECR_TLS_CERT", ledger.cert.clone()),
                ("PECR_TLS_KEY", ledger.key.clone()),
                ("PECR_TLS_CLIENT_CA", junk.clone()),
            ],
        ),
    ];
    for (names, extra) in cases {
        let mut env = base.clone();
        env.extend(extra);
        let report = ServiceProcess::run_to_exit("pecr-ledger-writer", &env).await;
        assert_eq!(report.code, Some(1), "{names}: {}", report.stderr);
        assert!(
            report.stderr.contains("STARTUP_ERROR ERR_INVALID_CONFIG")
                && report.stderr.contains(names),
            "{names}: {}",
            report.stderr
        );
    }
}

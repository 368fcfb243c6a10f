//! The three services as separate processes on ephemeral ports, checked with
//! grpcurl (reflection and health) and with tonic clients.

use std::process::Command;
use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1;
use pecr_testkit::{ServiceProcess, TestDatabase, credentials, http_get, tool_path};
use tonic::Code;

struct Mesh {
    _db: TestDatabase,
    ledger: ServiceProcess,
    gateway: ServiceProcess,
    controller: ServiceProcess,
}

fn loopback_ports(grpc_key: &'static str, http_key: &'static str) -> [(&'static str, String); 2] {
    [
        (grpc_key, "127.0.0.1:0".to_owned()),
        (http_key, "127.0.0.1:0".to_owned()),
    ]
}

async fn start_mesh() -> Mesh {
    let db = TestDatabase::create().await;
    pecr_adapters::load_fixture_sql(db.client(), pecr_adapters::SAFEVIEW_FIXTURE_SQL)
        .await
        .expect("safe-view fixture");
    let mut ledger_env = loopback_ports("PECR_LEDGER_GRPC_ADDR", "PECR_LEDGER_HTTP_ADDR").to_vec();
    ledger_env.push(("PECR_DB_URL", db.url()));
    ledger_env.extend(credentials::ledger_writer_tokens());
    let ledger = ServiceProcess::start("pecr-ledger-writer", &ledger_env).await;

    let mut gateway_env = loopback_ports("PECR_GATEWAY_GRPC_ADDR", "PECR_BIND_ADDR").to_vec();
    gateway_env.push(("PECR_LEDGER_URL", ledger.grpc_url()));
    gateway_env.push(credentials::gateway_ledger_token());
    gateway_env.push(("PECR_DB_URL", db.url()));
    let root = pecr_testkit::workspace_root();
    gateway_env.push((
        "PECR_FS_CORPUS_PATH",
        root.join("fixtures/fs_corpus").display().to_string(),
    ));
    gateway_env.push((
        "PECR_POLICY_BUNDLE_DIR",
        root.join("opa/bundle").display().to_string(),
    ));
    let gateway = ServiceProcess::start("pecr-gateway", &gateway_env).await;

    let mut controller_env =
        loopback_ports("PECR_CONTROLLER_GRPC_ADDR", "PECR_CONTROLLER_BIND_ADDR").to_vec();
    controller_env.push(("PECR_GATEWAY_URL", gateway.grpc_url()));
    controller_env.push(("PECR_LEDGER_URL", ledger.grpc_url()));
    controller_env.push(credentials::controller_ledger_token());
    controller_env.push((
        "PECR_BUDGET_DEFAULTS",
        pecr_mesh_tests::BUDGET_DEFAULTS.into(),
    ));
    let controller = ServiceProcess::start("pecr-controller", &controller_env).await;

    for service in [&ledger, &gateway, &controller] {
        service.wait_ready().await;
    }
    Mesh {
        _db: db,
        ledger,
        gateway,
        controller,
    }
}

/// Runs `grpcurl -plaintext <flags> <addr> <verb...>`; returns stdout and
/// panics with stderr on failure.
fn grpcurl(addr: std::net::SocketAddr, flags: &[&str], verb: &[&str]) -> String {
    let args: Vec<&str> = flags.iter().chain(verb).copied().collect();
    let output = Command::new(tool_path("grpcurl"))
        .arg("-plaintext")
        .args(flags)
        .arg(addr.to_string())
        .args(verb)
        .output()
        .unwrap_or_else(|err| panic!("run grpcurl: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn every_service_serves_its_api_health_and_reflection_to_grpcurl() {
    let mesh = start_mesh().await;
    let services = [
        (
            &mesh.gateway,
            "pecr.v1.GatewayService",
            &[
                "CreateSession",
                "SimulatePolicy",
                "CallOperator",
                "Finalize",
            ][..],
        ),
        (
            &mesh.controller,
            "pecr.v1.ControllerService",
            &[
                "Run",
                "RunStream",
                "ListReplays",
                "GetReplay",
                "SubmitEvaluation",
                "GetScorecards",
                "GetEvaluation",
            ][..],
        ),
        (
            &mesh.ledger,
            "pecr.v1.LedgerService",
            &[
                "RecordSession",
                "GetSession",
                "AppendEvent",
                "RecordOperatorCall",
                "RecordFinalize",
                "StoreReplayBundle",
            ][..],
        ),
    ];
    for (process, service, rpcs) in services {
        let listed = grpcurl(process.grpc_addr, &[], &["list"]);
        let listed: Vec<&str> = listed.lines().collect();
        for expected in [service, "grpc.health.v1.Health"] {
            assert!(
                listed.contains(&expected),
                "{service}: {expected} missing from {listed:?}"
            );
        }
        // Each reflection protocol lists itself; grpcurl picks one.
        assert!(
            listed
                .iter()
                .any(|name| name.starts_with("grpc.reflection.")),
            "{listed:?}"
        );
        assert_eq!(
            listed.len(),
            3,
            "{service} lists only what it serves: {listed:?}"
        );

        let described = grpcurl(process.grpc_addr, &[], &["describe", service]);
        for rpc in rpcs {
            assert!(
                described.contains(&format!("rpc {rpc} (")),
                "{service} describe lacks {rpc}:\n{described}"
            );
        }

        let health = grpcurl(
            process.grpc_addr,
            &["-d", &format!(r#"{{"service":"{service}"}}"#)],
            &["grpc.health.v1.Health/Check"],
        );
        assert!(
            health.contains(r#""status": "SERVING""#),
            "{service}: {health}"
        );
    }
}

#[tokio::test]
async fn errors_travel_as_pecr_error_details() {
    let mesh = start_mesh().await;
    let mut gateway =
        v1::gateway_service_client::GatewayServiceClient::connect(mesh.gateway.grpc_url())
            .await
            .expect("connect gateway");
    // The gateway is built: an anonymous call is refused with a PECR error.
    let status = gateway
        .create_session(v1::CreateSessionRequest::default())
        .await
        .expect_err("no principal");
    assert_eq!(status.code(), Code::Unauthenticated);
    let error = PecrError::from_status(&status).expect("error detail");
    assert_eq!(
        (error.code, error.http_status),
        (ErrorCode::PolicyDenied, 401)
    );
    assert_eq!(error.message, "missing x-pecr-principal-id header");

    let mut controller =
        v1::controller_service_client::ControllerServiceClient::connect(mesh.controller.grpc_url())
            .await
            .expect("connect controller");
    let status = controller
        .run(v1::RunRequest {
            query: "smoke".into(),
            budget: None,
        })
        .await
        .expect_err("no principal");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        PecrError::from_status(&status).map(|e| (e.code, e.http_status)),
        Some((ErrorCode::PolicyDenied, 401))
    );
}

#[tokio::test]
async fn readiness_follows_the_real_dependency() {
    let mesh = start_mesh().await;
    let ready = http_get(&mesh.gateway.http_url("/readyz")).await;
    assert_eq!(
        ready.body,
        r#"{"checks":{"ledger":true,"opa":true,"postgres":true},"status":"ready"}"#
    );
    let ready = http_get(&mesh.controller.http_url("/readyz")).await;
    assert_eq!(
        ready.body,
        r#"{"checks":{"auth":true,"gateway":true},"status":"ready"}"#
    );

    let gateway_grpc = mesh.gateway.grpc_addr;
    mesh.ledger.stop().await;
    let ready = http_get(&mesh.gateway.http_url("/readyz")).await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (
            503,
            r#"{"checks":{"ledger":false,"opa":true,"postgres":true},"status":"not_ready"}"#
        )
    );

    // gRPC health follows within its sync interval.
    let mut health = String::new();
    for _ in 0..20 {
        health = grpcurl(
            gateway_grpc,
            &["-d", r#"{"service":""}"#],
            &["grpc.health.v1.Health/Check"],
        );
        if health.contains("NOT_SERVING") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(health.contains("NOT_SERVING"), "{health}");
}

#[tokio::test]
async fn gateway_and_controller_refuse_bad_configuration_at_start_up() {
    type Case = (&'static str, Vec<(&'static str, String)>, &'static str);
    let cases: [Case; 4] = [
        (
            "pecr-gateway",
            vec![("PECR_BIND_ADDR", "0.0.0.0:0".into())],
            "ERR_NONLOCAL_BIND_REQUIRES_AUTH",
        ),
        (
            "pecr-gateway",
            vec![("PECR_LEDGER_URL", "ftp://ledger".into())],
            "ERR_INVALID_CONFIG",
        ),
        (
            "pecr-controller",
            vec![("PECR_CONTROLLER_GRPC_ADDR", "nope".into())],
            "ERR_INVALID_CONFIG",
        ),
        (
            "pecr-controller",
            vec![("PECR_AUTH_MODE", "kerberos".into())],
            "ERR_INVALID_CONFIG",
        ),
    ];
    for (binary, env, code) in cases {
        let report = ServiceProcess::run_to_exit(binary, &env).await;
        assert_eq!(report.code, Some(1), "{binary}: {}", report.stderr);
        assert!(
            report.stderr.contains(&format!("STARTUP_ERROR {code}: ")),
            "{binary} should fail with {code}:\n{}",
            report.stderr
        );
    }
}

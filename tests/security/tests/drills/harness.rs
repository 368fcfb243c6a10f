//! A mesh a drill can break: ledger-writer, gateway and controller as
//! processes on ephemeral ports over a fresh schema of the gate's private
//! PostgreSQL, with each service's settings kept so ledger-writer can be
//! killed and started again on the same ports, and without insisting that
//! every service is ready (a drill may start one that never is).

use std::net::SocketAddr;
use std::time::Duration;

use pecr_mesh_tests::{
    Env, auditor_events, controller_defaults, fixture_database, gateway_defaults, ledger_defaults,
    merge,
};
use pecr_proto::v1::{
    self, controller_service_client::ControllerServiceClient,
    gateway_service_client::GatewayServiceClient,
};
use pecr_testkit::{ServiceProcess, TestDatabase, workspace_root};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// Settings added to (or replacing) the drill defaults of each service.
#[derive(Default)]
pub struct DrillSettings {
    pub gateway: Env,
    pub controller: Env,
    /// Wait for the gateway's and the controller's `/readyz` at start.
    pub wait_ready: bool,
}

pub struct DrillMesh {
    /// Kept for its lifetime: dropping it drops the schema.
    _db: TestDatabase,
    ledger_env: Env,
    ledger: Option<ServiceProcess>,
    pub gateway: ServiceProcess,
    pub controller: ServiceProcess,
    gateway_channel: Channel,
    controller_channel: Channel,
}

fn channel(url: String) -> Channel {
    Channel::from_shared(url)
        .unwrap_or_else(|err| panic!("channel url: {err}"))
        .connect_lazy()
}

impl DrillMesh {
    pub async fn start(settings: DrillSettings) -> Self {
        let db = fixture_database().await;
        let ledger_env = ledger_defaults(&db);
        let ledger = ServiceProcess::start("pecr-ledger-writer", &ledger_env).await;
        ledger.wait_ready().await;
        // From now on ledger-writer always comes back on the same ports.
        let ledger_env = merge(
            ledger_env,
            &[
                ("PECR_LEDGER_GRPC_ADDR", ledger.grpc_addr.to_string()),
                ("PECR_LEDGER_HTTP_ADDR", ledger.http_addr.to_string()),
            ],
        );
        // Load, not rate limiting, is under test: no per-principal limits.
        let gateway_env = merge(
            merge(
                gateway_defaults(&db, &ledger.grpc_url()),
                &[
                    ("PECR_RATE_LIMIT_SESSIONS_PER_WINDOW", "0".into()),
                    ("PECR_RATE_LIMIT_OPERATORS_PER_WINDOW", "0".into()),
                    ("PECR_RATE_LIMIT_FINALIZE_PER_WINDOW", "0".into()),
                ],
            ),
            &settings.gateway,
        );
        let gateway = ServiceProcess::start("pecr-gateway", &gateway_env).await;
        let controller_env = merge(
            merge(
                controller_defaults(&gateway.grpc_url(), &ledger.grpc_url()),
                &[("PECR_RATE_LIMIT_RUN_PER_WINDOW", "0".into())],
            ),
            &settings.controller,
        );
        let controller = ServiceProcess::start("pecr-controller", &controller_env).await;
        if settings.wait_ready {
            gateway.wait_ready().await;
            controller.wait_ready().await;
        }
        Self {
            _db: db,
            ledger_env,
            ledger: Some(ledger),
            gateway_channel: channel(gateway.grpc_url()),
            controller_channel: channel(controller.grpc_url()),
            gateway,
            controller,
        }
    }

    pub fn gateway_client(&self) -> GatewayServiceClient<Channel> {
        GatewayServiceClient::new(self.gateway_channel.clone())
    }

    pub fn controller_client(&self) -> ControllerServiceClient<Channel> {
        ControllerServiceClient::new(self.controller_channel.clone())
    }

    fn ledger(&self) -> &ServiceProcess {
        self.ledger
            .as_ref()
            .unwrap_or_else(|| panic!("ledger-writer is not running"))
    }

    /// SIGKILLs ledger-writer and waits until the process is gone.
    pub async fn kill_ledger(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.stop().await;
        }
    }

    /// Starts ledger-writer again on the ports it had, and waits for its `/readyz`.
    pub async fn restart_ledger(&mut self) {
        assert!(self.ledger.is_none(), "ledger-writer is still running");
        let ledger = ServiceProcess::start("pecr-ledger-writer", &self.ledger_env).await;
        ledger.wait_ready().await;
        self.ledger = Some(ledger);
    }

    /// Every event of a session (or of a trace), as an auditor reads them.
    pub async fn ledger_events(&self, query: v1::ListEventsRequest) -> Vec<v1::LedgerEvent> {
        let query = v1::ListEventsRequest {
            limit: Some(10_000),
            ..query
        };
        auditor_events(&self.ledger().grpc_url(), query).await
    }

    /// The three services' HTTP addresses, named; ledger-writer's only while it runs.
    pub fn admin_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut addrs = vec![
            ("gateway", self.gateway.http_addr),
            ("controller", self.controller.http_addr),
        ];
        if let Some(ledger) = &self.ledger {
            addrs.push(("ledger-writer", ledger.http_addr));
        }
        addrs
    }

    /// Stderr lines of every running service so far (drained).
    pub fn logs(&mut self) -> Vec<String> {
        let mut lines = self.gateway.drain_stderr();
        lines.extend(self.controller.drain_stderr());
        if let Some(ledger) = self.ledger.as_mut() {
            lines.extend(ledger.drain_stderr());
        }
        lines
    }

    /// Panics when any service logged a panic.
    pub fn assert_no_panic(&mut self) {
        let panics: Vec<String> = self
            .logs()
            .into_iter()
            .filter(|line| line.contains("panicked"))
            .collect();
        assert!(
            panics.is_empty(),
            "a service panicked:\n{}",
            panics.join("\n")
        );
    }
}

/// `GET /readyz` on `addr`: the status and the JSON body, or None when
/// nothing answers within 5 s. A plain HTTP/1.1 exchange, so a service that
/// is down is an answer, not a panic.
pub async fn readyz(addr: SocketAddr) -> Option<(u16, Value)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw);
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null);
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most `limit`;
/// panics with `what` when it never does.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hash `PECR_POLICY_BUNDLE_HASH` must carry for `opa/bundle`, from the
/// `pecr-policy-hash` binary.
pub fn policy_bundle_hash() -> String {
    let output = std::process::Command::new(pecr_testkit::binary_path("pecr-policy-hash"))
        .arg(workspace_root().join("opa/bundle"))
        .output()
        .unwrap_or_else(|err| panic!("run pecr-policy-hash: {err}"));
    assert!(
        output.status.success(),
        "pecr-policy-hash: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

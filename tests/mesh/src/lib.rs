//! The whole mesh for tests: a fresh PostgreSQL schema with the safe-view
//! fixture, ledger-writer, gateway and controller as processes on ephemeral
//! ports, and helpers to call the controller like a real client would.

use std::path::PathBuf;
use std::time::Duration;

use pecr_errors::PecrError;
use pecr_proto::v1::{
    self, controller_service_client::ControllerServiceClient,
    gateway_service_client::GatewayServiceClient, ledger_service_client::LedgerServiceClient,
};
use pecr_testkit::{ServiceProcess, TestDatabase, binary_path, credentials, workspace_root};
use tonic::transport::Channel;

/// The `PECR_BUDGET_DEFAULTS` of the tests (spec 30 §2.2's usual value).
pub const BUDGET_DEFAULTS: &str = r#"{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}"#;

/// Every canary string of the fixtures (spec 10): none may ever leave.
pub const CANARIES: [&str; 6] = [
    "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f",
    "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c",
    "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76",
    "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f",
    "PECR_CANARY_PG_ADMIN_DELTA_2a519d6b7f4348d4",
    "PECR_CANARY_PG_SUPPORT_EPSILON_8d77b9a9d9e24c2b",
];

/// Panics when `text` contains any fixture canary.
pub fn assert_no_canary(what: &str, text: &str) {
    for canary in CANARIES {
        assert!(!text.contains(canary), "{what} leaked {canary}");
    }
}

/// A service's settings, as `ServiceProcess::start` takes them.
pub type Env = Vec<(&'static str, String)>;

/// `env` with `extra` added, replacing settings of the same name.
pub fn merge(mut env: Env, extra: &[(&'static str, String)]) -> Env {
    for (key, value) in extra {
        env.retain(|(existing, _)| existing != key);
        env.push((key, value.clone()));
    }
    env
}

pub struct Mesh {
    pub db: TestDatabase,
    pub ledger: ServiceProcess,
    /// `None` once [`Mesh::stop_gateway`] has stopped it.
    pub gateway: Option<ServiceProcess>,
    pub controller: ServiceProcess,
    controller_env: Env,
}

/// Settings added to (or replacing) each service's defaults.
#[derive(Default, Clone)]
pub struct MeshOptions {
    pub gateway: Env,
    pub controller: Env,
}

/// A fresh PostgreSQL schema with the safe-view fixture loaded.
pub async fn fixture_database() -> TestDatabase {
    let db = TestDatabase::create().await;
    pecr_adapters::load_fixture_sql(db.client(), pecr_adapters::SAFEVIEW_FIXTURE_SQL)
        .await
        .unwrap_or_else(|err| panic!("load safe-view fixture: {err}"));
    db
}

/// ledger-writer's test settings on `db`: ports it picks, the test callers' tokens.
pub fn ledger_defaults(db: &TestDatabase) -> Env {
    let mut env = vec![
        ("PECR_DB_URL", db.url()),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".into()),
    ];
    env.extend(credentials::ledger_writer_tokens());
    env
}

/// The gateway's test settings: `db`'s safe views, the fixture corpus, the
/// shipped policy bundle, ledger-writer at `ledger_url`.
pub fn gateway_defaults(db: &TestDatabase, ledger_url: &str) -> Env {
    let root = workspace_root();
    vec![
        ("PECR_DB_URL", db.url()),
        ("PECR_LEDGER_URL", ledger_url.to_owned()),
        credentials::gateway_ledger_token(),
        ("PECR_GATEWAY_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_BIND_ADDR", "127.0.0.1:0".into()),
        (
            "PECR_FS_CORPUS_PATH",
            root.join("fixtures/fs_corpus").display().to_string(),
        ),
        (
            "PECR_POLICY_BUNDLE_DIR",
            root.join("opa/bundle").display().to_string(),
        ),
    ]
}

/// The controller's test settings, calling the gateway and ledger-writer.
pub fn controller_defaults(gateway_url: &str, ledger_url: &str) -> Env {
    vec![
        ("PECR_GATEWAY_URL", gateway_url.to_owned()),
        ("PECR_LEDGER_URL", ledger_url.to_owned()),
        credentials::controller_ledger_token(),
        ("PECR_CONTROLLER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_CONTROLLER_BIND_ADDR", "127.0.0.1:0".into()),
        ("PECR_BUDGET_DEFAULTS", BUDGET_DEFAULTS.into()),
    ]
}

impl Mesh {
    pub async fn start() -> Self {
        Self::start_with(MeshOptions::default()).await
    }

    pub async fn start_with(options: MeshOptions) -> Self {
        Self::start_with_ledger(options, &[]).await
    }

    /// Like [`Mesh::start_with`], with `ledger` added to ledger-writer's
    /// settings. A service started with `PECR_TLS_CERT` is called through
    /// an `https://` URL by the others.
    pub async fn start_with_ledger(
        options: MeshOptions,
        ledger: &[(&'static str, String)],
    ) -> Self {
        let db = fixture_database().await;
        let ledger_env = merge(ledger_defaults(&db), ledger);
        let ledger = ServiceProcess::start("pecr-ledger-writer", &ledger_env).await;
        let ledger_url = upstream_url(&ledger, &ledger_env);
        let gateway_env = merge(gateway_defaults(&db, &ledger_url), &options.gateway);
        let gateway = ServiceProcess::start("pecr-gateway", &gateway_env).await;
        let controller_env = merge(
            controller_defaults(&upstream_url(&gateway, &gateway_env), &ledger_url),
            &options.controller,
        );
        let controller = ServiceProcess::start("pecr-controller", &controller_env).await;
        for service in [&ledger, &gateway, &controller] {
            service.wait_ready().await;
        }
        Self {
            db,
            ledger,
            gateway: Some(gateway),
            controller,
            controller_env,
        }
    }

    /// Another controller process with the same settings plus `extra`.
    pub async fn start_controller(&self, extra: &[(&'static str, String)]) -> ServiceProcess {
        let env = merge(self.controller_env.clone(), extra);
        let controller = ServiceProcess::start("pecr-controller", &env).await;
        controller.wait_ready().await;
        controller
    }

    /// The settings the controller was started with.
    pub fn controller_env(&self) -> &[(&'static str, String)] {
        &self.controller_env
    }

    pub async fn stop_gateway(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
    }

    pub async fn client(&self) -> ControllerServiceClient<Channel> {
        client_for(&self.controller).await
    }

    /// The operator names of a trace's OPERATOR_CALL ledger events, in ledger order.
    pub async fn operator_calls(&self, trace_id: &str) -> Vec<String> {
        self.ledger_events(v1::ListEventsRequest {
            trace_id: Some(trace_id.to_owned()),
            event_type: Some("OPERATOR_CALL".into()),
            ..v1::ListEventsRequest::default()
        })
        .await
        .iter()
        .map(|event| {
            serde_json::from_str::<serde_json::Value>(&event.payload)
                .ok()
                .and_then(|payload| payload["op_name"].as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect()
    }

    /// Ledger events as an auditor reads them.
    pub async fn ledger_events(&self, query: v1::ListEventsRequest) -> Vec<v1::LedgerEvent> {
        auditor_events(&self.ledger.grpc_url(), query).await
    }

    /// `path` on the controller's REST edge.
    pub fn url(&self, path: &str) -> String {
        self.controller.http_url(path)
    }

    /// Stderr lines of every running service so far (drained).
    pub fn logs(&mut self) -> Vec<String> {
        let mut lines = self.controller.drain_stderr();
        lines.extend(self.ledger.drain_stderr());
        if let Some(gateway) = self.gateway.as_mut() {
            lines.extend(gateway.drain_stderr());
        }
        lines
    }
}

/// Events of ledger-writer at `ledger_url`, read with the test auditor's token.
pub async fn auditor_events(
    ledger_url: &str,
    query: v1::ListEventsRequest,
) -> Vec<v1::LedgerEvent> {
    let mut request = tonic::Request::new(query);
    request.metadata_mut().insert(
        "authorization",
        credentials::bearer(credentials::LEDGER_AUDITOR_TOKEN)
            .parse()
            .unwrap_or_else(|err| panic!("token: {err}")),
    );
    LedgerServiceClient::connect(ledger_url.to_owned())
        .await
        .unwrap_or_else(|err| panic!("connect ledger: {err}"))
        .list_events(request)
        .await
        .unwrap_or_else(|status| panic!("list events: {status:?}"))
        .into_inner()
        .events
}

/// The URL the other services call `service` at: `https://` when it was
/// started with `PECR_TLS_CERT`, its plain gRPC URL otherwise.
fn upstream_url(service: &ServiceProcess, env: &[(&'static str, String)]) -> String {
    if env.iter().any(|(key, _)| *key == "PECR_TLS_CERT") {
        format!("https://{}", service.grpc_addr)
    } else {
        service.grpc_url()
    }
}

/// Several replicas behind one ledger-writer and one PostgreSQL, as a
/// cluster runs them: `n` gateways with the same settings on one corpus
/// folder (a shared volume), and one controller per gateway.
pub struct Replicas {
    pub db: TestDatabase,
    /// A copy of the fixture corpus the test may change.
    pub corpus: PathBuf,
    pub ledger: ServiceProcess,
    pub gateways: Vec<ServiceProcess>,
    /// `controllers[i]` calls `gateways[i]`.
    pub controllers: Vec<ServiceProcess>,
}

impl Replicas {
    /// Starts the replicas; `gateway` adds to (or replaces) every gateway's settings.
    pub async fn start(n: usize, gateway: &[(&'static str, String)]) -> Self {
        let db = fixture_database().await;
        let corpus = pecr_testkit::scratch_corpus("pecr-mesh-corpus");
        let ledger_env = ledger_defaults(&db);
        let ledger = ServiceProcess::start("pecr-ledger-writer", &ledger_env).await;
        let ledger_url = upstream_url(&ledger, &ledger_env);
        let mut gateway_extra = vec![("PECR_FS_CORPUS_PATH", corpus.display().to_string())];
        gateway_extra.extend(gateway.iter().cloned());
        let gateway_env = merge(gateway_defaults(&db, &ledger_url), &gateway_extra);
        let mut gateways = Vec::with_capacity(n);
        let mut controllers = Vec::with_capacity(n);
        for _ in 0..n {
            let gateway = ServiceProcess::start("pecr-gateway", &gateway_env).await;
            let controller_env =
                controller_defaults(&upstream_url(&gateway, &gateway_env), &ledger_url);
            controllers.push(ServiceProcess::start("pecr-controller", &controller_env).await);
            gateways.push(gateway);
        }
        ledger.wait_ready().await;
        for service in gateways.iter().chain(&controllers) {
            service.wait_ready().await;
        }
        Self {
            db,
            corpus,
            ledger,
            gateways,
            controllers,
        }
    }

    /// A client of gateway `index`'s gRPC port.
    pub async fn gateway(&self, index: usize) -> GatewayServiceClient<Channel> {
        GatewayServiceClient::connect(self.gateways[index].grpc_url())
            .await
            .unwrap_or_else(|err| panic!("connect gateway {index}: {err}"))
    }

    /// A client of controller `index`.
    pub async fn controller(&self, index: usize) -> ControllerServiceClient<Channel> {
        client_for(&self.controllers[index]).await
    }

    /// Stops every process.
    pub async fn stop(self) {
        let Self {
            ledger,
            gateways,
            controllers,
            corpus,
            ..
        } = self;
        for service in controllers.into_iter().chain(gateways) {
            service.stop().await;
        }
        ledger.stop().await;
        let _ = std::fs::remove_dir_all(&corpus);
    }
}

pub async fn client_for(controller: &ServiceProcess) -> ControllerServiceClient<Channel> {
    ControllerServiceClient::connect(controller.grpc_url())
        .await
        .unwrap_or_else(|err| panic!("connect controller: {err}"))
}

/// A request with caller metadata (`x-pecr-principal-id` when `principal` is non-empty).
pub fn as_principal<T>(principal: &str, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(30));
    if !principal.is_empty() {
        request.metadata_mut().insert(
            "x-pecr-principal-id",
            principal
                .parse()
                .unwrap_or_else(|err| panic!("principal: {err}")),
        );
    }
    request
}

/// A run request with a given trace id, so its ledger events can be found.
pub fn traced_run(
    principal: &str,
    query: &str,
    budget: Option<v1::Budget>,
    trace_id: &str,
) -> tonic::Request<v1::RunRequest> {
    let mut request = run_request(principal, query, budget);
    request.metadata_mut().insert(
        "x-pecr-trace-id",
        trace_id
            .parse()
            .unwrap_or_else(|err| panic!("trace id: {err}")),
    );
    request
}

pub fn run_request(
    principal: &str,
    query: &str,
    budget: Option<v1::Budget>,
) -> tonic::Request<v1::RunRequest> {
    as_principal(
        principal,
        v1::RunRequest {
            query: query.into(),
            budget,
        },
    )
}

/// A budget: calls, bytes, wall clock (ms), depth, parallelism.
pub fn budget(calls: u32, bytes: u64, wall_ms: u64, depth: u32, par: Option<u32>) -> v1::Budget {
    v1::Budget {
        max_operator_calls: calls,
        max_bytes: bytes,
        max_wallclock_ms: wall_ms,
        max_recursion_depth: depth,
        max_parallelism: par,
    }
}

/// The spec's scenario budget: 100 calls, 1 MiB, 10 s, depth 10.
pub fn roomy_budget() -> v1::Budget {
    budget(100, 1_048_576, 10_000, 10, None)
}

/// The PECR error of a failed call.
pub fn error_of(status: &tonic::Status) -> PecrError {
    PecrError::from_status(status).unwrap_or_else(|| panic!("no PECR error detail in {status:?}"))
}

/// The stored bundle of a run, fetched by its owner.
pub async fn replay(
    client: &mut ControllerServiceClient<Channel>,
    principal: &str,
    run_id: &str,
) -> v1::ReplayBundle {
    client
        .get_replay(as_principal(
            principal,
            v1::GetReplayRequest {
                run_id: run_id.into(),
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("replay {run_id}: {status:?}"))
        .into_inner()
        .bundle
        .unwrap_or_else(|| panic!("replay {run_id} has no bundle"))
}

/// Runs the `pecr` CLI against the mesh's controller, off the test's
/// runtime thread: the runtime must keep draining the services' logs, or a
/// service blocks on a full pipe.
pub async fn pecr(mesh: &Mesh, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(binary_path("pecr"));
    command
        .args(["--controller", &mesh.controller.grpc_url()])
        .args(args)
        .env_remove("PECR_PRINCIPAL_ID");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run pecr")
}

/// What a command printed, stdout then stderr, for assertions and their
/// messages.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

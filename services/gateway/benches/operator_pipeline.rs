//! The gateway's `CallOperator` hot path, in process (criterion).
//!
//! Three groups:
//! - `pure`: the CPU work of one call with no I/O — params parsing, canonical
//!   JSON hashing of params and result, EvidenceUnit construction (content
//!   hash + id), the policy-input fields, the response encoding.
//! - `policy`: one embedded (regorus) decision on `opa/bundle` for an
//!   `operator_call` input, uncached (the default: `PECR_CACHE_MAX_ENTRIES=0`)
//!   and from the decision cache.
//! - `end_to_end`: the whole `CallOperator` over loopback gRPC, one client,
//!   against an in-process gateway and ledger-writer on a fresh PostgreSQL
//!   schema with the safe-view fixture, plus the pieces it waits on (a ledger
//!   `GetSession`, a bare PostgreSQL round trip, an insert + commit). Skipped
//!   with a message when PostgreSQL is unreachable (`PECR_TEST_DB_URL`,
//!   default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Run: `cargo bench -p pecr-gateway --bench operator_pipeline`
//! (`-- pure`, `-- policy` or `-- end_to_end` to pick a group). Figures and
//! their interpretation live in `perf/README.md`; nothing here asserts a time.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pecr_config::MapSource;
use pecr_contracts::evidence::{EvidenceContent, EvidenceParts, EvidenceUnit};
use pecr_contracts::{canonical_json, hash_canonical_json};
use pecr_policy::{DecisionKey, PolicyConfig, PolicyEngine};
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use pecr_server::Service;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

const FETCH_ROWS_PARAMS: &str = r#"{"view_id":"safe_customer_view_public","fields":["status","plan_tier"],"filter_spec":{"customer_id":"cust_public_1"}}"#;
const SEARCH_PARAMS: &str = r#"{"query":"fixture","limit":10}"#;
const SNAPSHOT_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const BUNDLE_HASH: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
const AS_OF_TIME: &str = "2026-01-01T00:00:00Z";
const DEFAULT_DB_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Calls per session: the contract's ceiling.
const SESSION_CALLS: u32 = 10_000;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A row unit shaped exactly like `fetch_rows` builds it for the fixture row.
fn fetch_rows_unit() -> EvidenceUnit {
    EvidenceUnit::new(EvidenceParts {
        source_system: "pg_safeview".to_owned(),
        object_id: "safe_customer_view_public:local:cust_public_1".to_owned(),
        version_id: "3b5d5c3712955042212316173ccf37be800c45d3f6a2ab5d8e1b2f0e5a0a6a8c".to_owned(),
        span_or_row_spec: json!({
            "type": "db_row",
            "view_id": "safe_customer_view_public",
            "primary_key": {"tenant_id": "local", "customer_id": "cust_public_1"},
            "fields": ["plan_tier", "status"],
        }),
        content: EvidenceContent::Json(json!({"plan_tier": "free", "status": "active"})),
        as_of_time: AS_OF_TIME.to_owned(),
        policy_snapshot_id: "01JZ0000000000000000000000".to_owned(),
        policy_snapshot_hash: SNAPSHOT_HASH.to_owned(),
        transform_chain: Vec::new(),
    })
}

/// The `operator_call` policy input the gateway builds (core.rs).
fn operator_call_input(params: &Value) -> Value {
    let fields = pecr_adapters::policy_input_fields(params);
    json!({
        "action": "operator_call",
        "principal_id": "dev",
        "trace_id": "01JZ0000000000000000000001",
        "session_id": "01JZ0000000000000000000002",
        "policy_snapshot_id": "01JZ0000000000000000000000",
        "policy_snapshot_hash": SNAPSHOT_HASH,
        "policy_bundle_hash": BUNDLE_HASH,
        "as_of_time": AS_OF_TIME,
        "op_name": "fetch_rows",
        "params_hash": hash_canonical_json(params),
        "params_bytes": serde_json::to_string(params).map_or(0, |t| t.len()),
        "object_id": fields.object_id,
        "view_id": fields.view_id,
        "fields_hash": fields.fields_hash,
        "filter_fingerprint": fields.filter_fingerprint,
        "request_id": "req-bench-1",
    })
}

fn bench_pure(c: &mut Criterion) {
    let params: Value = serde_json::from_str(FETCH_ROWS_PARAMS).expect("params JSON");
    let unit = fetch_rows_unit();
    let result = serde_json::to_value(vec![unit.clone()]).expect("unit JSON");
    let mut group = c.benchmark_group("pure");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("parse_params/fetch_rows", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(FETCH_ROWS_PARAMS)))
    });
    group.bench_function("hash_canonical_json/fetch_rows_params", |b| {
        b.iter(|| hash_canonical_json(black_box(&params)))
    });
    group.bench_function("hash_canonical_json/fetch_rows_result", |b| {
        b.iter(|| hash_canonical_json(black_box(&result)))
    });
    group.bench_function("canonical_json/fetch_rows_result", |b| {
        b.iter(|| canonical_json(black_box(&result)))
    });
    group.bench_function("policy_input_fields/fetch_rows", |b| {
        b.iter(|| pecr_adapters::policy_input_fields(black_box(&params)))
    });
    group.bench_function("evidence_unit/new_fetch_rows_row", |b| {
        b.iter_batched(
            || {
                let unit = fetch_rows_unit();
                EvidenceParts {
                    source_system: unit.source_system,
                    object_id: unit.object_id,
                    version_id: unit.version_id,
                    span_or_row_spec: unit.span_or_row_spec,
                    content: EvidenceContent::Json(unit.content.unwrap_or(Value::Null)),
                    as_of_time: unit.as_of_time,
                    policy_snapshot_id: unit.policy_snapshot_id,
                    policy_snapshot_hash: unit.policy_snapshot_hash,
                    transform_chain: unit.transform_chain,
                }
            },
            EvidenceUnit::new,
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("evidence_unit/to_json", |b| {
        b.iter(|| serde_json::to_value(black_box(&unit)))
    });
    group.bench_function("operator_call_input/fetch_rows", |b| {
        b.iter(|| operator_call_input(black_box(&params)))
    });
    group.finish();
}

fn bench_policy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bundle_dir = workspace_root().join("opa/bundle");
    let uncached = PolicyEngine::new(PolicyConfig {
        bundle_dir: bundle_dir.clone(),
        ..PolicyConfig::default()
    })
    .expect("load opa/bundle");
    let cached = PolicyEngine::new(PolicyConfig {
        bundle_dir,
        cache_max_entries: 10_000,
        cache_ttl_ms: 600_000,
        ..PolicyConfig::default()
    })
    .expect("load opa/bundle");
    let params: Value = serde_json::from_str(FETCH_ROWS_PARAMS).expect("params JSON");
    let input = operator_call_input(&params);
    let key = DecisionKey::new("local", "dev", "operator_call")
        .with_part(SNAPSHOT_HASH)
        .with_part("fetch_rows")
        .with_part(hash_canonical_json(&params));
    let decision = runtime
        .block_on(uncached.decide(&key, &input))
        .expect("decision");
    assert!(decision.allow, "opa/bundle must allow dev fetch_rows");

    let mut group = c.benchmark_group("policy");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("embedded_uncached/operator_call", |b| {
        b.to_async(&runtime)
            .iter(|| uncached.decide(black_box(&key), black_box(&input)))
    });
    group.bench_function("embedded_cached/operator_call", |b| {
        b.to_async(&runtime)
            .iter(|| cached.decide(black_box(&key), black_box(&input)))
    });
    group.finish();
}

/// An in-process mesh: ledger-writer and gateway on loopback port 0, on a
/// fresh schema with the safe-view fixture and a temporary corpus copy.
struct Mesh {
    db: pecr_testkit::TestDatabase,
    corpus: PathBuf,
    gateway: Channel,
    ledger: Channel,
    /// ledger-writer runs as its own binary: the gateway crate must not
    /// depend on the ledger's code, not even in benches.
    _ledger_process: pecr_testkit::ServiceProcess,
    stops: Vec<oneshot::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

async fn postgres_reachable(url: &str) -> Result<(), String> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok((client, connection))) => {
            let task = tokio::spawn(connection);
            let answer = client.simple_query("SELECT 1").await;
            drop(client);
            let _ = task.await;
            answer.map(|_| ()).map_err(|err| err.to_string())
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("connect timed out after 3 s".to_owned()),
    }
}

fn serve<S: Service>(
    service: S,
    stops: &mut Vec<oneshot::Sender<()>>,
    servers: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    servers.push(tokio::spawn(async move {
        if let Err(err) = service
            .serve(async move {
                let _ = stopped.await;
            })
            .await
        {
            eprintln!("{} stopped with an error: {err}", S::BINARY);
        }
    }));
}

impl Mesh {
    async fn start() -> Result<Self, String> {
        let db = pecr_testkit::TestDatabase::create().await;
        pecr_adapters::load_fixture_sql(db.client(), pecr_adapters::SAFEVIEW_FIXTURE_SQL)
            .await
            .map_err(|err| format!("load safe-view fixture: {err}"))?;
        let corpus = std::env::temp_dir().join(format!("pecr-bench-corpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&corpus);
        copy_dir(&workspace_root().join("fixtures/fs_corpus"), &corpus)
            .map_err(|err| format!("copy corpus: {err}"))?;
        let mut stops = Vec::new();
        let mut servers = Vec::new();

        // Needs `cargo build --release -p pecr-ledger-writer` first (perf/run-gateway-bench.sh does it).
        let mut ledger_env = vec![
            ("PECR_DB_URL", db.url()),
            ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ];
        ledger_env.extend(pecr_testkit::credentials::ledger_writer_tokens());
        let ledger_process =
            pecr_testkit::ServiceProcess::start("pecr-ledger-writer", &ledger_env).await;
        let ledger_addr = ledger_process.grpc_addr;

        let gateway_config = pecr_gateway::App::config(&MapSource::from_pairs([
            ("PECR_DB_URL", db.url()),
            ("PECR_LEDGER_URL", format!("http://{ledger_addr}")),
            pecr_testkit::credentials::gateway_ledger_token(),
            ("PECR_GATEWAY_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("PECR_BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("PECR_FS_CORPUS_PATH", corpus.display().to_string()),
            (
                "PECR_POLICY_BUNDLE_DIR",
                workspace_root().join("opa/bundle").display().to_string(),
            ),
            ("PECR_RATE_LIMIT_OPERATORS_PER_WINDOW", "0".to_owned()),
            ("PECR_RATE_LIMIT_SESSIONS_PER_WINDOW", "0".to_owned()),
        ]))
        .map_err(|err| format!("gateway config: {err}"))?;
        let gateway = pecr_gateway::App::bind(gateway_config)
            .await
            .map_err(|err| format!("gateway bind: {err}"))?;
        let gateway_addr = gateway.bound().grpc_addr();
        serve(gateway, &mut stops, &mut servers);

        let connect = |addr: std::net::SocketAddr| async move {
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|err| err.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|err| format!("connect {addr}: {err}"))
        };
        Ok(Self {
            db,
            corpus,
            gateway: connect(gateway_addr).await?,
            ledger: connect(ledger_addr).await?,
            _ledger_process: ledger_process,
            stops,
            servers,
        })
    }

    async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for server in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        let _ = std::fs::remove_dir_all(&self.corpus);
        drop(self.db);
    }
}

/// A client with an open session, rotated before its call budget runs out.
struct Caller {
    client: GatewayServiceClient<Channel>,
    principal: AsciiMetadataValue,
    session_id: String,
    token: AsciiMetadataValue,
    calls_left: u32,
}

impl Caller {
    async fn new(channel: Channel) -> Self {
        let mut caller = Self {
            client: GatewayServiceClient::new(channel),
            principal: MetadataValue::from_static("dev"),
            session_id: String::new(),
            token: MetadataValue::from_static("none"),
            calls_left: 0,
        };
        caller.open_session().await;
        caller
    }

    async fn open_session(&mut self) {
        let mut request = tonic::Request::new(v1::CreateSessionRequest {
            budget: Some(v1::Budget {
                max_operator_calls: SESSION_CALLS,
                max_bytes: 64 * 1024 * 1024,
                max_wallclock_ms: 300_000,
                max_recursion_depth: 3,
                max_parallelism: None,
            }),
            as_of_time: None,
            calls: Vec::new(),
        });
        request
            .metadata_mut()
            .insert("x-pecr-principal-id", self.principal.clone());
        let response = self
            .client
            .create_session(request)
            .await
            .expect("CreateSession");
        self.token = response
            .metadata()
            .get("x-pecr-session-token")
            .cloned()
            .expect("session token");
        self.session_id = response.into_inner().session_id;
        self.calls_left = SESSION_CALLS;
    }

    /// One CallOperator; returns its latency (session rotation excluded).
    async fn call(&mut self, op_name: &str, params: &str) -> Duration {
        if self.calls_left == 0 {
            self.open_session().await;
        }
        self.calls_left -= 1;
        let mut request = tonic::Request::new(v1::CallOperatorRequest {
            op_name: op_name.to_owned(),
            session_id: self.session_id.clone(),
            params: params.to_owned(),
        });
        let metadata = request.metadata_mut();
        metadata.insert("x-pecr-principal-id", self.principal.clone());
        metadata.insert("x-pecr-session-token", self.token.clone());
        let started = Instant::now();
        let response = self.client.call_operator(request).await;
        let elapsed = started.elapsed();
        let response =
            response.unwrap_or_else(|status| panic!("CallOperator {op_name}: {status:?}"));
        black_box(response.into_inner());
        elapsed
    }
}

fn bench_end_to_end(c: &mut Criterion) {
    let db_url = std::env::var("PECR_TEST_DB_URL").unwrap_or_else(|_| DEFAULT_DB_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(reason) = runtime.block_on(postgres_reachable(&db_url)) {
        eprintln!(
            "SKIPPED end_to_end: PostgreSQL is unreachable at {} ({reason}); start it or set PECR_TEST_DB_URL",
            db_url.split('?').next().unwrap_or_default()
        );
        return;
    }
    let mesh = match runtime.block_on(Mesh::start()) {
        Ok(mesh) => mesh,
        Err(reason) => {
            eprintln!("SKIPPED end_to_end: the in-process mesh did not start: {reason}");
            return;
        }
    };
    let caller = Arc::new(Mutex::new(Some(
        runtime.block_on(Caller::new(mesh.gateway.clone())),
    )));
    // Sanity: both operators answer something before they are timed.
    {
        let mut guard = caller.lock().expect("caller lock");
        if let Some(caller) = guard.as_mut() {
            runtime.block_on(caller.call("fetch_rows", FETCH_ROWS_PARAMS));
            runtime.block_on(caller.call("search", SEARCH_PARAMS));
        }
    }

    let mut group = c.benchmark_group("end_to_end");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (op_name, params) in [("fetch_rows", FETCH_ROWS_PARAMS), ("search", SEARCH_PARAMS)] {
        group.bench_function(format!("call_operator/{op_name}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let caller = Arc::clone(&caller);
                async move {
                    let mut state = caller.lock().expect("caller lock").take().expect("caller");
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += state.call(op_name, params).await;
                    }
                    *caller.lock().expect("caller lock") = Some(state);
                    total
                }
            })
        });
    }

    // What a call waits on: one ledger read over gRPC...
    let session_id = caller
        .lock()
        .expect("caller lock")
        .as_ref()
        .map(|c| c.session_id.clone())
        .unwrap_or_default();
    let ledger =
        pecr_proto::v1::ledger_service_client::LedgerServiceClient::new(pecr_server::credentialed(
            mesh.ledger.clone(),
            Some(pecr_testkit::credentials::LEDGER_GATEWAY_TOKEN),
        ));
    group.bench_function("ledger/get_session", |b| {
        b.to_async(&runtime).iter(|| {
            let mut ledger = ledger.clone();
            let session_id = session_id.clone();
            async move {
                ledger
                    .get_session(v1::GetSessionRequest { session_id })
                    .await
                    .expect("GetSession")
            }
        })
    });

    // ...and PostgreSQL itself: a bare round trip, and an insert + commit
    // (one WAL flush at synchronous_commit=on).
    let pg = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&mesh.db.url(), tokio_postgres::NoTls)
            .await
            .expect("connect PostgreSQL");
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS perf_bench_commit (id bigserial PRIMARY KEY, note text)")
            .await
            .expect("create perf table");
        Arc::new(client)
    });
    let settings = runtime.block_on(async {
        let mut out = Vec::new();
        for name in ["synchronous_commit", "fsync", "wal_sync_method"] {
            if let Ok(row) = pg.query_one(&format!("SHOW {name}"), &[]).await {
                out.push(format!("{name}={}", row.get::<_, String>(0)));
            }
        }
        out.join(" ")
    });
    eprintln!("end_to_end: PostgreSQL {settings}");
    group.bench_function("postgres/select_1_prepared", |b| {
        let statement = runtime.block_on(pg.prepare("SELECT 1")).expect("prepare");
        b.to_async(&runtime).iter(|| {
            let pg = Arc::clone(&pg);
            let statement = statement.clone();
            async move { pg.query_one(&statement, &[]).await.expect("SELECT 1") }
        })
    });
    group.bench_function("postgres/select_1_unprepared", |b| {
        b.to_async(&runtime).iter(|| {
            let pg = Arc::clone(&pg);
            async move { pg.query_one("SELECT 1", &[]).await.expect("SELECT 1") }
        })
    });
    group.bench_function("postgres/insert_commit", |b| {
        b.to_async(&runtime).iter(|| {
            let pg = Arc::clone(&pg);
            async move {
                pg.batch_execute("BEGIN; INSERT INTO perf_bench_commit (note) VALUES ('x'); COMMIT")
                    .await
                    .expect("insert + commit")
            }
        })
    });
    group.finish();

    drop(pg);
    runtime.block_on(mesh.stop());
}

criterion_group!(benches, bench_pure, bench_policy, bench_end_to_end);
criterion_main!(benches);

//! ledger-writer: owns the PostgreSQL ledger. It applies the migrations,
//! validates every write (hashes recomputed and checked, nothing written on
//! bad input) and serves `pecr.v1.LedgerService` over gRPC.

mod audit;
mod callers;
pub mod chain;
pub mod checkpoint;
mod committer;
mod convert;
mod db;
mod env;
mod metrics;
mod service;
mod store;
mod validate;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pecr_config::{ConfigReader, EnvSource, StartupError, StartupErrors};
use pecr_proto::v1::ledger_service_server::LedgerServiceServer;
use pecr_server::{
    AllowedClients, BoundService, Readiness, ServeSpec, ServerTls, Service, ServiceCallers,
};

pub use db::{LAST_MIGRATION_VERSION, migrate, migration_count};

/// ledger-writer settings.
#[derive(Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The runtime connection every RPC uses.
    pub db_url: String,
    /// The connection migrations run through; `db_url` when unset.
    pub migrate_db_url: Option<String>,
    pub write_timeout: Duration,
    pub pool_max_size: usize,
    /// Write transactions in flight at once; each holds a pooled connection.
    pub commit_lanes: usize,
    /// Most writes one transaction carries.
    pub max_batch: usize,
    /// TLS on the gRPC port; with a client CA, callers are known by certificate.
    pub server_tls: Option<ServerTls>,
    /// Callers' service tokens, used when the port has no client certificates.
    pub caller_tokens: CallerTokens,
    pub admission: pecr_config::Admission,
    /// Signs checkpoints; without it they are written unsigned.
    pub signing_key: Option<Arc<checkpoint::signing::SigningKey>>,
    /// Time between periodic checkpoints; None: on demand only.
    pub checkpoint_interval: Option<Duration>,
}

/// The callers ledger-writer knows, by the certificate identity or token
/// each presents: the gateway writes sessions and events, the controller
/// stores replays and evaluations, an auditor reads events.
/// `PECR_TLS_ALLOWED_CLIENTS` may narrow the list.
pub const ALLOWED_CLIENTS: [&str; 3] = [callers::GATEWAY, callers::CONTROLLER, callers::AUDITOR];

pub use callers::CallerTokens;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("db_url", &"<redacted>")
            .field(
                "migrate_db_url",
                &self.migrate_db_url.as_ref().map(|_| "<redacted>"),
            )
            .field("write_timeout", &self.write_timeout)
            .field("pool_max_size", &self.pool_max_size)
            .field("commit_lanes", &self.commit_lanes)
            .field("max_batch", &self.max_batch)
            .field("server_tls", &self.server_tls)
            .field("caller_tokens", &self.caller_tokens)
            .field("signing_key", &self.signing_key)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .finish()
    }
}

impl Config {
    /// Reads and validates every setting, reporting all bad values at once.
    pub fn from_source(source: &dyn EnvSource) -> Result<Self, StartupErrors> {
        let mut reader = ConfigReader::new(source);
        let grpc_addr = reader.socket_addr(env::GRPC_ADDR, env::DEFAULT_GRPC_ADDR);
        let http_addr = reader.socket_addr(env::HTTP_ADDR, env::DEFAULT_HTTP_ADDR);
        let db_url = reader.required(env::DB_URL);
        let migrate_db_url = reader.raw(env::MIGRATE_DB_URL);
        let write_timeout_ms = reader.number::<u64>(env::WRITE_TIMEOUT_MS, 2000, 1, 600_000);
        let pool_max_size = reader.number::<usize>(env::POOL_MAX_SIZE, 8, 1, 1024);
        let commit_lanes = reader.number::<usize>(env::COMMIT_LANES, 2, 1, 64);
        let max_batch = reader.number::<usize>(env::MAX_BATCH, 64, 1, 1024);
        if commit_lanes >= pool_max_size {
            // Reads (GetSession, replays, readiness) need a connection too.
            reader.push_error(StartupError::invalid(format!(
                "{} ({commit_lanes}) must be below {} ({pool_max_size}): reads need a connection of their own",
                env::COMMIT_LANES,
                env::POOL_MAX_SIZE
            )));
        }
        let allow_nonlocal = reader.boolean(env::ALLOW_NONLOCAL_BIND, false);
        let server_tls = ServerTls::read(&mut reader, AllowedClients::only(&ALLOWED_CLIENTS));
        let caller_tokens = CallerTokens {
            gateway: reader.service_token(env::GATEWAY_TOKEN),
            controller: reader.service_token(env::CONTROLLER_TOKEN),
            auditor: reader.service_token(env::AUDITOR_TOKEN),
        };
        let admission = pecr_config::Admission::read(&mut reader, 30_000);
        let signing_key = reader
            .raw(env::SIGNING_KEY_FILE)
            .filter(|path| !path.is_empty())
            .and_then(
                |path| match checkpoint::signing::SigningKey::read(&PathBuf::from(path)) {
                    Ok(key) => Some(Arc::new(key)),
                    Err(err) => {
                        reader.push_error(StartupError::invalid(format!(
                            "{}: {err}",
                            env::SIGNING_KEY_FILE
                        )));
                        None
                    }
                },
            );
        let checkpoint_interval_secs =
            reader.number::<u64>(env::CHECKPOINT_INTERVAL_SECS, 300, 0, 86_400);
        if let Err(err) = check_caller_authentication(server_tls.as_ref(), &caller_tokens) {
            reader.push_error(err);
        }
        // Callers always authenticate; binding beyond loopback still takes
        // the operator's explicit override.
        for (key, addr) in [(env::GRPC_ADDR, grpc_addr), (env::HTTP_ADDR, http_addr)] {
            if let Err(err) = pecr_config::check_bind_rule(key, addr, allow_nonlocal, true) {
                reader.push_error(err);
            }
        }
        let urls = [
            (env::DB_URL, Some(&db_url)),
            (env::MIGRATE_DB_URL, migrate_db_url.as_ref()),
        ];
        for (key, url) in urls {
            if let Some(url) = url.filter(|url| !url.is_empty())
                && let Err(err) = url.parse::<tokio_postgres::Config>()
            {
                reader.push_error(StartupError::invalid(format!(
                    "{key} is not a PostgreSQL URL: {err}"
                )));
            }
        }
        reader.finish()?;
        Ok(Self {
            grpc_addr,
            http_addr,
            db_url,
            migrate_db_url,
            write_timeout: Duration::from_millis(write_timeout_ms),
            pool_max_size,
            commit_lanes,
            max_batch,
            server_tls,
            caller_tokens,
            admission,
            signing_key,
            checkpoint_interval: (checkpoint_interval_secs > 0)
                .then(|| Duration::from_secs(checkpoint_interval_secs)),
        })
    }

    /// Who may call, as the gRPC layer enforces it.
    fn callers(&self) -> ServiceCallers {
        let service = pecr_proto::service_names::LEDGER;
        match self
            .server_tls
            .as_ref()
            .and_then(ServerTls::allowed_clients)
        {
            Some(AllowedClients::Only(names)) => callers::by_certificate(service, names),
            Some(AllowedClients::Any) => {
                callers::by_certificate(service, &ALLOWED_CLIENTS.map(String::from))
            }
            None => self.caller_tokens.callers(service),
        }
    }
}

/// ledger-writer answers no one it cannot name: either client certificates
/// (`PECR_TLS_CLIENT_CA`) or service tokens must be configured.
fn check_caller_authentication(
    server_tls: Option<&ServerTls>,
    tokens: &CallerTokens,
) -> Result<(), StartupError> {
    let certificates = server_tls.and_then(ServerTls::allowed_clients);
    if tokens.has_shared_token() {
        return Err(StartupError::invalid(format!(
            "{}, {} and {} must differ: a shared token lets one caller act as another",
            env::GATEWAY_TOKEN,
            env::CONTROLLER_TOKEN,
            env::AUDITOR_TOKEN
        )));
    }
    if let Some(AllowedClients::Only(names)) = certificates
        && let Some(unknown) = names.iter().find(|name| callers::grants(name).is_none())
    {
        return Err(StartupError::invalid(format!(
            "PECR_TLS_ALLOWED_CLIENTS names {unknown:?}; ledger-writer's callers are {}",
            ALLOWED_CLIENTS.join(", ")
        )));
    }
    if certificates.is_some() || tokens.name_a_service() {
        return Ok(());
    }
    Err(StartupError::new(
        "ERR_MISSING_CONFIG",
        format!(
            "ledger-writer authenticates every caller: set PECR_TLS_CLIENT_CA (mTLS) or {} and {} \
             (service tokens of at least {} characters)",
            env::GATEWAY_TOKEN,
            env::CONTROLLER_TOKEN,
            pecr_config::MIN_SERVICE_TOKEN_LEN
        ),
    ))
}

/// A migrated, bound ledger-writer, ready to serve.
pub struct App {
    bound: BoundService,
    store: store::LedgerStore,
    metrics: metrics::LedgerMetrics,
    callers: ServiceCallers,
    admission: pecr_config::Admission,
    audit: audit::Audit,
    checkpointer: checkpoint::Checkpointer,
    checkpoint_interval: Option<Duration>,
}

impl Service for App {
    type Config = Config;
    const BINARY: &'static str = "pecr-ledger-writer";

    fn config(source: &dyn EnvSource) -> Result<Config, StartupErrors> {
        Config::from_source(source)
    }

    fn bound(&self) -> &BoundService {
        &self.bound
    }

    /// Migrates the database (bounded) through the migration connection,
    /// checks that the runtime connection sees the migrated ledger, and
    /// binds both ports.
    async fn bind(config: Config) -> Result<Self, StartupError> {
        match &config.migrate_db_url {
            Some(url) => db::migrate_bounded(url, env::MIGRATE_DB_URL).await?,
            None => db::migrate_bounded(&config.db_url, env::DB_URL).await?,
        }
        // The server cancels a statement just before the caller's timeout.
        let statement_timeout = config.write_timeout * 9 / 10;
        let pool = db::pool(&config.db_url, config.pool_max_size, statement_timeout)?;
        db::check_runtime_bounded(&pool).await?;
        let metrics = metrics::LedgerMetrics::new()
            .map_err(|err| StartupError::new("ERR_SERVER_FAILED", format!("metrics: {err}")))?;
        let committer = committer::Committer::start(
            pool.clone(),
            committer::CommitSettings {
                lanes: config.commit_lanes,
                max_batch: config.max_batch,
                write_timeout: config.write_timeout,
            },
            metrics.commit_metrics(),
        );
        let store = store::LedgerStore::new(pool.clone(), config.write_timeout, committer);
        let trust = match &config.signing_key {
            Some(key) => verify::Trust::Key {
                key: key.public_key().clone(),
                from: env::SIGNING_KEY_FILE.to_owned(),
            },
            None => {
                tracing::warn!(
                    "{} is not set: ledger checkpoints are written unsigned",
                    env::SIGNING_KEY_FILE
                );
                verify::Trust::Recorded
            }
        };
        let checkpointer = checkpoint::Checkpointer::new(pool, config.signing_key.clone());
        let audit = audit::Audit::new(checkpointer.clone(), config.db_url.clone(), trust);
        let callers = config.callers();
        let bound = BoundService::bind(config.grpc_addr, config.http_addr)
            .await?
            .with_tls(config.server_tls);
        Ok(Self {
            bound,
            callers,
            admission: config.admission,
            store,
            metrics,
            audit,
            checkpointer,
            checkpoint_interval: config.checkpoint_interval,
        })
    }

    /// Serves gRPC and the admin endpoints until `shutdown` resolves.
    async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let ping_store = self.store.clone();
        let migration_store = self.store.clone();
        let readiness = Readiness::new()
            .with_check("postgres", move || {
                let store = ping_store.clone();
                async move { store.ping().await }
            })
            .with_check("migrations", move || {
                let store = migration_store.clone();
                async move { store.is_migrated().await }
            });
        let service = service::Ledger::new(self.store, self.audit, self.metrics.clone());
        let periodic = self
            .checkpoint_interval
            .map(|interval| tokio::spawn(checkpoint::periodically(self.checkpointer, interval)));
        let spec = ServeSpec {
            service_name: pecr_proto::service_names::LEDGER,
            routes: tonic::service::Routes::new(LedgerServiceServer::new(service)),
            readiness,
            rest: None,
            pages: None,
            in_process: None,
            metrics_guard: None,
            registry: self.metrics.registry(),
            callers: Some(self.callers),
            principals: None,
            rate_limits: pecr_server::RateLimits::none(),
            route_series: None,
            admission: self.admission,
        };
        let served = self.bound.serve(spec, shutdown).await;
        if let Some(periodic) = periodic {
            periodic.abort();
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_config::MapSource;

    #[test]
    fn the_migration_url_is_optional_and_never_printed() {
        let runtime = "postgres://pecr_ledger_writer:runtime-secret@db/pecr";
        let owner = "postgres://pecr_owner:owner-secret@db/pecr";
        let token = "gateway-token-for-the-ledger-config-test";
        let unset = Config::from_source(&MapSource::from_pairs([
            (env::DB_URL, runtime),
            (env::GATEWAY_TOKEN, token),
        ]))
        .expect("valid");
        assert_eq!(unset.migrate_db_url, None);

        let both = Config::from_source(&MapSource::from_pairs([
            (env::DB_URL, runtime),
            (env::MIGRATE_DB_URL, owner),
            (env::GATEWAY_TOKEN, token),
        ]))
        .expect("valid");
        assert!(
            !format!("{both:?}").contains(token),
            "the token is redacted"
        );
        assert_eq!(both.migrate_db_url.as_deref(), Some(owner));
        let printed = format!("{both:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains(r#"migrate_db_url: Some("<redacted>")"#),
            "{printed}"
        );
    }
}

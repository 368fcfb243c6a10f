//! pecr-gateway: serves `pecr.v1.GatewayService` over gRPC with health, reflection
//! and the admin endpoints. Readiness follows the ledger it depends on.

mod env;
mod service;

use std::net::SocketAddr;

use pecr_config::{ConfigReader, EnvSource, FrontDoor, StartupError, StartupErrors};
use pecr_proto::v1::gateway_service_server::GatewayServiceServer;
use pecr_server::{BoundService, Readiness, ServeSpec, Service};
use tonic::transport::Channel;

/// pecr-gateway settings.
#[derive(Debug)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub ledger_url: String,
    pub front_door: FrontDoor,
}

impl Config {
    /// Reads and validates every setting, reporting all bad values at once.
    pub fn from_source(source: &dyn EnvSource) -> Result<Self, StartupErrors> {
        let mut reader = ConfigReader::new(source);
        let grpc_addr = reader.socket_addr(env::GRPC_ADDR, env::DEFAULT_GRPC_ADDR);
        let http_addr = reader.socket_addr(env::HTTP_ADDR, env::DEFAULT_HTTP_ADDR);
        let ledger_url = reader.string(env::LEDGER_URL, env::DEFAULT_LEDGER_URL);
        if let Err(err) = pecr_server::lazy_channel(env::LEDGER_URL, &ledger_url) {
            reader.push_error(err);
        }
        let front_door = FrontDoor::read(
            &mut reader,
            &[(env::GRPC_ADDR, grpc_addr), (env::HTTP_ADDR, http_addr)],
        );
        reader.finish()?;
        Ok(Self {
            grpc_addr,
            http_addr,
            ledger_url,
            front_door,
        })
    }
}

/// A bound pecr-gateway, ready to serve.
pub struct App {
    bound: BoundService,
    ledger: Channel,
}

impl Service for App {
    type Config = Config;
    const BINARY: &'static str = "pecr-gateway";

    fn config(source: &dyn EnvSource) -> Result<Config, StartupErrors> {
        Config::from_source(source)
    }

    fn bound(&self) -> &BoundService {
        &self.bound
    }

    async fn bind(config: Config) -> Result<Self, StartupError> {
        let ledger = pecr_server::lazy_channel(env::LEDGER_URL, &config.ledger_url)?;
        let bound = BoundService::bind(config.grpc_addr, config.http_addr).await?;
        Ok(Self { bound, ledger })
    }

    /// Serves gRPC and the admin endpoints until `shutdown` resolves.
    async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let readiness = Readiness::new().with_upstream(
            "ledger",
            self.ledger,
            pecr_proto::service_names::LEDGER,
        );
        let spec = ServeSpec {
            service_name: pecr_proto::service_names::GATEWAY,
            routes: tonic::service::Routes::new(GatewayServiceServer::new(service::GatewayApi)),
            readiness,
            registry: pecr_server::new_registry("pecr-gateway"),
        };
        self.bound.serve(spec, shutdown).await
    }
}

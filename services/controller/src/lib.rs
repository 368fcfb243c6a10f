//! pecr-controller: serves `pecr.v1.ControllerService` over gRPC with health, reflection
//! and the admin endpoints. Readiness follows the gateway it depends on.

mod env;
mod service;

use std::net::SocketAddr;

use pecr_config::{ConfigReader, EnvSource, FrontDoor, StartupError, StartupErrors};
use pecr_proto::v1::controller_service_server::ControllerServiceServer;
use pecr_server::{BoundService, Readiness, ServeSpec, Service};
use tonic::transport::Channel;

/// pecr-controller settings.
#[derive(Debug)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub gateway_url: String,
    pub front_door: FrontDoor,
}

impl Config {
    /// Reads and validates every setting, reporting all bad values at once.
    pub fn from_source(source: &dyn EnvSource) -> Result<Self, StartupErrors> {
        let mut reader = ConfigReader::new(source);
        let grpc_addr = reader.socket_addr(env::GRPC_ADDR, env::DEFAULT_GRPC_ADDR);
        let http_addr = reader.socket_addr(env::HTTP_ADDR, env::DEFAULT_HTTP_ADDR);
        let gateway_url = reader.string(env::GATEWAY_URL, env::DEFAULT_GATEWAY_URL);
        if let Err(err) = pecr_server::endpoint(env::GATEWAY_URL, &gateway_url) {
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
            gateway_url,
            front_door,
        })
    }
}

/// A bound pecr-controller, ready to serve.
pub struct App {
    bound: BoundService,
    gateway: Channel,
}

impl Service for App {
    type Config = Config;
    const BINARY: &'static str = "pecr-controller";

    fn config(source: &dyn EnvSource) -> Result<Config, StartupErrors> {
        Config::from_source(source)
    }

    fn bound(&self) -> &BoundService {
        &self.bound
    }

    async fn bind(config: Config) -> Result<Self, StartupError> {
        let gateway = pecr_server::lazy_channel(env::GATEWAY_URL, &config.gateway_url)?;
        let bound = BoundService::bind(config.grpc_addr, config.http_addr).await?;
        Ok(Self { bound, gateway })
    }

    /// Serves gRPC and the admin endpoints until `shutdown` resolves.
    async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let readiness = Readiness::new().with_upstream(
            "gateway",
            self.gateway,
            pecr_proto::service_names::GATEWAY,
        );
        let spec = ServeSpec {
            service_name: pecr_proto::service_names::CONTROLLER,
            routes: tonic::service::Routes::new(ControllerServiceServer::new(
                service::ControllerApi,
            )),
            readiness,
            http_routes: None,
            metrics_guard: None,
            registry: pecr_server::new_registry("pecr-controller"),
        };
        self.bound.serve(spec, shutdown).await
    }
}

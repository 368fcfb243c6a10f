//! The whole `main` of a PECR service: logs, config, bind, announce, serve.

use std::future::Future;

use pecr_config::{EnvSource, LayeredSource, ProcessEnv, StartupError, StartupErrors};

use crate::{BoundService, exit_with, init_logging_for, shutdown_signal, telemetry};

/// What a service provides so that [`run`] can be its `main`.
pub trait Service: Sized + Send + 'static {
    type Config: Send;

    /// The binary name, as in `PECR_LISTENING <binary> …`.
    const BINARY: &'static str;

    /// Reads every setting, reporting all bad values at once.
    fn config(source: &dyn EnvSource) -> Result<Self::Config, StartupErrors>;

    /// Connects what must be there at start-up and binds the listeners.
    fn bind(config: Self::Config) -> impl Future<Output = Result<Self, StartupError>> + Send;

    fn bound(&self) -> &BoundService;

    /// Serves until `shutdown` resolves, then drains.
    fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), StartupError>> + Send;
}

/// Runs a service binary. Start-up failures print `STARTUP_ERROR` lines and
/// exit 1; a signal drains and exits 0.
pub async fn run<S: Service>() {
    let telemetry = init_logging_for(Some(S::BINARY));
    let source = LayeredSource::load(ProcessEnv).unwrap_or_else(|err| exit_with(err));
    // Every bad setting at once: the service's and the exporter's.
    let config = match (S::config(&source), telemetry) {
        (Ok(config), Ok(())) => config,
        (Ok(_), Err(error)) => exit_with(error),
        (Err(errors), Ok(())) => exit_with(errors),
        (Err(StartupErrors(mut errors)), Err(error)) => {
            errors.push(error);
            exit_with(StartupErrors(errors))
        }
    };
    let service = S::bind(config).await.unwrap_or_else(|err| exit_with(err));
    // Handlers go in before the address is announced (see shutdown_signal).
    let shutdown = shutdown_signal();
    let bound = service.bound();
    println!("{}", bound.listening_line(S::BINARY));
    tracing::info!(grpc = %bound.grpc_addr(), http = %bound.http_addr(), "{} listening", S::BINARY);
    if let Err(err) = service.serve(shutdown).await {
        telemetry::shutdown();
        exit_with(err);
    }
    tracing::info!("{} stopped", S::BINARY);
    telemetry::shutdown();
}

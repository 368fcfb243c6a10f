//! `pecr-ledger-writer`: load config, bind, serve until a signal, drain.

use pecr_config::{LayeredSource, ProcessEnv};
use pecr_ledger_writer::{App, Config};

#[tokio::main]
async fn main() {
    pecr_server::init_logging();
    let source = LayeredSource::load(ProcessEnv).unwrap_or_else(|err| pecr_server::exit_with(err));
    let config =
        Config::from_source(&source).unwrap_or_else(|errors| pecr_server::exit_with(errors));
    let app = App::bind(config)
        .await
        .unwrap_or_else(|err| pecr_server::exit_with(err));
    // Handlers go in before the address is announced (see shutdown_signal).
    let shutdown = pecr_server::shutdown_signal();
    println!("{}", app.listening_line());
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "pecr-ledger-writer listening");
    if let Err(err) = app.serve(shutdown).await {
        pecr_server::exit_with(err);
    }
    tracing::info!("pecr-ledger-writer stopped");
}

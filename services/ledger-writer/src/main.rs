//! `pecr-ledger-writer`: see [`pecr_server::run`]; `pecr-ledger-writer
//! verify` checks the stored ledger instead (see [`pecr_ledger_writer::verify`]).

use std::process::ExitCode;

// mimalloc: cheaper than the system allocator for the many small,
// short-lived allocations of request handling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if pecr_ledger_writer::verify::requested(&args) {
        return pecr_ledger_writer::verify::main(&args).await;
    }
    pecr_server::run::<pecr_ledger_writer::App>().await;
    ExitCode::SUCCESS
}

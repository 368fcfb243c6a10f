//! `pecr-ledger-writer`: see [`pecr_server::run`].

// mimalloc: glibc's malloc was 9-17 % of each service's CPU on the run
// path (perf/README.md, "Where the remaining CPU goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    pecr_server::run::<pecr_ledger_writer::App>().await;
}

//! `pecr-ledger-writer`: see [`pecr_server::run`].

// mimalloc: cheaper than the system allocator for the many small,
// short-lived allocations of request handling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    pecr_server::run::<pecr_ledger_writer::App>().await;
}

//! `pecr-ledger-writer`: see [`pecr_server::run`].

#[tokio::main]
async fn main() {
    pecr_server::run::<pecr_ledger_writer::App>().await;
}

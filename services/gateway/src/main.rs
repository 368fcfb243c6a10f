//! `pecr-gateway`: see [`pecr_server::run`].

#[tokio::main]
async fn main() {
    pecr_server::run::<pecr_gateway::App>().await;
}

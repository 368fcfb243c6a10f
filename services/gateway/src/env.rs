//! The environment variables pecr-gateway reads.

pub const GRPC_ADDR: &str = "PECR_GATEWAY_GRPC_ADDR";
pub const HTTP_ADDR: &str = "PECR_BIND_ADDR";
pub const LEDGER_URL: &str = "PECR_LEDGER_URL";

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_LEDGER_URL: &str = "http://127.0.0.1:50053";

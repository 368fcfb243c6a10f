//! The environment variables pecr-controller reads.

pub const GRPC_ADDR: &str = "PECR_CONTROLLER_GRPC_ADDR";
pub const HTTP_ADDR: &str = "PECR_CONTROLLER_BIND_ADDR";
pub const GATEWAY_URL: &str = "PECR_GATEWAY_URL";

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50052";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8081";
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:50051";

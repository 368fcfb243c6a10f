//! The environment variables ledger-writer reads.

pub const DB_URL: &str = "PECR_DB_URL";
/// Optional owner connection for migrations; `DB_URL` then only serves RPCs.
pub const MIGRATE_DB_URL: &str = "PECR_LEDGER_MIGRATE_DB_URL";
pub const GRPC_ADDR: &str = "PECR_LEDGER_GRPC_ADDR";
pub const HTTP_ADDR: &str = "PECR_LEDGER_HTTP_ADDR";
pub const WRITE_TIMEOUT_MS: &str = "PECR_LEDGER_WRITE_TIMEOUT_MS";
pub const POOL_MAX_SIZE: &str = "PECR_DB_POOL_MAX_SIZE";
pub const ALLOW_NONLOCAL_BIND: &str = "PECR_DEV_ALLOW_NONLOCAL_BIND";

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50053";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8082";

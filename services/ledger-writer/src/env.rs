//! The environment variables ledger-writer reads.

pub const DB_URL: &str = "PECR_DB_URL";
/// Optional owner connection for migrations; `DB_URL` then only serves RPCs.
pub const MIGRATE_DB_URL: &str = "PECR_LEDGER_MIGRATE_DB_URL";
pub const GRPC_ADDR: &str = "PECR_LEDGER_GRPC_ADDR";
pub const HTTP_ADDR: &str = "PECR_LEDGER_HTTP_ADDR";
pub const WRITE_TIMEOUT_MS: &str = "PECR_LEDGER_WRITE_TIMEOUT_MS";
pub const POOL_MAX_SIZE: &str = "PECR_DB_POOL_MAX_SIZE";
/// Write transactions in flight at once (group commit lanes).
pub const COMMIT_LANES: &str = "PECR_LEDGER_COMMIT_LANES";
/// Most writes one transaction carries.
pub const MAX_BATCH: &str = "PECR_LEDGER_MAX_BATCH";
pub const ALLOW_NONLOCAL_BIND: &str = "PECR_DEV_ALLOW_NONLOCAL_BIND";
/// Service tokens of the callers, when the gRPC port has no client certificates.
pub const GATEWAY_TOKEN: &str = "PECR_LEDGER_GATEWAY_TOKEN";
pub const CONTROLLER_TOKEN: &str = "PECR_LEDGER_CONTROLLER_TOKEN";
pub const AUDITOR_TOKEN: &str = "PECR_LEDGER_AUDITOR_TOKEN";

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50053";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8082";
/// Ed25519 key (PKCS#8 PEM) checkpoints are signed with; unsigned without.
pub const SIGNING_KEY_FILE: &str = "PECR_LEDGER_SIGNING_KEY_FILE";
/// Seconds between periodic checkpoints; 0 turns them off.
pub const CHECKPOINT_INTERVAL_SECS: &str = "PECR_LEDGER_CHECKPOINT_INTERVAL_SECS";

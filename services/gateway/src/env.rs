//! The environment variables pecr-gateway reads (spec 20 §10).

pub const GRPC_ADDR: &str = "PECR_GATEWAY_GRPC_ADDR";
pub const HTTP_ADDR: &str = "PECR_BIND_ADDR";
pub const LEDGER_URL: &str = "PECR_LEDGER_URL";
/// Name on ledger-writer's certificate when it is not `PECR_LEDGER_URL`'s host.
pub const LEDGER_TLS_SERVER_NAME: &str = "PECR_LEDGER_TLS_SERVER_NAME";
/// The service token presented to ledger-writer (its `PECR_LEDGER_GATEWAY_TOKEN`).
pub const LEDGER_TOKEN: &str = "PECR_LEDGER_TOKEN";
pub const DB_URL: &str = "PECR_DB_URL";

pub const OPA_URL: &str = "PECR_OPA_URL";
pub const OPA_TIMEOUT_MS: &str = "PECR_OPA_TIMEOUT_MS";
pub const OPA_RETRY_MAX_ATTEMPTS: &str = "PECR_OPA_RETRY_MAX_ATTEMPTS";
pub const OPA_RETRY_BASE_BACKOFF_MS: &str = "PECR_OPA_RETRY_BASE_BACKOFF_MS";
pub const OPA_BREAKER_THRESHOLD: &str = "PECR_OPA_CIRCUIT_BREAKER_FAILURE_THRESHOLD";
pub const OPA_BREAKER_OPEN_MS: &str = "PECR_OPA_CIRCUIT_BREAKER_OPEN_MS";
pub const POLICY_BUNDLE_HASH: &str = "PECR_POLICY_BUNDLE_HASH";
pub const POLICY_BUNDLE_DIR: &str = "PECR_POLICY_BUNDLE_DIR";

pub const CACHE_MAX_ENTRIES: &str = "PECR_CACHE_MAX_ENTRIES";
pub const CACHE_TTL_MS: &str = "PECR_CACHE_TTL_MS";
pub const LEDGER_WRITE_TIMEOUT_MS: &str = "PECR_LEDGER_WRITE_TIMEOUT_MS";
pub const SESSION_TOKEN_TTL_SECS: &str = "PECR_SESSION_TOKEN_TTL_SECS";
pub const EVIDENCE_PAYLOAD_STORE_MODE: &str = "PECR_EVIDENCE_PAYLOAD_STORE_MODE";
pub const METRICS_REQUIRE_AUTH: &str = "PECR_METRICS_REQUIRE_AUTH";

pub const FS_CORPUS_PATH: &str = "PECR_FS_CORPUS_PATH";
pub const FS_CORPUS_WATCH: &str = "PECR_FS_CORPUS_WATCH";
pub const FS_VERSION_CACHE_MAX_BYTES: &str = "PECR_FS_VERSION_CACHE_MAX_BYTES";
pub const FS_VERSION_CACHE_MAX_TOTAL_BYTES: &str = "PECR_FS_VERSION_CACHE_MAX_TOTAL_BYTES";
pub const FS_VERSION_CACHE_MAX_VERSIONS_PER_OBJECT: &str =
    "PECR_FS_VERSION_CACHE_MAX_VERSIONS_PER_OBJECT";
pub const FS_DIFF_MAX_BYTES: &str = "PECR_FS_DIFF_MAX_BYTES";
/// Where the version store behind as_of_time lives: `ledger` or `memory`.
pub const VERSION_STORE: &str = "PECR_VERSION_STORE";
pub const PG_QUERY_TIMEOUT_MS: &str = "PECR_PG_SAFEVIEW_QUERY_TIMEOUT_MS";
pub const PG_MAX_ROWS: &str = "PECR_PG_SAFEVIEW_MAX_ROWS";
pub const PG_MAX_FIELDS: &str = "PECR_PG_SAFEVIEW_MAX_FIELDS";
pub const PG_MAX_GROUPS: &str = "PECR_PG_SAFEVIEW_MAX_GROUPS";

pub const RATE_LIMIT_WINDOW_SECS: &str = "PECR_RATE_LIMIT_WINDOW_SECS";
pub const RATE_LIMIT_SESSIONS: &str = "PECR_RATE_LIMIT_SESSIONS_PER_WINDOW";
pub const RATE_LIMIT_OPERATORS: &str = "PECR_RATE_LIMIT_OPERATORS_PER_WINDOW";
pub const RATE_LIMIT_FINALIZE: &str = "PECR_RATE_LIMIT_FINALIZE_PER_WINDOW";
pub const RATE_LIMIT_SIMULATE: &str = "PECR_RATE_LIMIT_SIMULATE_PER_WINDOW";

/// The budget of the PECR session an MCP session opens (JSON).
pub const MCP_SESSION_BUDGET: &str = "PECR_MCP_SESSION_BUDGET";
pub const DEFAULT_MCP_SESSION_BUDGET: &str = r#"{"max_operator_calls":50,"max_bytes":4194304,"max_wallclock_ms":300000,"max_recursion_depth":5}"#;

pub const COVERAGE_THRESHOLD: &str = "PECR_COVERAGE_THRESHOLD";
pub const AS_OF_TIME_DEFAULT: &str = "PECR_AS_OF_TIME_DEFAULT";

/// Who may call the gateway's gRPC port when client certificates are
/// required (`PECR_TLS_ALLOWED_CLIENTS` overrides it). End users reach the
/// gateway through the REST edge, which calls the service in-process.
pub const DEFAULT_ALLOWED_CLIENTS: [&str; 1] = ["pecr-controller"];

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_LEDGER_URL: &str = "http://127.0.0.1:50053";
pub const DEFAULT_POLICY_BUNDLE_DIR: &str = "opa/bundle";
pub const DEFAULT_FS_CORPUS_PATH: &str = "fixtures/fs_corpus";

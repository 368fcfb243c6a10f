//! The environment variables pecr-controller reads (spec 30 §2.2).

pub const GRPC_ADDR: &str = "PECR_CONTROLLER_GRPC_ADDR";
pub const HTTP_ADDR: &str = "PECR_CONTROLLER_BIND_ADDR";
pub const GATEWAY_URL: &str = "PECR_GATEWAY_URL";
pub const LEDGER_URL: &str = "PECR_LEDGER_URL";
/// Names on the upstreams' certificates when they are not the URLs' hosts.
pub const GATEWAY_TLS_SERVER_NAME: &str = "PECR_GATEWAY_TLS_SERVER_NAME";
pub const LEDGER_TLS_SERVER_NAME: &str = "PECR_LEDGER_TLS_SERVER_NAME";
/// The service token presented to ledger-writer (its `PECR_LEDGER_CONTROLLER_TOKEN`).
pub const LEDGER_TOKEN: &str = "PECR_LEDGER_TOKEN";
pub const GATEWAY_TIMEOUT_MS: &str = "PECR_GATEWAY_TIMEOUT_MS";
pub const ENGINE: &str = "PECR_CONTROLLER_ENGINE";
pub const RLM_SANDBOX_ACK: &str = "PECR_RLM_SANDBOX_ACK";
/// Switch from the RLM engine to the baseline after repeated bridge failures.
pub const AUTO_FALLBACK: &str = "PECR_CONTROLLER_AUTO_FALLBACK";
pub const AUTO_FALLBACK_AFTER: &str = "PECR_CONTROLLER_AUTO_FALLBACK_AFTER";
pub const MODEL_PROVIDER: &str = "PECR_MODEL_PROVIDER";
pub const BUDGET_DEFAULTS: &str = "PECR_BUDGET_DEFAULTS";
pub const BASELINE_PLAN: &str = "PECR_BASELINE_PLAN";
pub const METRICS_REQUIRE_AUTH: &str = "PECR_METRICS_REQUIRE_AUTH";
pub const RATE_LIMIT_WINDOW_SECS: &str = "PECR_RATE_LIMIT_WINDOW_SECS";
pub const RATE_LIMIT_RUN_PER_WINDOW: &str = "PECR_RATE_LIMIT_RUN_PER_WINDOW";
pub const RATE_LIMIT_EVALUATION_PER_WINDOW: &str = "PECR_RATE_LIMIT_EVALUATION_PER_WINDOW";
pub const REPLAY_STORE: &str = "PECR_REPLAY_STORE";
pub const REPLAY_STORE_DIR: &str = "PECR_REPLAY_STORE_DIR";
pub const REPLAY_RETENTION_DAYS: &str = "PECR_REPLAY_RETENTION_DAYS";
pub const REPLAY_LIST_LIMIT: &str = "PECR_REPLAY_LIST_LIMIT";
/// Read per run by the RLM engine (spec 30 §10.2).
#[cfg(feature = "rlm")]
pub const RLM_PYTHON: &str = "PECR_RLM_PYTHON";
#[cfg(feature = "rlm")]
pub const RLM_SCRIPT_PATH: &str = "PECR_RLM_SCRIPT_PATH";
/// Read by the bridge script itself; passed through to it.
#[cfg(feature = "rlm")]
pub const RLM_BACKEND: &str = "PECR_RLM_BACKEND";

/// Lookup order of the adaptive-parallelism flag and its aliases.
pub const ADAPTIVE_PARALLELISM: &[&str] = &[
    "PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED",
    "PECR_CONTROLLER_ADAPTIVE_PARALLELISM",
    "PECR_ADAPTIVE_PARALLELISM_ENABLED",
    "PECR_ADAPTIVE_PARALLELISM",
];
/// Lookup order of the batch-mode flag and its aliases.
pub const BATCH_MODE: &[&str] = &[
    "PECR_CONTROLLER_BATCH_MODE_ENABLED",
    "PECR_CONTROLLER_BATCH_MODE",
    "PECR_BATCH_MODE_ENABLED",
    "PECR_BATCH_MODE",
];
/// Lookup order of the operator concurrency policy map and its aliases.
pub const CONCURRENCY_POLICIES: &[&str] = &[
    "PECR_CONTROLLER_OPERATOR_CONCURRENCY_POLICIES",
    "PECR_CONTROLLER_OPERATOR_CONCURRENCY_POLICY",
    "PECR_OPERATOR_CONCURRENCY_POLICIES",
    "PECR_OPERATOR_CONCURRENCY_POLICY",
];

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50052";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8081";
pub const DEFAULT_LEDGER_URL: &str = "http://127.0.0.1:50053";
pub const DEFAULT_REPLAY_STORE_DIR: &str = "target/replay";

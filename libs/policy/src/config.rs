//! Engine settings. The gateway reads the environment and fills these in;
//! each field names its variable and default (spec 20 §10).

use std::path::PathBuf;

use crate::error::PolicyStartupError;

/// Default of `PECR_POLICY_BUNDLE_DIR`.
pub const DEFAULT_BUNDLE_DIR: &str = "opa/bundle";
pub const DEFAULT_OPA_TIMEOUT_MS: u64 = 200;
pub const DEFAULT_OPA_RETRY_MAX_ATTEMPTS: u32 = 2;
/// Upper bound of `PECR_OPA_RETRY_MAX_ATTEMPTS`.
pub const MAX_OPA_RETRY_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_OPA_RETRY_BASE_BACKOFF_MS: u64 = 50;
pub const DEFAULT_OPA_BREAKER_FAILURE_THRESHOLD: u32 = 8;
pub const DEFAULT_OPA_BREAKER_OPEN_MS: u64 = 1_000;

/// How decisions are made and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `PECR_POLICY_BUNDLE_DIR`, default `opa/bundle`: the bundle the
    /// embedded engine loads. Unused with a remote OPA.
    pub bundle_dir: PathBuf,
    /// `PECR_POLICY_BUNDLE_HASH`, no default. With the embedded engine, the
    /// loaded bundle must hash to it (see [`crate::bundle_hash`]) or start-up
    /// fails; None skips the check. A remote OPA's bundle is never checked.
    pub expected_bundle_hash: Option<String>,
    /// Set iff `PECR_OPA_URL` is set: decisions go to that OPA instead of
    /// the embedded engine.
    pub remote: Option<RemoteOpaConfig>,
    /// `PECR_CACHE_MAX_ENTRIES`, default 0. The cache is on only when this
    /// and `cache_ttl_ms` are both > 0.
    pub cache_max_entries: u64,
    /// `PECR_CACHE_TTL_MS`, default 0: lifetime of a cached decision.
    pub cache_ttl_ms: u64,
}

impl Default for PolicyConfig {
    /// Embedded engine on `opa/bundle`, no hash check, no cache.
    fn default() -> Self {
        Self {
            bundle_dir: PathBuf::from(DEFAULT_BUNDLE_DIR),
            expected_bundle_hash: None,
            remote: None,
            cache_max_entries: 0,
            cache_ttl_ms: 0,
        }
    }
}

/// A remote OPA server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOpaConfig {
    /// `PECR_OPA_URL`: base URL, `http://` only; a trailing `/` is ignored.
    pub url: String,
    /// `PECR_OPA_TIMEOUT_MS`, default 200: per attempt (connect, headers and
    /// body), and for the readiness check.
    pub timeout_ms: u64,
    /// `PECR_OPA_RETRY_MAX_ATTEMPTS`, default 2, at most 10: retries after
    /// the first attempt.
    pub retry_max_attempts: u32,
    /// `PECR_OPA_RETRY_BASE_BACKOFF_MS`, default 50: the delay before retry n
    /// is about base × 2^(n−1) ms (capped at 5000 ms, jittered).
    pub retry_base_backoff_ms: u64,
    /// `PECR_OPA_CIRCUIT_BREAKER_FAILURE_THRESHOLD`, default 8, at least 1:
    /// consecutive failed decisions that open the breaker.
    pub breaker_failure_threshold: u32,
    /// `PECR_OPA_CIRCUIT_BREAKER_OPEN_MS`, default 1000: how long the breaker
    /// stays open before one probe call is let through.
    pub breaker_open_ms: u64,
}

impl RemoteOpaConfig {
    /// `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout_ms: DEFAULT_OPA_TIMEOUT_MS,
            retry_max_attempts: DEFAULT_OPA_RETRY_MAX_ATTEMPTS,
            retry_base_backoff_ms: DEFAULT_OPA_RETRY_BASE_BACKOFF_MS,
            breaker_failure_threshold: DEFAULT_OPA_BREAKER_FAILURE_THRESHOLD,
            breaker_open_ms: DEFAULT_OPA_BREAKER_OPEN_MS,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), PolicyStartupError> {
        if self.retry_max_attempts > MAX_OPA_RETRY_MAX_ATTEMPTS {
            return Err(PolicyStartupError::InvalidConfig(format!(
                "retry_max_attempts must be at most {MAX_OPA_RETRY_MAX_ATTEMPTS}"
            )));
        }
        if self.breaker_failure_threshold == 0 {
            return Err(PolicyStartupError::InvalidConfig(
                "breaker_failure_threshold must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

//! Policy decisions for the gateway (spec 20 §4).
//!
//! The Rego bundle (`opa/bundle`, `package pecr.authz`, rule `decision`) is
//! evaluated in-process by regorus by default, or by a remote OPA over HTTP
//! when one is configured. Either way a failure is an error and never an
//! allow, and cacheable decisions are kept per tenant and principal.

mod bundle;
mod cache;
mod config;
mod decision;
mod embedded;
mod engine;
mod error;
mod remote;

pub use bundle::bundle_hash;
pub use config::{
    DEFAULT_BUNDLE_DIR, DEFAULT_OPA_BREAKER_FAILURE_THRESHOLD, DEFAULT_OPA_BREAKER_OPEN_MS,
    DEFAULT_OPA_RETRY_BASE_BACKOFF_MS, DEFAULT_OPA_RETRY_MAX_ATTEMPTS, DEFAULT_OPA_TIMEOUT_MS,
    MAX_OPA_RETRY_MAX_ATTEMPTS, PolicyConfig, RemoteOpaConfig,
};
pub use decision::{Decision, DecisionKey, InvalidDecision};
pub use engine::PolicyEngine;
pub use error::PolicyStartupError;

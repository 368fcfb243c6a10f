//! The facade the gateway uses: cache, then the embedded or remote backend.

use std::sync::Arc;

use pecr_errors::PecrError;
use serde_json::Value;

use crate::cache::DecisionCache;
use crate::config::PolicyConfig;
use crate::decision::{Decision, DecisionKey};
use crate::embedded::EmbeddedPolicy;
use crate::error::{PolicyStartupError, policy_unavailable};
use crate::remote::RemoteOpa;

/// Makes policy decisions. Cheap to clone: clones share the engine, the
/// HTTP client, the circuit breaker and the cache.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    cache: DecisionCache,
}

enum Backend {
    Embedded(EmbeddedPolicy),
    Remote(RemoteOpa),
}

impl PolicyEngine {
    /// Loads and checks the embedded bundle, or builds the remote client
    /// (remote OPA is not contacted here; `ready` does that).
    pub fn new(config: PolicyConfig) -> Result<Self, PolicyStartupError> {
        let backend = match &config.remote {
            Some(remote) => Backend::Remote(RemoteOpa::new(remote)?),
            None => Backend::Embedded(EmbeddedPolicy::load(
                &config.bundle_dir,
                config.expected_bundle_hash.as_deref(),
            )?),
        };
        let cache = DecisionCache::new(config.cache_max_entries, config.cache_ttl_ms);
        Ok(Self {
            inner: Arc::new(Inner { backend, cache }),
        })
    }

    /// The decision for `input`, which `key` must identify completely.
    ///
    /// A cached decision is served first, even while the remote breaker is
    /// open: it is the policy's own answer for this exact key and tenant and
    /// principal, still within its TTL, and the breaker exists to spare OPA,
    /// not to refuse answers we already hold. Any failure is an error, never
    /// an allow.
    pub async fn decide(&self, key: &DecisionKey, input: &Value) -> Result<Decision, PecrError> {
        if let Some(decision) = self.inner.cache.get(key).await {
            return Ok(decision);
        }
        let decision = match &self.inner.backend {
            Backend::Remote(remote) => remote.decide(input).await?,
            Backend::Embedded(embedded) => embedded.evaluate(input).map_err(|error| {
                tracing::warn!(%error, "embedded policy evaluation failed");
                policy_unavailable()
            })?,
        };
        self.inner.cache.offer(key, &decision).await;
        Ok(decision)
    }

    /// Embedded: always true. Remote: `GET {url}/health` answered 2xx
    /// within the OPA timeout.
    pub async fn ready(&self) -> bool {
        match &self.inner.backend {
            Backend::Embedded(_) => true,
            Backend::Remote(remote) => remote.ready().await,
        }
    }

    /// `"embedded"` or `"opa"`.
    pub fn backend(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Remote(_) => "opa",
        }
    }

    /// The hash of the loaded bundle (embedded only; a remote OPA's bundle
    /// is unknown to us).
    pub fn bundle_hash(&self) -> Option<&str> {
        match &self.inner.backend {
            Backend::Embedded(embedded) => Some(embedded.bundle_hash()),
            Backend::Remote(_) => None,
        }
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("backend", &self.backend())
            .field("bundle_hash", &self.bundle_hash())
            .finish()
    }
}

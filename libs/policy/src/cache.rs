//! The decision cache: process-local, keyed by [`DecisionKey`], holding only
//! decisions the policy marked cacheable, each for a fixed TTL from insertion.
//! Concurrent misses on one key each ask the backend; coalescing them would
//! save little and would have to carry errors and non-cacheable answers too.

use std::time::Duration;

use moka::future::Cache;

use crate::decision::{Decision, DecisionKey};

pub(crate) struct DecisionCache {
    /// None when caching is off (max entries or TTL is 0).
    entries: Option<Cache<DecisionKey, Decision>>,
}

impl DecisionCache {
    pub fn new(max_entries: u64, ttl_ms: u64) -> Self {
        let entries = (max_entries > 0 && ttl_ms > 0).then(|| {
            Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(Duration::from_millis(ttl_ms))
                .build()
        });
        Self { entries }
    }

    pub async fn get(&self, key: &DecisionKey) -> Option<Decision> {
        self.entries.as_ref()?.get(key).await
    }

    /// Stores `decision` if it is cacheable; others are dropped.
    pub async fn offer(&self, key: &DecisionKey, decision: &Decision) {
        if let Some(entries) = &self.entries
            && decision.cacheable
        {
            entries.insert(key.clone(), decision.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(cacheable: bool) -> Decision {
        Decision {
            allow: true,
            cacheable,
            reason: Some("r".into()),
            redaction: None,
        }
    }

    fn key(principal: &str) -> DecisionKey {
        DecisionKey::new("local", principal, "operator_call").with_part("search")
    }

    #[tokio::test]
    async fn stores_only_cacheable_decisions() {
        let cache = DecisionCache::new(16, 60_000);
        cache.offer(&key("dev"), &decision(false)).await;
        assert_eq!(cache.get(&key("dev")).await, None);
        cache.offer(&key("dev"), &decision(true)).await;
        assert_eq!(cache.get(&key("dev")).await, Some(decision(true)));
        assert_eq!(cache.get(&key("support")).await, None);
    }

    #[tokio::test]
    async fn zero_size_or_ttl_disables_it() {
        for (size, ttl) in [(0, 60_000), (16, 0)] {
            let cache = DecisionCache::new(size, ttl);
            cache.offer(&key("dev"), &decision(true)).await;
            assert_eq!(cache.get(&key("dev")).await, None);
        }
    }
}

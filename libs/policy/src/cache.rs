//! The decision cache: process-local, keyed by [`DecisionKey`], holding only
//! decisions the policy marked cacheable, each for a fixed TTL from insertion.
//! Concurrent misses on one key each ask the backend; coalescing them would
//! save little and would have to carry errors and non-cacheable answers too.
//!
//! Freshness is judged on tokio's clock, which is the system's monotonic
//! clock unless a test pauses it; moka's own TTL, on a clock no test can
//! move, only frees the memory of entries that expired.

use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use crate::decision::{Decision, DecisionKey};

pub(crate) struct DecisionCache {
    /// None when caching is off (max entries or TTL is 0).
    entries: Option<Cache<DecisionKey, Stored>>,
    ttl: Duration,
}

/// A cached decision and when it was stored.
#[derive(Clone)]
struct Stored {
    decision: Decision,
    at: Instant,
}

impl DecisionCache {
    pub fn new(max_entries: u64, ttl_ms: u64) -> Self {
        let ttl = Duration::from_millis(ttl_ms);
        let entries = (max_entries > 0 && ttl_ms > 0).then(|| {
            Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build()
        });
        Self { entries, ttl }
    }

    /// The decision stored under `key` less than the TTL ago.
    pub async fn get(&self, key: &DecisionKey) -> Option<Decision> {
        let stored = self.entries.as_ref()?.get(key).await?;
        // An expired entry is left in place: the next `offer` replaces it,
        // and removing it here could remove a fresher one stored meanwhile.
        (stored.at.elapsed() < self.ttl).then_some(stored.decision)
    }

    /// Stores `decision` if it is cacheable; others are dropped.
    pub async fn offer(&self, key: &DecisionKey, decision: &Decision) {
        if let Some(entries) = &self.entries
            && decision.cacheable
        {
            let stored = Stored {
                decision: decision.clone(),
                at: Instant::now(),
            };
            entries.insert(key.clone(), stored).await;
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

    #[tokio::test(start_paused = true)]
    async fn an_entry_lives_for_the_ttl_from_insertion() {
        let ttl = Duration::from_millis(200);
        let cache = DecisionCache::new(16, 200);
        cache.offer(&key("dev"), &decision(true)).await;
        tokio::time::advance(ttl - Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key("dev")).await, Some(decision(true)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key("dev")).await, None, "expired at the TTL");
        // A fresh offer starts a new lifetime.
        cache.offer(&key("dev"), &decision(true)).await;
        tokio::time::advance(ttl / 2).await;
        assert_eq!(cache.get(&key("dev")).await, Some(decision(true)));
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

//! The `search` result cache (spec 20 §5.10): keyed by tenant, principal,
//! snapshot, as_of_time and params, so no result crosses principals.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchKey {
    pub tenant_id: String,
    pub principal_id: String,
    pub policy_snapshot_hash: String,
    pub as_of_time: String,
    pub params_hash: String,
}

/// Disabled unless both a size and a TTL are set.
pub struct SearchCache {
    cache: Option<moka::future::Cache<SearchKey, Value>>,
}

impl SearchCache {
    pub fn new(max_entries: u64, ttl_ms: u64) -> Self {
        let cache = (max_entries > 0 && ttl_ms > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(Duration::from_millis(ttl_ms))
                .build()
        });
        Self { cache }
    }

    pub async fn get(&self, key: &SearchKey) -> Option<Value> {
        self.cache.as_ref()?.get(key).await
    }

    pub async fn insert(&self, key: SearchKey, result: Value) {
        if let Some(cache) = &self.cache {
            cache.insert(key, result).await;
        }
    }
}

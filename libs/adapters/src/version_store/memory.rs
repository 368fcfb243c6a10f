//! [`MemoryVersionStore`]: the rules of the version store (see the parent
//! module) in one process's memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    NewVersion, ObjectVersions, ResolveRequest, StoreFuture, StoredVersion, VersionKey,
    VersionStore,
};

/// A process-local [`VersionStore`] with per-principal and store-wide caps.
#[derive(Debug)]
pub struct MemoryVersionStore {
    /// Bytes one principal's versions may hold.
    max_bytes: u64,
    /// Bytes all principals' versions may hold together.
    max_total_bytes: u64,
    max_versions_per_object: usize,
    state: Mutex<MemoryState>,
}

/// Whose versions these are: tenant and principal id.
type Owner = (String, String);

fn owner_of(key: &VersionKey) -> Owner {
    (key.tenant_id.clone(), key.principal_id.clone())
}

/// One principal's blobs in insertion order, and the bytes they count for.
#[derive(Debug, Default)]
struct OwnerUsage {
    order: VecDeque<(VersionKey, String)>,
    bytes: u64,
}

#[derive(Debug, Default)]
struct MemoryState {
    blobs: HashMap<VersionKey, BTreeMap<String, Arc<Vec<u8>>>>,
    owners: HashMap<Owner, OwnerUsage>,
    total_bytes: u64,
    /// Per key: as_of_time → version_id. Kept only for keys with cached
    /// blobs (without blobs, `select` answers None whatever they say), so
    /// memory stays bounded by the blob caps.
    observations: HashMap<VersionKey, BTreeMap<String, String>>,
}

/// Bytes a blob counts for: its length, at least one.
fn charge(bytes: &[u8]) -> u64 {
    (bytes.len() as u64).max(1)
}

impl MemoryState {
    /// Drops one blob and its accounting (its place in the owner's order
    /// is the caller's to drop).
    fn remove_blob(&mut self, key: &VersionKey, version_id: &str) {
        let Some(versions) = self.blobs.get_mut(key) else {
            return;
        };
        if let Some(bytes) = versions.remove(version_id) {
            let size = charge(&bytes);
            self.total_bytes = self.total_bytes.saturating_sub(size);
            let owner = owner_of(key);
            if let Some(usage) = self.owners.get_mut(&owner) {
                usage.bytes = usage.bytes.saturating_sub(size);
                if usage.bytes == 0 && usage.order.is_empty() {
                    self.owners.remove(&owner);
                }
            }
        }
        if versions.is_empty() {
            self.blobs.remove(key);
            self.observations.remove(key);
        }
    }

    /// Drops the oldest blob of `owner`; false when it has none.
    fn evict_oldest(&mut self, owner: &Owner) -> bool {
        let Some((key, version_id)) = self
            .owners
            .get_mut(owner)
            .and_then(|usage| usage.order.pop_front())
        else {
            return false;
        };
        self.remove_blob(&key, &version_id);
        true
    }

    fn owner_bytes(&self, owner: &Owner) -> u64 {
        self.owners.get(owner).map_or(0, |usage| usage.bytes)
    }

    /// The principal holding the most bytes, leaving out `inserting` when
    /// its only blob is the one just inserted (ties: the greater owner).
    fn largest_holder(&self, inserting: &Owner) -> Option<Owner> {
        self.owners
            .iter()
            .filter(|(owner, usage)| *owner != inserting || usage.order.len() > 1)
            .max_by(|(a, x), (b, y)| x.bytes.cmp(&y.bytes).then_with(|| a.cmp(b)))
            .map(|(owner, _)| owner.clone())
    }
}

impl MemoryVersionStore {
    /// `max_bytes` is each principal's cap (0 disables caching);
    /// `max_total_bytes` the store's, at least `max_bytes`;
    /// `max_versions_per_object` is at least 1.
    pub fn new(max_bytes: u64, max_total_bytes: u64, max_versions_per_object: usize) -> Self {
        Self {
            max_bytes,
            max_total_bytes: max_total_bytes.max(max_bytes),
            max_versions_per_object: max_versions_per_object.max(1),
            state: Mutex::new(MemoryState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        crate::lock(&self.state)
    }

    fn insert_now(&self, key: &VersionKey, version_id: &str, bytes: Arc<Vec<u8>>) {
        let size = charge(&bytes);
        if self.max_bytes == 0 || size > self.max_bytes {
            return;
        }
        let mut state = self.lock();
        let versions = state.blobs.entry(key.clone()).or_default();
        if versions.contains_key(version_id) {
            return;
        }
        versions.insert(version_id.to_owned(), bytes);
        state.total_bytes += size;
        let owner = owner_of(key);
        let usage = state.owners.entry(owner.clone()).or_default();
        usage.bytes += size;
        usage.order.push_back((key.clone(), version_id.to_owned()));

        // Too many versions of this object: drop its smallest other ids.
        loop {
            let victim = match state.blobs.get(key) {
                Some(versions) if versions.len() > self.max_versions_per_object => versions
                    .keys()
                    .find(|id| id.as_str() != version_id)
                    .cloned(),
                _ => None,
            };
            let Some(victim) = victim else { break };
            if let Some(usage) = state.owners.get_mut(&owner) {
                usage.order.retain(|(k, id)| !(k == key && *id == victim));
            }
            state.remove_blob(key, &victim);
        }
        // Over this principal's cap: its own oldest blobs go. The new blob
        // fits on its own, so it is never the one evicted.
        while state.owner_bytes(&owner) > self.max_bytes {
            if !state.evict_oldest(&owner) {
                break;
            }
        }
        // Over the store's cap: the largest holder gives up its oldest.
        while state.total_bytes > self.max_total_bytes {
            let Some(victim) = state.largest_holder(&owner) else {
                break;
            };
            if !state.evict_oldest(&victim) {
                break;
            }
        }
    }

    fn observe_now(&self, key: &VersionKey, as_of_time: &str, version_id: &str) {
        let mut state = self.lock();
        if !state.blobs.contains_key(key) {
            return;
        }
        state
            .observations
            .entry(key.clone())
            .or_default()
            .entry(as_of_time.to_owned())
            .or_insert_with(|| version_id.to_owned());
    }

    fn select_now(&self, key: &VersionKey, as_of_time: &str) -> Option<StoredVersion> {
        let state = self.lock();
        let versions = state.blobs.get(key)?;
        let observed = state.observations.get(key)?;
        let (latest, _) = observed.last_key_value()?;
        if as_of_time > latest.as_str() {
            return None;
        }
        let (_, version_id) = observed
            .range::<str, _>((Bound::Unbounded, Bound::Included(as_of_time)))
            .next_back()?;
        let bytes = versions.get(version_id)?;
        Some(StoredVersion {
            version_id: version_id.clone(),
            bytes: Arc::clone(bytes),
        })
    }

    fn get_now(&self, key: &VersionKey, version_id: &str) -> Option<Arc<Vec<u8>>> {
        self.lock().blobs.get(key)?.get(version_id).cloned()
    }

    fn versions_now(&self, key: &VersionKey) -> Vec<String> {
        self.lock()
            .blobs
            .get(key)
            .map(|versions| versions.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl VersionStore for MemoryVersionStore {
    fn resolve<'a>(
        &'a self,
        requests: &'a [ResolveRequest],
    ) -> StoreFuture<'a, Vec<Option<StoredVersion>>> {
        Box::pin(async move {
            Ok(requests
                .iter()
                .map(|request| {
                    let found = self.select_now(&request.key, &request.as_of_time);
                    if found.is_none()
                        && let Some(current) = &request.current
                    {
                        self.insert_now(
                            &request.key,
                            &current.version_id,
                            Arc::clone(&current.bytes),
                        );
                        self.observe_now(&request.key, &request.as_of_time, &current.version_id);
                    }
                    found
                })
                .collect())
        })
    }

    fn record<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: Option<&'a str>,
        version: &'a NewVersion,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.insert_now(key, &version.version_id, Arc::clone(&version.bytes));
            if let Some(at) = as_of_time {
                self.observe_now(key, at, &version.version_id);
            }
            Ok(self.versions_now(key))
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a VersionKey,
        version_ids: &'a [String],
    ) -> StoreFuture<'a, ObjectVersions> {
        Box::pin(async move {
            Ok(ObjectVersions {
                requested: version_ids.iter().map(|id| self.get_now(key, id)).collect(),
                version_ids: self.versions_now(key),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version_store::suite;

    struct Memory;

    impl suite::StoreMaker for Memory {
        fn make(&self, caps: suite::Caps) -> StoreFuture<'_, Arc<dyn VersionStore>> {
            Box::pin(async move {
                Ok(Arc::new(MemoryVersionStore::new(
                    caps.max_bytes,
                    caps.max_total_bytes,
                    caps.max_versions_per_object,
                )) as Arc<dyn VersionStore>)
            })
        }
    }

    #[tokio::test]
    async fn follows_the_rules() {
        suite::run_all(&Memory).await;
    }

    fn key(principal: &str, object: &str) -> VersionKey {
        VersionKey {
            tenant_id: "local".into(),
            principal_id: principal.into(),
            object_id: object.into(),
        }
    }

    fn blob(text: &str) -> Arc<Vec<u8>> {
        Arc::new(text.as_bytes().to_vec())
    }

    #[test]
    fn accounting_follows_the_blobs() {
        let store = MemoryVersionStore::new(10, 20, 16);
        store.insert_now(&key("a", "o1"), "x", blob("11111"));
        store.insert_now(&key("a", "o2"), "x", blob("22222"));
        store.insert_now(&key("b", "o1"), "x", blob("3333"));
        assert_eq!(store.lock().total_bytes, 14);
        store.insert_now(&key("c", "o1"), "x", blob("44444444"));
        assert_eq!(store.lock().total_bytes, 17);
        assert_eq!(store.lock().owner_bytes(&("local".into(), "a".into())), 5);
        let tight = MemoryVersionStore::new(10, 10, 16);
        tight.insert_now(&key("a", "o"), "x", blob("123456"));
        tight.insert_now(&key("b", "o"), "y", blob("654321"));
        assert!(tight.lock().owners.len() == 1, "empty owners are dropped");
    }
}

//! Object versions behind `as_of_time` (gateway spec §5.1, decision 5).
//!
//! A store holds version bytes per object and, per object, which version was
//! observed at which `as_of_time`. Operators consult it before reading the
//! live source, so a session at an earlier `as_of_time` keeps seeing what was
//! observed then. [`MemoryVersionStore`] is the in-process implementation; the
//! trait is kept small so a PostgreSQL-backed store (shared by every gateway
//! replica and surviving restarts) can replace it.
//!
//! Rules (decisions 1 and 5):
//! - Keys are per principal: [`VersionKey`] carries `tenant_id` and
//!   `principal_id`, so `list_versions` never shows versions another
//!   principal observed.
//! - The first observation at an `as_of_time` wins: a later read of the live
//!   source at the same `as_of_time` (e.g. `list_versions` after the file
//!   changed) never rewrites history.
//! - `select` answers with the version observed at the greatest observed time
//!   ≤ t, and answers None when that version's bytes were evicted: an older
//!   cached version was not current at t, so it is never a fallback.
//! - Empty blobs are cached (accounted as one byte), so as_of applies to empty
//!   files too.
//! - The byte cap is per principal (tenant and principal id): a principal
//!   over its cap evicts only its own oldest blobs, so one principal filling
//!   the store never evicts another's history. A second, store-wide cap bounds
//!   memory across principals; over it, the principal holding the most bytes
//!   gives up its oldest blob, so each keeps at least a fair share.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use pecr_errors::PecrError;

use crate::scope::SessionScope;

/// What the store's operations return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PecrError>> + Send + 'a>>;

/// One object as seen by one principal of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionKey {
    pub tenant_id: String,
    pub principal_id: String,
    pub object_id: String,
}

impl VersionKey {
    pub fn new(scope: &SessionScope, object_id: &str) -> Self {
        Self {
            tenant_id: scope.tenant_id.clone(),
            principal_id: scope.principal_id.clone(),
            object_id: object_id.to_owned(),
        }
    }
}

/// A cached version and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub version_id: String,
    pub bytes: Arc<Vec<u8>>,
}

/// Versions of objects and the `as_of_time`s they were observed at.
pub trait VersionStore: Send + Sync {
    /// Caches `bytes` as `version_id` of `key`. Skipped when caching is off,
    /// the blob exceeds the byte cap, or the pair is already cached. May
    /// evict: first the object's lexicographically smallest other versions
    /// while it has too many, then the oldest blobs while over the byte cap.
    fn insert<'a>(
        &'a self,
        key: &'a VersionKey,
        version_id: &'a str,
        bytes: Arc<Vec<u8>>,
    ) -> StoreFuture<'a, ()>;

    /// Records that `version_id` was current at `as_of_time`, unless that
    /// time already has an observation for `key`.
    fn observe<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: &'a str,
        version_id: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// The version current at `as_of_time`: None when the key has no
    /// observations or no cached versions, when `as_of_time` is later
    /// (string order) than its latest observation, when nothing was observed
    /// at or before it, or when that version's bytes are no longer cached.
    fn select<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: &'a str,
    ) -> StoreFuture<'a, Option<StoredVersion>>;

    /// The cached bytes of one version.
    fn get<'a>(
        &'a self,
        key: &'a VersionKey,
        version_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<Vec<u8>>>>;

    /// Every cached version id of `key`, sorted.
    fn versions<'a>(&'a self, key: &'a VersionKey) -> StoreFuture<'a, Vec<String>>;
}

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
    fn insert<'a>(
        &'a self,
        key: &'a VersionKey,
        version_id: &'a str,
        bytes: Arc<Vec<u8>>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.insert_now(key, version_id, bytes);
            Ok(())
        })
    }

    fn observe<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: &'a str,
        version_id: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.observe_now(key, as_of_time, version_id);
            Ok(())
        })
    }

    fn select<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: &'a str,
    ) -> StoreFuture<'a, Option<StoredVersion>> {
        Box::pin(async move { Ok(self.select_now(key, as_of_time)) })
    }

    fn get<'a>(
        &'a self,
        key: &'a VersionKey,
        version_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<Vec<u8>>>> {
        Box::pin(async move { Ok(self.get_now(key, version_id)) })
    }

    fn versions<'a>(&'a self, key: &'a VersionKey) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { Ok(self.versions_now(key)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const T1: &str = "2026-01-01T00:00:00Z";
    const T2: &str = "2026-02-01T00:00:00Z";
    const T3: &str = "2026-03-01T00:00:00Z";

    fn selected(store: &MemoryVersionStore, key: &VersionKey, at: &str) -> Option<String> {
        store.select_now(key, at).map(|v| v.version_id)
    }

    #[test]
    fn select_follows_observations() {
        let store = MemoryVersionStore::new(1024, 1024, 16);
        let k = key("dev", "o");
        assert_eq!(selected(&store, &k, T1), None);
        store.insert_now(&k, "v1", blob("one"));
        assert_eq!(selected(&store, &k, T1), None, "no observation yet");
        store.observe_now(&k, T1, "v1");
        store.insert_now(&k, "v2", blob("two"));
        store.observe_now(&k, T2, "v2");
        assert_eq!(selected(&store, &k, T1).as_deref(), Some("v1"));
        assert_eq!(
            selected(&store, &k, "2026-01-15T00:00:00Z").as_deref(),
            Some("v1")
        );
        assert_eq!(selected(&store, &k, T2).as_deref(), Some("v2"));
        assert_eq!(
            selected(&store, &k, T3),
            None,
            "later than the latest observation"
        );
        assert_eq!(
            selected(&store, &k, "2025-01-01T00:00:00Z"),
            None,
            "before any observation"
        );
        // The first observation at a time wins.
        store.observe_now(&k, T1, "v2");
        assert_eq!(selected(&store, &k, T1).as_deref(), Some("v1"));
    }

    #[test]
    fn keys_are_per_principal() {
        let store = MemoryVersionStore::new(1024, 1024, 16);
        store.insert_now(&key("dev", "o"), "v1", blob("one"));
        store.observe_now(&key("dev", "o"), T1, "v1");
        assert_eq!(
            store.versions_now(&key("support", "o")),
            Vec::<String>::new()
        );
        assert_eq!(selected(&store, &key("support", "o"), T1), None);
        assert_eq!(store.versions_now(&key("dev", "o")), vec!["v1".to_owned()]);
    }

    #[test]
    fn caps_evict_smallest_other_version_then_oldest() {
        let store = MemoryVersionStore::new(10, 10, 2);
        let k = key("dev", "o");
        store.insert_now(&k, "b", blob("1"));
        store.insert_now(&k, "a", blob("2"));
        store.insert_now(&k, "c", blob("3"));
        assert_eq!(store.versions_now(&k), vec!["b".to_owned(), "c".to_owned()]);
        store.insert_now(&k, "0", blob("4"));
        assert_eq!(store.versions_now(&k), vec!["0".to_owned(), "c".to_owned()]);

        let other = key("dev", "p");
        store.insert_now(&other, "x", blob("12345678"));
        // 1 + 1 + 8 = 10 fits; 4 more bytes evict in insertion order.
        assert_eq!(store.lock().total_bytes, 10);
        store.insert_now(&other, "y", blob("abcd"));
        assert_eq!(store.versions_now(&k), Vec::<String>::new());
        assert_eq!(store.versions_now(&other), vec!["y".to_owned()]);
        assert_eq!(store.lock().total_bytes, 4);
        // Too large for the cap, or caching off: skipped.
        store.insert_now(&other, "z", blob("01234567890"));
        assert_eq!(store.versions_now(&other), vec!["y".to_owned()]);
        let off = MemoryVersionStore::new(0, 0, 16);
        off.insert_now(&k, "v", blob("x"));
        assert_eq!(off.versions_now(&k), Vec::<String>::new());
    }

    #[test]
    fn one_principal_filling_its_cap_keeps_another_principals_history() {
        let store = MemoryVersionStore::new(10, 1_000, 16);
        let dev = key("dev", "o");
        store.insert_now(&dev, "v1", blob("dev's!"));
        store.observe_now(&dev, T1, "v1");
        for n in 0..50 {
            let flood = key("mallory", &format!("o{n}"));
            store.insert_now(&flood, "x", blob("12345"));
        }
        assert_eq!(selected(&store, &dev, T1).as_deref(), Some("v1"));
        assert_eq!(store.versions_now(&dev), vec!["v1".to_owned()]);
        // Mallory kept only what fits in its own cap: its newest two.
        let kept: Vec<usize> = (0..50)
            .filter(|n| {
                !store
                    .versions_now(&key("mallory", &format!("o{n}")))
                    .is_empty()
            })
            .collect();
        assert_eq!(kept, [48, 49]);
        let state = store.lock();
        assert_eq!(state.total_bytes, 6 + 10);
        assert_eq!(state.owner_bytes(&("local".into(), "mallory".into())), 10);
    }

    #[test]
    fn the_same_principal_id_in_another_tenant_has_its_own_cap() {
        let store = MemoryVersionStore::new(6, 1_000, 16);
        let ours = key("dev", "o");
        store.insert_now(&ours, "v1", blob("ours!!"));
        let theirs = VersionKey {
            tenant_id: "other".into(),
            ..key("dev", "o")
        };
        store.insert_now(&theirs, "v9", blob("theirs"));
        assert_eq!(store.versions_now(&ours), vec!["v1".to_owned()]);
        assert_eq!(store.versions_now(&theirs), vec!["v9".to_owned()]);
    }

    #[test]
    fn over_the_store_cap_the_largest_holder_gives_way() {
        let store = MemoryVersionStore::new(10, 20, 16);
        store.insert_now(&key("a", "o1"), "x", blob("11111"));
        store.insert_now(&key("a", "o2"), "x", blob("22222"));
        store.insert_now(&key("b", "o1"), "x", blob("3333"));
        assert_eq!(store.lock().total_bytes, 14);
        // 14 + 8 > 20: `a` holds the most, its oldest blob goes.
        store.insert_now(&key("c", "o1"), "x", blob("44444444"));
        assert!(store.versions_now(&key("a", "o1")).is_empty());
        assert_eq!(store.versions_now(&key("a", "o2")), vec!["x".to_owned()]);
        assert_eq!(store.versions_now(&key("b", "o1")), vec!["x".to_owned()]);
        assert_eq!(store.versions_now(&key("c", "o1")), vec!["x".to_owned()]);
        assert_eq!(store.lock().total_bytes, 17);
        // A newcomer's only blob is never its own victim.
        let tight = MemoryVersionStore::new(10, 10, 16);
        tight.insert_now(&key("a", "o"), "x", blob("123456"));
        tight.insert_now(&key("b", "o"), "y", blob("654321"));
        assert!(tight.versions_now(&key("a", "o")).is_empty());
        assert_eq!(tight.versions_now(&key("b", "o")), vec!["y".to_owned()]);
        assert!(tight.lock().owners.len() == 1, "empty owners are dropped");
    }

    #[test]
    fn evicted_versions_are_not_replaced_by_older_ones() {
        let store = MemoryVersionStore::new(1024, 1024, 1);
        let k = key("dev", "o");
        store.insert_now(&k, "v2", blob("old"));
        store.observe_now(&k, T1, "v2");
        store.insert_now(&k, "v1", blob("new"));
        store.observe_now(&k, T2, "v1");
        assert_eq!(store.versions_now(&k), vec!["v1".to_owned()]);
        assert_eq!(selected(&store, &k, T1), None);
        assert_eq!(selected(&store, &k, T2).as_deref(), Some("v1"));
    }

    #[test]
    fn empty_blobs_are_cached() {
        let store = MemoryVersionStore::new(1024, 1024, 16);
        let k = key("dev", "empty");
        store.insert_now(&k, "e", Arc::new(Vec::new()));
        store.observe_now(&k, T1, "e");
        assert_eq!(selected(&store, &k, T1).as_deref(), Some("e"));
    }
}

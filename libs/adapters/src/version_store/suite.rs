//! The version store's rules as one behavioural suite, run against every
//! [`VersionStore`]: the in-process store (this crate's tests) and the
//! gateway's store in the ledger (its integration tests, feature
//! `test-suite`). Each case asks the maker for a fresh, empty store.

use std::sync::Arc;

use super::{NewVersion, ResolveRequest, StoreFuture, VersionKey, VersionStore};

/// A store's caps.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_bytes: u64,
    pub max_total_bytes: u64,
    pub max_versions_per_object: usize,
}

/// Makes an empty store, sharing nothing with the stores made before.
pub trait StoreMaker: Sync {
    fn make(&self, caps: Caps) -> StoreFuture<'_, Arc<dyn VersionStore>>;
}

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-02-01T00:00:00Z";
const T3: &str = "2026-03-01T00:00:00Z";

fn key(principal: &str, object: &str) -> VersionKey {
    VersionKey {
        tenant_id: "local".into(),
        principal_id: principal.into(),
        object_id: object.into(),
    }
}

fn version(id: &str, text: &str) -> NewVersion {
    NewVersion {
        version_id: id.into(),
        bytes: Arc::new(text.as_bytes().to_vec()),
    }
}

/// A store under test, with the operations spelled the way the rules are.
struct Subject(Arc<dyn VersionStore>);

impl Subject {
    async fn new(maker: &dyn StoreMaker, max_bytes: u64, total: u64, per_object: usize) -> Self {
        let caps = Caps {
            max_bytes,
            max_total_bytes: total,
            max_versions_per_object: per_object,
        };
        Self(
            maker
                .make(caps)
                .await
                .unwrap_or_else(|err| panic!("make a store: {err:?}")),
        )
    }

    /// Stores a version without observing it.
    async fn insert(&self, key: &VersionKey, id: &str, text: &str) {
        self.0
            .record(key, None, &version(id, text))
            .await
            .unwrap_or_else(|err| panic!("record: {err:?}"));
    }

    /// Stores a version (if it is not) and observes it at `at`.
    async fn observe(&self, key: &VersionKey, at: &str, id: &str, text: &str) {
        self.0
            .record(key, Some(at), &version(id, text))
            .await
            .unwrap_or_else(|err| panic!("record: {err:?}"));
    }

    async fn selected(&self, key: &VersionKey, at: &str) -> Option<String> {
        self.0
            .select(key, at)
            .await
            .unwrap_or_else(|err| panic!("select: {err:?}"))
            .map(|stored| stored.version_id)
    }

    async fn versions(&self, key: &VersionKey) -> Vec<String> {
        self.0
            .versions(key)
            .await
            .unwrap_or_else(|err| panic!("versions: {err:?}"))
    }

    async fn resolve(&self, requests: &[ResolveRequest]) -> Vec<Option<String>> {
        self.0
            .resolve(requests)
            .await
            .unwrap_or_else(|err| panic!("resolve: {err:?}"))
            .into_iter()
            .map(|found| found.map(|stored| stored.version_id))
            .collect()
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|id| (*id).to_owned()).collect()
}

/// Runs every case; a failure names its case.
pub async fn run_all(maker: &dyn StoreMaker) {
    select_follows_observations(maker).await;
    keys_are_per_principal(maker).await;
    caps_evict_smallest_other_version_then_oldest(maker).await;
    one_principal_filling_its_cap_keeps_another_principals_history(maker).await;
    the_same_principal_id_in_another_tenant_has_its_own_cap(maker).await;
    over_the_store_cap_the_largest_holder_gives_way(maker).await;
    evicted_versions_are_not_replaced_by_older_ones(maker).await;
    empty_blobs_are_cached(maker).await;
    resolve_records_only_when_nothing_is_in_force(maker).await;
    get_answers_the_requested_versions(maker).await;
}

pub async fn select_follows_observations(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 1024, 1024, 16).await;
    let k = key("dev", "o");
    assert_eq!(store.selected(&k, T1).await, None);
    store.insert(&k, "v1", "one").await;
    assert_eq!(store.selected(&k, T1).await, None, "no observation yet");
    store.observe(&k, T1, "v1", "one").await;
    store.observe(&k, T2, "v2", "two").await;
    assert_eq!(store.selected(&k, T1).await.as_deref(), Some("v1"));
    assert_eq!(
        store.selected(&k, "2026-01-15T00:00:00Z").await.as_deref(),
        Some("v1")
    );
    assert_eq!(store.selected(&k, T2).await.as_deref(), Some("v2"));
    assert_eq!(
        store.selected(&k, T3).await,
        None,
        "later than the latest observation"
    );
    assert_eq!(
        store.selected(&k, "2025-01-01T00:00:00Z").await,
        None,
        "before any observation"
    );
    // The first observation at a time wins.
    store.observe(&k, T1, "v2", "two").await;
    assert_eq!(store.selected(&k, T1).await.as_deref(), Some("v1"));
    let stored = store
        .0
        .select(&k, T1)
        .await
        .unwrap_or_else(|err| panic!("select: {err:?}"));
    assert_eq!(stored.map(|s| s.bytes.to_vec()), Some(b"one".to_vec()));
}

pub async fn keys_are_per_principal(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 1024, 1024, 16).await;
    store.observe(&key("dev", "o"), T1, "v1", "one").await;
    assert_eq!(store.versions(&key("support", "o")).await, ids(&[]));
    assert_eq!(store.selected(&key("support", "o"), T1).await, None);
    assert_eq!(store.versions(&key("dev", "o")).await, ids(&["v1"]));
}

pub async fn caps_evict_smallest_other_version_then_oldest(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 10, 10, 2).await;
    let k = key("dev", "o");
    store.insert(&k, "b", "1").await;
    store.insert(&k, "a", "2").await;
    store.insert(&k, "c", "3").await;
    assert_eq!(store.versions(&k).await, ids(&["b", "c"]));
    store.insert(&k, "0", "4").await;
    assert_eq!(store.versions(&k).await, ids(&["0", "c"]));

    let other = key("dev", "p");
    // 1 + 1 + 8 = 10 fits; 4 more bytes evict in insertion order.
    store.insert(&other, "x", "12345678").await;
    assert_eq!(store.versions(&k).await, ids(&["0", "c"]));
    store.insert(&other, "y", "abcd").await;
    assert_eq!(store.versions(&k).await, ids(&[]));
    assert_eq!(store.versions(&other).await, ids(&["y"]));
    // 4 + 6 = 10 still fits: nothing else was left behind.
    store.insert(&k, "w", "123456").await;
    assert_eq!(store.versions(&other).await, ids(&["y"]));
    assert_eq!(store.versions(&k).await, ids(&["w"]));
    // Too large for the cap, or caching off: skipped.
    store.insert(&other, "z", "01234567890").await;
    assert_eq!(store.versions(&other).await, ids(&["y"]));
    let off = Subject::new(maker, 0, 0, 16).await;
    off.insert(&k, "v", "x").await;
    assert_eq!(off.versions(&k).await, ids(&[]));
}

pub async fn one_principal_filling_its_cap_keeps_another_principals_history(
    maker: &dyn StoreMaker,
) {
    let store = Subject::new(maker, 10, 1_000, 16).await;
    let dev = key("dev", "o");
    store.observe(&dev, T1, "v1", "dev's!").await;
    for n in 0..50 {
        store
            .insert(&key("mallory", &format!("o{n}")), "x", "12345")
            .await;
    }
    assert_eq!(store.selected(&dev, T1).await.as_deref(), Some("v1"));
    assert_eq!(store.versions(&dev).await, ids(&["v1"]));
    // Mallory kept only what fits in its own cap: its newest two.
    let mut kept = Vec::new();
    for n in 0..50 {
        if !store
            .versions(&key("mallory", &format!("o{n}")))
            .await
            .is_empty()
        {
            kept.push(n);
        }
    }
    assert_eq!(kept, [48, 49]);
}

pub async fn the_same_principal_id_in_another_tenant_has_its_own_cap(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 6, 1_000, 16).await;
    let ours = key("dev", "o");
    store.insert(&ours, "v1", "ours!!").await;
    let theirs = VersionKey {
        tenant_id: "other".into(),
        ..key("dev", "o")
    };
    store.insert(&theirs, "v9", "theirs").await;
    assert_eq!(store.versions(&ours).await, ids(&["v1"]));
    assert_eq!(store.versions(&theirs).await, ids(&["v9"]));
}

pub async fn over_the_store_cap_the_largest_holder_gives_way(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 10, 20, 16).await;
    store.insert(&key("a", "o1"), "x", "11111").await;
    store.insert(&key("a", "o2"), "x", "22222").await;
    store.insert(&key("b", "o1"), "x", "3333").await;
    // 14 + 8 > 20: `a` holds the most, its oldest blob goes.
    store.insert(&key("c", "o1"), "x", "44444444").await;
    assert!(store.versions(&key("a", "o1")).await.is_empty());
    assert_eq!(store.versions(&key("a", "o2")).await, ids(&["x"]));
    assert_eq!(store.versions(&key("b", "o1")).await, ids(&["x"]));
    assert_eq!(store.versions(&key("c", "o1")).await, ids(&["x"]));
    // 17 + 3 = 20 fits exactly: nothing goes.
    store.insert(&key("d", "o1"), "x", "555").await;
    for (principal, object) in [("a", "o2"), ("b", "o1"), ("c", "o1"), ("d", "o1")] {
        assert_eq!(
            store.versions(&key(principal, object)).await,
            ids(&["x"]),
            "{principal}"
        );
    }
    // One byte more: `c` holds the most (8 bytes).
    store.insert(&key("e", "o1"), "x", "6").await;
    assert!(store.versions(&key("c", "o1")).await.is_empty());
    assert_eq!(store.versions(&key("a", "o2")).await, ids(&["x"]));
    // Equal holders: the greater principal gives way.
    let tied = Subject::new(maker, 10, 10, 16).await;
    tied.insert(&key("a", "o"), "x", "12345").await;
    tied.insert(&key("b", "o"), "x", "12345").await;
    tied.insert(&key("c", "o"), "x", "1").await;
    assert_eq!(tied.versions(&key("a", "o")).await, ids(&["x"]));
    assert!(tied.versions(&key("b", "o")).await.is_empty());
    assert_eq!(tied.versions(&key("c", "o")).await, ids(&["x"]));
    // A newcomer's only blob is never its own victim.
    let tight = Subject::new(maker, 10, 10, 16).await;
    tight.insert(&key("a", "o"), "x", "123456").await;
    tight.insert(&key("b", "o"), "y", "654321").await;
    assert!(tight.versions(&key("a", "o")).await.is_empty());
    assert_eq!(tight.versions(&key("b", "o")).await, ids(&["y"]));
    // The emptied principal holds nothing: the next insert fits beside b's.
    tight.insert(&key("a", "o"), "z", "1234").await;
    assert_eq!(tight.versions(&key("a", "o")).await, ids(&["z"]));
    assert_eq!(tight.versions(&key("b", "o")).await, ids(&["y"]));
}

pub async fn evicted_versions_are_not_replaced_by_older_ones(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 1024, 1024, 1).await;
    let k = key("dev", "o");
    store.observe(&k, T1, "v2", "old").await;
    store.observe(&k, T2, "v1", "new").await;
    assert_eq!(store.versions(&k).await, ids(&["v1"]));
    assert_eq!(store.selected(&k, T1).await, None);
    assert_eq!(store.selected(&k, T2).await.as_deref(), Some("v1"));
}

pub async fn empty_blobs_are_cached(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 1024, 1024, 16).await;
    let k = key("dev", "empty");
    store.observe(&k, T1, "e", "").await;
    assert_eq!(store.selected(&k, T1).await.as_deref(), Some("e"));
    let stored = store
        .0
        .select(&k, T1)
        .await
        .unwrap_or_else(|err| panic!("select: {err:?}"));
    assert_eq!(stored.map(|s| s.bytes.len()), Some(0));
}

pub async fn resolve_records_only_when_nothing_is_in_force(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 1024, 1024, 16).await;
    let (a, b) = (key("dev", "a"), key("dev", "b"));
    let request = |key: &VersionKey, at: &str, current: Option<NewVersion>| ResolveRequest {
        key: key.clone(),
        as_of_time: at.into(),
        current,
    };
    // Nothing in force: the live versions are recorded, and answer None.
    let answers = store
        .resolve(&[
            request(&a, T2, Some(version("a2", "A2"))),
            request(&b, T2, None),
            request(&a, T2, Some(version("a3", "A3"))),
        ])
        .await;
    assert_eq!(
        answers,
        [None, None, Some("a2".to_owned())],
        "a later item sees an earlier one's write"
    );
    assert_eq!(store.versions(&a).await, ids(&["a2"]));
    assert_eq!(
        store.versions(&b).await,
        ids(&[]),
        "no live version, no write"
    );
    // In force at T1 and T2 (T1 < T2 ≤ the latest observation): the
    // version in force answers, and the live one is not stored.
    assert_eq!(
        store
            .resolve(&[request(&a, T1, Some(version("a4", "A4")))])
            .await,
        [None],
        "before any observation: recorded at T1"
    );
    assert_eq!(
        store
            .resolve(&[
                request(&a, T1, Some(version("a5", "A5"))),
                request(&a, "2026-01-15T00:00:00Z", Some(version("a6", "A6"))),
            ])
            .await,
        [Some("a4".to_owned()), Some("a4".to_owned())]
    );
    assert_eq!(store.versions(&a).await, ids(&["a2", "a4"]));
    // Past the latest observation: the live version is recorded there.
    assert_eq!(
        store
            .resolve(&[request(&a, T3, Some(version("a7", "A7")))])
            .await,
        [None]
    );
    assert_eq!(store.selected(&a, T3).await.as_deref(), Some("a7"));
    let stored = store
        .0
        .resolve(&[request(&a, T2, Some(version("a2", "A2")))])
        .await
        .unwrap_or_else(|err| panic!("resolve: {err:?}"));
    assert_eq!(
        stored
            .into_iter()
            .flatten()
            .map(|s| s.bytes.to_vec())
            .collect::<Vec<_>>(),
        [b"A2".to_vec()],
        "the version in force comes with its bytes"
    );
}

pub async fn get_answers_the_requested_versions(maker: &dyn StoreMaker) {
    let store = Subject::new(maker, 1024, 1024, 16).await;
    let k = key("dev", "o");
    store.insert(&k, "v2", "two").await;
    store.insert(&k, "v1", "").await;
    let found = store
        .0
        .get(&k, &ids(&["v1", "v3", "v2"]))
        .await
        .unwrap_or_else(|err| panic!("get: {err:?}"));
    let requested: Vec<Option<Vec<u8>>> = found
        .requested
        .iter()
        .map(|bytes| bytes.as_ref().map(|b| b.to_vec()))
        .collect();
    assert_eq!(requested, [Some(Vec::new()), None, Some(b"two".to_vec())]);
    assert_eq!(found.version_ids, ids(&["v1", "v2"]));
    let listed = store
        .0
        .record(&k, Some(T1), &version("v0", "zero"))
        .await
        .unwrap_or_else(|err| panic!("record: {err:?}"));
    assert_eq!(listed, ids(&["v0", "v1", "v2"]));
    assert_eq!(store.selected(&k, T1).await.as_deref(), Some("v0"));
}

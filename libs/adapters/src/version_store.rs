//! Object versions behind `as_of_time` (gateway spec §5.1, decision 5).
//!
//! A store holds version bytes per object and, per object, which version was
//! observed at which `as_of_time`. Operators consult it before reading the
//! live source, so a session at an earlier `as_of_time` keeps seeing what was
//! observed then. [`MemoryVersionStore`] is the in-process implementation;
//! the gateway's default is a store in the ledger database, shared by every
//! replica and surviving restarts, behind the same trait.
//!
//! Rules (decisions 1 and 5):
//! - Keys are per principal: [`VersionKey`] carries `tenant_id` and
//!   `principal_id`, so `list_versions` never shows versions another
//!   principal observed.
//! - The first observation at an `as_of_time` wins: a later read of the live
//!   source at the same `as_of_time` (e.g. `list_versions` after the file
//!   changed) never rewrites history.
//! - The version in force at t is the one observed at the greatest observed
//!   time ≤ t; there is none when t is later (string order) than the latest
//!   observation, when nothing was observed at or before t, or when that
//!   version's bytes were evicted: an older cached version was not current
//!   at t, so it is never a fallback.
//! - Empty blobs are cached (accounted as one byte), so as_of applies to empty
//!   files too.
//! - The byte cap is per principal (tenant and principal id): a principal
//!   over its cap evicts only its own oldest blobs, so one principal filling
//!   the store never evicts another's history. A second, store-wide cap bounds
//!   memory across principals; over it, the principal holding the most bytes
//!   gives up its oldest blob, so each keeps at least a fair share.
//! - Storing a version is skipped when caching is off, the blob exceeds the
//!   byte cap, or the pair is already stored; it may evict: first the
//!   object's lexicographically smallest other versions while it has too
//!   many, then the oldest blobs while over the byte cap. Observations are
//!   kept only for objects with stored blobs.
//!
//! Each operation answers a whole operator call (a batch of rows, both
//! sides of a diff), so a store across the network costs one round trip
//! per call, not per row.

mod memory;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pecr_errors::PecrError;

use crate::scope::SessionScope;

pub use memory::MemoryVersionStore;

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

/// A version read from the live source, offered to the store.
pub type NewVersion = StoredVersion;

/// One item of [`VersionStore::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    pub key: VersionKey,
    pub as_of_time: String,
    /// The live version: stored and observed at `as_of_time` when no
    /// version is in force there.
    pub current: Option<NewVersion>,
}

/// What [`VersionStore::get`] found for one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectVersions {
    /// The bytes of each requested version id, in request order.
    pub requested: Vec<Option<Arc<Vec<u8>>>>,
    /// Every stored version id of the object, sorted.
    pub version_ids: Vec<String>,
}

/// Versions of objects and the `as_of_time`s they were observed at.
pub trait VersionStore: Send + Sync {
    /// For each request in order: the version in force at its `as_of_time`.
    /// When none is and the request offers its current version, that
    /// version is stored and observed at `as_of_time` (the first observation
    /// at a time wins) and the request answers None: the caller uses the
    /// version it offered.
    fn resolve<'a>(
        &'a self,
        requests: &'a [ResolveRequest],
    ) -> StoreFuture<'a, Vec<Option<StoredVersion>>>;

    /// Stores `version` of `key`, observes it at `as_of_time` when given,
    /// and returns every stored version id of `key`, sorted.
    fn record<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: Option<&'a str>,
        version: &'a NewVersion,
    ) -> StoreFuture<'a, Vec<String>>;

    /// The stored bytes of `version_ids` of `key`, and all its stored ids.
    fn get<'a>(
        &'a self,
        key: &'a VersionKey,
        version_ids: &'a [String],
    ) -> StoreFuture<'a, ObjectVersions>;

    /// The version in force at `as_of_time` (see [`VersionStore::resolve`]).
    fn select<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: &'a str,
    ) -> StoreFuture<'a, Option<StoredVersion>> {
        Box::pin(async move {
            let request = [ResolveRequest {
                key: key.clone(),
                as_of_time: as_of_time.to_owned(),
                current: None,
            }];
            Ok(self.resolve(&request).await?.pop().flatten())
        })
    }

    /// Every stored version id of `key`, sorted.
    fn versions<'a>(&'a self, key: &'a VersionKey) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { Ok(self.get(key, &[]).await?.version_ids) })
    }
}

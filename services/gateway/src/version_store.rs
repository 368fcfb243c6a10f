//! The version store behind `as_of_time` in the ledger database, through
//! ledger-writer: every gateway replica answers `list_versions`,
//! `fetch_span`, `diff` and `fetch_rows` at an `as_of_time` from the same
//! history. One RPC per store operation, and each operation covers a whole
//! operator call (see `pecr_adapters::VersionStore`). The caps travel with
//! every request, so they keep the meaning of the gateway's settings and
//! ledger-writer needs none of its own.

use std::sync::Arc;

use pecr_adapters::{
    NewVersion, ObjectVersions, ResolveRequest, StoreFuture, StoredVersion, VersionKey,
    VersionStore,
};
use pecr_errors::PecrError;
use pecr_proto::v1;

use crate::ledger::Ledger;

/// Largest blob sent to ledger-writer: above it a version is observed but
/// not stored, so a request stays well inside gRPC's 4 MiB message limit.
pub const MAX_SENT_BYTES: u64 = 3 * 1024 * 1024;

/// A store's caps, as the gateway's settings give them.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_bytes: u64,
    pub max_total_bytes: u64,
    pub max_versions_per_object: u32,
}

/// One named store (`files` or `rows`) in the ledger database.
pub struct LedgerVersionStore {
    ledger: Ledger,
    store: String,
    caps: Caps,
}

impl LedgerVersionStore {
    pub fn new(ledger: Ledger, store: &str, caps: Caps) -> Self {
        Self {
            ledger,
            store: store.to_owned(),
            caps,
        }
    }

    fn owner(&self, tenant_id: &str, principal_id: &str) -> v1::VersionOwner {
        // The ledger keeps byte counts as signed 64-bit integers.
        let signed = |value: u64| value.min(i64::MAX as u64);
        v1::VersionOwner {
            store: self.store.clone(),
            tenant_id: tenant_id.to_owned(),
            principal_id: principal_id.to_owned(),
            max_bytes: signed(self.caps.max_bytes),
            max_total_bytes: signed(self.caps.max_total_bytes),
            max_versions_per_object: self.caps.max_versions_per_object,
        }
    }

    /// The version as sent: its bytes only when the store could keep them.
    fn offered(&self, version: &NewVersion) -> v1::NewVersion {
        let charge = (version.bytes.len() as u64).max(1);
        let too_large = charge > self.caps.max_bytes.min(MAX_SENT_BYTES);
        v1::NewVersion {
            version_id: version.version_id.clone(),
            content: if too_large {
                Vec::new()
            } else {
                version.bytes.to_vec()
            },
            too_large,
        }
    }

    /// One ResolveVersions call for requests of one owner.
    async fn resolve_owned(
        &self,
        requests: &[&ResolveRequest],
    ) -> Result<Vec<Option<StoredVersion>>, PecrError> {
        let Some(first) = requests.first() else {
            return Ok(Vec::new());
        };
        let request = v1::ResolveVersionsRequest {
            owner: Some(self.owner(&first.key.tenant_id, &first.key.principal_id)),
            items: requests
                .iter()
                .map(|request| v1::ResolveVersionsItem {
                    object_id: request.key.object_id.clone(),
                    as_of_time: request.as_of_time.clone(),
                    current: request.current.as_ref().map(|c| self.offered(c)),
                })
                .collect(),
        };
        let answer = self.ledger.resolve_versions(request).await?;
        if answer.versions.len() != requests.len() {
            tracing::warn!("ledger-writer answered ResolveVersions with a wrong item count");
            return Err(PecrError::ledger_unavailable());
        }
        Ok(answer
            .versions
            .into_iter()
            .zip(requests)
            .map(|(found, request)| {
                if found.version_id.is_empty() {
                    return None;
                }
                let bytes = match (&request.current, found.current) {
                    (Some(current), true) => Arc::clone(&current.bytes),
                    _ => Arc::new(found.content),
                };
                Some(StoredVersion {
                    version_id: found.version_id,
                    bytes,
                })
            })
            .collect())
    }
}

impl VersionStore for LedgerVersionStore {
    fn resolve<'a>(
        &'a self,
        requests: &'a [ResolveRequest],
    ) -> StoreFuture<'a, Vec<Option<StoredVersion>>> {
        Box::pin(async move {
            // An operator call's requests share one owner: one call. Mixed
            // owners (never from an operator) go one owner at a time.
            let mut answers: Vec<Option<StoredVersion>> = vec![None; requests.len()];
            let mut done = vec![false; requests.len()];
            for start in 0..requests.len() {
                if done[start] {
                    continue;
                }
                let owner = (
                    &requests[start].key.tenant_id,
                    &requests[start].key.principal_id,
                );
                let indices: Vec<usize> = (start..requests.len())
                    .filter(|&i| {
                        (&requests[i].key.tenant_id, &requests[i].key.principal_id) == owner
                    })
                    .collect();
                let group: Vec<&ResolveRequest> = indices.iter().map(|&i| &requests[i]).collect();
                for (index, found) in indices.iter().zip(self.resolve_owned(&group).await?) {
                    answers[*index] = found;
                    done[*index] = true;
                }
            }
            Ok(answers)
        })
    }

    fn record<'a>(
        &'a self,
        key: &'a VersionKey,
        as_of_time: Option<&'a str>,
        version: &'a NewVersion,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let request = v1::RecordVersionRequest {
                owner: Some(self.owner(&key.tenant_id, &key.principal_id)),
                object_id: key.object_id.clone(),
                as_of_time: as_of_time.map(str::to_owned),
                version: Some(self.offered(version)),
            };
            Ok(self.ledger.record_version(request).await?.version_ids)
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a VersionKey,
        version_ids: &'a [String],
    ) -> StoreFuture<'a, ObjectVersions> {
        Box::pin(async move {
            let request = v1::GetVersionsRequest {
                owner: Some(self.owner(&key.tenant_id, &key.principal_id)),
                object_id: key.object_id.clone(),
                version_ids: version_ids.to_vec(),
            };
            let answer = self.ledger.get_versions(request).await?;
            if answer.versions.len() != version_ids.len() {
                tracing::warn!("ledger-writer answered GetVersions with a wrong item count");
                return Err(PecrError::ledger_unavailable());
            }
            Ok(ObjectVersions {
                requested: answer
                    .versions
                    .into_iter()
                    .map(|found| found.found.then(|| Arc::new(found.content)))
                    .collect(),
                version_ids: answer.version_ids,
            })
        })
    }
}

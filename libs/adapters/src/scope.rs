//! What an operator needs to know about the calling session.

use std::collections::BTreeSet;

/// The session an operator runs in. Every emitted unit carries its
/// `as_of_time`, `policy_snapshot_id` and `policy_snapshot_hash`; version
/// stores are partitioned by `tenant_id` and `principal_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionScope {
    pub tenant_id: String,
    pub principal_id: String,
    pub as_of_time: String,
    pub policy_snapshot_id: String,
    pub policy_snapshot_hash: String,
    /// Ids emitted so far in the session (`redact` accepts only these).
    pub emitted_evidence_ids: BTreeSet<String>,
}

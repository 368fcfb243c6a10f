//! `list_versions` (gateway spec §5.3): the cached versions of a file plus
//! the current one. Emits nothing. The current version is recorded at the
//! session's `as_of_time` only if that time has no observation yet
//! (the first observation at a time wins; see the version store).

use pecr_contracts::sha256_hex;
use pecr_errors::PecrError;
use serde_json::{Value, json};

use super::live_file;
use crate::params::required_str;
use crate::scope::SessionScope;
use crate::version_store::VersionKey;
use crate::{AdaptersInner, OperatorOutput};

pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
) -> Result<OperatorOutput, PecrError> {
    let object_id = required_str(params, "object_id")?;
    let key = VersionKey::new(scope, object_id);
    let current = live_file(adapters, &key).await?;
    let mut versions = adapters
        .fs_versions
        .record(&key, Some(&scope.as_of_time), &current)
        .await?;
    if !versions.contains(&current.version_id) {
        versions.push(current.version_id);
    }
    versions.sort();
    versions.dedup();
    let metadata_hash = sha256_hex(object_id);
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|version_id| {
            json!({
                "version_id": version_id,
                "as_of_time": scope.as_of_time,
                "metadata_hash": metadata_hash,
            })
        })
        .collect();
    Ok(OperatorOutput {
        result: json!({ "versions": versions }),
        evidence: Vec::new(),
    })
}

//! `fetch_span` (gateway spec §5.4): a byte range of a file, as of the
//! session's `as_of_time`. Emits one unit; the result is the unit object.

use pecr_errors::PecrError;
use serde_json::Value;

use super::{corpus_unit, live_file, text_span, unit_json};
use crate::params::{optional_u64, required_str};
use crate::scope::SessionScope;
use crate::version_store::{ResolveRequest, VersionKey};
use crate::{AdaptersInner, OperatorOutput};

pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
) -> Result<OperatorOutput, PecrError> {
    let object_id = required_str(params, "object_id")?;
    // Confinement is checked on every call, also when the bytes come from
    // the version store.
    adapters.fs.resolve(object_id).await?;
    let key = VersionKey::new(scope, object_id);
    let store = adapters.fs_versions.as_ref();
    // The live file is read only when nothing is in force; offering it then
    // records it unless another replica recorded a version meanwhile.
    let stored = match store.select(&key, &scope.as_of_time).await? {
        Some(stored) => stored,
        None => {
            let live = live_file(adapters, &key).await?;
            let offer = [ResolveRequest {
                key: key.clone(),
                as_of_time: scope.as_of_time.clone(),
                current: Some(live.clone()),
            }];
            store.resolve(&offer).await?.pop().flatten().unwrap_or(live)
        }
    };
    let (version_id, bytes) = (stored.version_id, stored.bytes);

    let len = bytes.len() as u64;
    let start = optional_u64(params, "start_byte").unwrap_or(0);
    let end = optional_u64(params, "end_byte").unwrap_or(len);
    if end > len || start > end {
        return Err(PecrError::invalid_params("invalid span range"));
    }
    let range = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .ok_or_else(|| PecrError::invalid_params("invalid span range"))?;
    let slice = bytes
        .get(range.0..range.1)
        .ok_or_else(|| PecrError::invalid_params("invalid span range"))?;
    let text = std::str::from_utf8(slice)
        .map_err(|_| PecrError::invalid_params("span is not valid UTF-8"))?;

    let unit = corpus_unit(
        scope,
        object_id,
        version_id,
        text_span(&bytes, range.0, range.1),
        text.to_owned(),
        Vec::new(),
    );
    Ok(OperatorOutput {
        result: unit_json(&unit)?,
        evidence: vec![unit],
    })
}

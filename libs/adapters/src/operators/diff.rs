//! `diff` (gateway spec §5.5): a unified diff between two versions of a
//! file. Emits one unit; the result is a one-element array.

use std::sync::Arc;

use pecr_contracts::hashing::TransformStep;
use pecr_contracts::{canonical_text, is_sha256_hex};
use pecr_errors::PecrError;
use serde_json::{Value, json};
use similar::TextDiff;

use super::{corpus_unit, live_file, text_span, units_json};
use crate::errors::{not_found, task_failed};
use crate::params::required_str;
use crate::scope::SessionScope;
use crate::version_store::VersionKey;
use crate::{AdaptersInner, OperatorOutput};

/// Lines of context around each hunk.
const CONTEXT_LINES: usize = 3;

/// The canonicalised unified diff (Myers, `similar` 2.7) of two texts, with
/// headers `--- a/{object_id}@{v1}` / `+++ b/{object_id}@{v2}`. Identical
/// texts give an empty patch with no headers.
pub(crate) fn unified_patch(object_id: &str, v1: &str, v2: &str, old: &str, new: &str) -> String {
    let old = canonical_text(old);
    let new = canonical_text(new);
    let patch = TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(
            &format!("a/{object_id}@{v1}"),
            &format!("b/{object_id}@{v2}"),
        )
        .to_string();
    canonical_text(&patch)
}

/// The bytes of `v1` and `v2`: stored, else the live file if it is that
/// version (then stored, not observed); otherwise 404 "requested version
/// not found".
async fn version_bytes(
    adapters: &AdaptersInner,
    key: &VersionKey,
    v1: &str,
    v2: &str,
) -> Result<(Arc<Vec<u8>>, Arc<Vec<u8>>), PecrError> {
    let wanted = [v1.to_owned(), v2.to_owned()];
    let found = adapters.fs_versions.get(key, &wanted).await?;
    let mut found = found.requested.into_iter();
    let (old, new) = (found.next().flatten(), found.next().flatten());
    if let (Some(old), Some(new)) = (&old, &new) {
        return Ok((Arc::clone(old), Arc::clone(new)));
    }
    let live = live_file(adapters, key).await?;
    let from_live = |stored: Option<Arc<Vec<u8>>>, id: &str| match stored {
        Some(bytes) => Ok(bytes),
        None if live.version_id == id => Ok(Arc::clone(&live.bytes)),
        None => Err(not_found("requested version not found")),
    };
    // As when each side is looked up in turn: v1 first, and the live file
    // is stored once it answered a side.
    let old_from_live = old.is_none();
    let old = from_live(old, v1)?;
    let new = from_live(new, v2);
    if old_from_live || new.is_ok() {
        adapters.fs_versions.record(key, None, &live).await?;
    }
    Ok((old, new?))
}

pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
) -> Result<OperatorOutput, PecrError> {
    let object_id = required_str(params, "object_id")?;
    let v1 = required_str(params, "v1")?;
    let v2 = required_str(params, "v2")?;
    if !is_sha256_hex(v1) || !is_sha256_hex(v2) {
        return Err(PecrError::invalid_params(
            "v1 and v2 must be sha256 hex version ids",
        ));
    }
    adapters.fs.resolve(object_id).await?;
    let key = VersionKey::new(scope, object_id);
    let (old, new) = version_bytes(adapters, &key, v1, v2).await?;
    let old = String::from_utf8(old.to_vec())
        .map_err(|_| PecrError::invalid_params("version v1 is not valid UTF-8"))?;
    let new = String::from_utf8(new.to_vec())
        .map_err(|_| PecrError::invalid_params("version v2 is not valid UTF-8"))?;

    let (id, a, b) = (object_id.to_owned(), v1.to_owned(), v2.to_owned());
    let patch = tokio::task::spawn_blocking(move || unified_patch(&id, &a, &b, &old, &new))
        .await
        .map_err(|_| task_failed())?;
    let cap = adapters.config.fs_diff_max_bytes;
    if cap != 0 && patch.len() as u64 > cap {
        return Err(PecrError::invalid_params("diff exceeds size cap"));
    }

    let step = TransformStep::new(
        "diff_unified_v1",
        json!({ "object_id": object_id, "v1": v1, "v2": v2 }),
    );
    let span = text_span(patch.as_bytes(), 0, patch.len());
    let unit = corpus_unit(scope, object_id, v2.to_owned(), span, patch, vec![step]);
    Ok(OperatorOutput {
        result: units_json(std::slice::from_ref(&unit))?,
        evidence: vec![unit],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_format() {
        assert_eq!(unified_patch("o", "a", "b", "same\n", "same\n"), "");
        assert_eq!(
            unified_patch("o", "x", "y", "", "new\n"),
            "--- a/o@x\n+++ b/o@y\n@@ -0,0 +1 @@\n+new\n"
        );
        assert_eq!(
            unified_patch("p/f.txt", "1", "2", "a\nb\n", "a\nc"),
            "--- a/p/f.txt@1\n+++ b/p/f.txt@2\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file\n"
        );
        // CRLF inputs are canonicalised before diffing.
        assert_eq!(unified_patch("o", "a", "b", "x\r\n", "x\n"), "");
    }

    #[test]
    fn context_is_three_lines() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 10\n", "line ten\n");
        let patch = unified_patch("o", "a", "b", &old, &new);
        assert!(patch.contains(
            "@@ -7,7 +7,7 @@\n line 7\n line 8\n line 9\n-line 10\n+line ten\n line 11\n"
        ));
    }
}

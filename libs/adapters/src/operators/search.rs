//! `search` (gateway spec §5.2): case-sensitive substring search over the
//! corpus. Returns refs only: no evidence, no version store, no as_of_time,
//! no redaction. The gateway filters the refs per object through policy
//! (decision 1), so nothing is filtered here.
//!
//! Every ref names the file its path resolves to, never a link: a link and
//! its target are one ref, and the gateway judges it exactly as a
//! `fetch_span` of that file would be judged.

use std::collections::HashSet;

use pecr_errors::PecrError;
use serde_json::{Value, json};

use super::{corpus_unit, text_span};
use crate::fs_corpus::SOURCE_SYSTEM;
use crate::params::{optional_u64, required_str};
use crate::scope::SessionScope;
use crate::{AdaptersInner, OperatorOutput};

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;

/// `limit`: default 10, capped at 50, 0 = unlimited; a non-integer is 10.
fn limit(params: &Value) -> usize {
    match optional_u64(params, "limit") {
        None => DEFAULT_LIMIT,
        Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    }
}

pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
) -> Result<OperatorOutput, PecrError> {
    let query = required_str(params, "query")?.to_owned();
    let limit = limit(params);
    let scope = scope.clone();
    let refs = adapters
        .fs
        .scan_index(move |entries| {
            let mut refs = Vec::new();
            let mut seen = HashSet::new();
            for entry in entries {
                if refs.len() >= limit {
                    break;
                }
                if !seen.insert(entry.canonical_id.as_str()) {
                    continue;
                }
                let bytes = std::fs::read(&entry.path)?;
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                if !text.contains(query.as_str()) {
                    continue;
                }
                // The id a whole-file fetch_span would get.
                let version_id = pecr_contracts::sha256_hex(&bytes);
                let unit = corpus_unit(
                    &scope,
                    &entry.canonical_id,
                    version_id.clone(),
                    text_span(&bytes, 0, bytes.len()),
                    text.to_owned(),
                    Vec::new(),
                );
                refs.push(json!({
                    "evidence_unit_id": unit.evidence_unit_id,
                    "source_system": SOURCE_SYSTEM,
                    "object_id": entry.canonical_id,
                    "version_id": version_id,
                }));
            }
            Ok(refs)
        })
        .await?;
    Ok(OperatorOutput {
        result: json!({ "refs": refs }),
        evidence: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(&json!({})), 10);
        assert_eq!(limit(&json!({"limit": 5})), 5);
        assert_eq!(limit(&json!({"limit": 500})), 50);
        assert_eq!(limit(&json!({"limit": 0})), usize::MAX);
        assert_eq!(limit(&json!({"limit": -1})), 10);
        assert_eq!(limit(&json!({"limit": 2.5})), 10);
        assert_eq!(limit(&json!({"limit": "5"})), 10);
    }
}

//! `search` (gateway spec §5.2): case-sensitive substring search over the
//! corpus. Returns refs only: no evidence, no version store, no as_of_time,
//! no redaction. The gateway filters the refs per object through policy
//! (decision 1), so nothing is filtered here.
//!
//! Every ref names the file its path resolves to, never a link: a link and
//! its target are one ref, and the gateway judges it exactly as a
//! `fetch_span` of that file would be judged.
//!
//! The files come from the corpus's search index: while a watch keeps it
//! fresh it holds each file's text and hashes, and a call reads no file.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io;

use pecr_contracts::hashing::{EvidenceIdentity, evidence_unit_id};
use pecr_errors::PecrError;
use serde_json::{Value, json};

use crate::corpus_index::{FileContent, IndexEntry, IndexedText};
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
                if let Some(text) = matching_text(entry, &query)? {
                    refs.push(search_ref(&scope, &entry.canonical_id, &text));
                }
            }
            Ok(refs)
        })
        .await?;
    Ok(OperatorOutput {
        result: json!({ "refs": refs }),
        evidence: Vec::new(),
    })
}

/// The entry's text and hashes when it is UTF-8 and contains `query`: from
/// the index when it holds them, else read now (and hashed only on a match).
fn matching_text<'a>(
    entry: &'a IndexEntry,
    query: &str,
) -> Result<Option<Cow<'a, IndexedText>>, io::Error> {
    match &entry.content {
        FileContent::Text(text) => Ok(text
            .text
            .contains(query)
            .then_some(Cow::Borrowed(text.as_ref()))),
        FileContent::NotText => Ok(None),
        FileContent::Unread => {
            let Ok(text) = String::from_utf8(std::fs::read(&entry.path)?) else {
                return Ok(None);
            };
            Ok(text
                .contains(query)
                .then(|| Cow::Owned(IndexedText::new(text))))
        }
    }
}

/// A ref to the whole file. Its `evidence_unit_id` is the id of the unit
/// a whole-file `fetch_span` of the same bytes builds (`corpus_unit`),
/// computed from the index's hashes instead of hashing the text again.
fn search_ref(scope: &SessionScope, object_id: &str, text: &IndexedText) -> Value {
    let evidence_unit_id = evidence_unit_id(&EvidenceIdentity {
        source_system: SOURCE_SYSTEM,
        object_id,
        version_id: &text.version_id,
        span_or_row_spec: &text.whole_file,
        content_hash: &text.content_hash,
        as_of_time: &scope.as_of_time,
        policy_snapshot_hash: &scope.policy_snapshot_hash,
        transform_chain: &[],
    });
    json!({
        "evidence_unit_id": evidence_unit_id,
        "source_system": SOURCE_SYSTEM,
        "object_id": object_id,
        "version_id": text.version_id,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::corpus_unit;
    use super::*;

    #[test]
    fn ref_ids_are_whole_file_unit_ids() {
        let scope = SessionScope {
            tenant_id: "local".to_owned(),
            principal_id: "dev".to_owned(),
            as_of_time: "2026-01-01T00:00:00Z".to_owned(),
            policy_snapshot_id: "ps".to_owned(),
            policy_snapshot_hash: "b".repeat(64),
            emitted_evidence_ids: BTreeSet::new(),
        };
        // CRLF, a lone CR and a decomposed é: the content hash is of the
        // canonical text, the version id of the bytes.
        for text in ["plain\n", "", "a\r\nb\rc\n", "cafe\u{301}\n"] {
            let indexed = IndexedText::new(text.to_owned());
            let unit = corpus_unit(
                &scope,
                "public/x.txt",
                pecr_contracts::sha256_hex(text),
                super::super::text_span(text.as_bytes(), 0, text.len()),
                text.to_owned(),
                Vec::new(),
            );
            let reference = search_ref(&scope, "public/x.txt", &indexed);
            assert_eq!(
                reference["evidence_unit_id"], unit.evidence_unit_id,
                "{text:?}"
            );
            assert_eq!(reference["version_id"], unit.version_id, "{text:?}");
            assert_eq!(reference["object_id"], "public/x.txt");
            assert_eq!(reference["source_system"], SOURCE_SYSTEM);
        }
    }

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

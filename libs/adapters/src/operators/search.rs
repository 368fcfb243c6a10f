//! `search` (gateway spec §5.2; semantics in docs/decisions.md,
//! "Usefulness"): term-wise search over the corpus, ranked by BM25. Returns
//! refs only: no evidence, no version store, no as_of_time, no redaction.
//!
//! The query and every document are cut into terms
//! ([`pecr_contracts::terms`]: lower-cased words, stop words dropped,
//! plurals folded). `match: "all"` (the default) keeps the documents that
//! hold every term of the query; `"any"` those holding at least one. The
//! documents kept are ranked by BM25, best first, ties by object id.
//!
//! Policy comes first (decision 1): the gateway judges every document that
//! holds a query term ([`SearchCandidates::object_ids`]) and ranks only
//! those the caller may read ([`SearchCandidates::rank`]), so the
//! collection statistics (document count, frequencies, mean length), the
//! order and the `limit` never depend on a document the caller may not
//! read. [`Operator::Search`](crate::Operator) through `Adapters::run`
//! ranks every document (no policy at this layer).
//!
//! Every ref names the file its path resolves to, never a link: a link and
//! its target are one ref, and the gateway judges it exactly as a
//! `fetch_span` of that file would be judged.
//!
//! The files come from the corpus's search index: while a watch keeps it
//! fresh it holds each file's term counts and hashes, and a call reads no
//! file.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use pecr_contracts::hashing::{EvidenceIdentity, evidence_unit_id};
use pecr_errors::PecrError;
use serde_json::{Value, json};

use crate::corpus_index::{FileContent, IndexEntry, IndexedText, TermCounts};
use crate::fs_corpus::SOURCE_SYSTEM;
use crate::params::{member, optional_u64, required_str};
use crate::scope::SessionScope;
use crate::{AdaptersInner, OperatorOutput};

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;

/// BM25's term-frequency saturation: the value Lucene and Elasticsearch
/// default to; a repeated term adds less and less.
const K1: f64 = 1.2;
/// BM25's length normalisation (0 none, 1 full): the usual default, so a
/// long file is not favoured just for holding more words.
const B: f64 = 0.75;

/// `limit`: default 10, capped at 50, 0 = unlimited; a non-integer is 10.
fn limit(params: &Value) -> usize {
    match optional_u64(params, "limit") {
        None => DEFAULT_LIMIT,
        Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    }
}

/// Which documents a query matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matching {
    /// Every term of the query.
    All,
    /// At least one term.
    Any,
}

/// `match`: `"all"` (default, also when absent or null) or `"any"`.
fn matching(params: &Value) -> Result<Matching, PecrError> {
    match member(params, "match") {
        None => Ok(Matching::All),
        Some(value) => match value.as_str().map(str::trim) {
            Some("all") => Ok(Matching::All),
            Some("any") => Ok(Matching::Any),
            _ => Err(PecrError::invalid_params(
                "params.match must be \"all\" or \"any\"",
            )),
        },
    }
}

/// A document holding at least one query term.
#[derive(Debug, Clone)]
struct Candidate {
    /// The canonical path: the id policy judges and the ref names.
    object_id: String,
    text: Arc<IndexedText>,
    /// How often each query term occurs, in query-term order.
    frequencies: Vec<u32>,
}

impl Candidate {
    /// `text` as a candidate for `terms`: None when it holds none of them.
    fn new(object_id: &str, text: Arc<IndexedText>, terms: &[String]) -> Option<Self> {
        let frequencies: Vec<u32> = terms.iter().map(|term| text.count(term)).collect();
        frequencies.iter().any(|count| *count > 0).then(|| Self {
            object_id: object_id.to_owned(),
            text,
            frequencies,
        })
    }

    fn matches(&self, matching: Matching) -> bool {
        match matching {
            Matching::All => self.frequencies.iter().all(|count| *count > 0),
            Matching::Any => self.frequencies.iter().any(|count| *count > 0),
        }
    }
}

/// The documents a search may return, before policy says which the caller
/// may read.
#[derive(Debug, Clone)]
pub struct SearchCandidates {
    terms: Vec<String>,
    matching: Matching,
    limit: usize,
    candidates: Vec<Candidate>,
}

impl SearchCandidates {
    /// The object ids to judge, each once, in path order.
    pub fn object_ids(&self) -> impl Iterator<Item = &str> {
        self.candidates
            .iter()
            .map(|candidate| candidate.object_id.as_str())
    }

    /// `{"refs": [...]}`: the readable documents that match, best first,
    /// at most `limit`. Only readable documents count in the statistics.
    pub fn rank(&self, scope: &SessionScope, readable: impl Fn(&str) -> bool) -> Value {
        let collection: Vec<&Candidate> = self
            .candidates
            .iter()
            .filter(|candidate| readable(&candidate.object_id))
            .collect();
        let idf = self.idf(&collection);
        let mean_length = mean_length(&collection);
        let mut scored: Vec<(f64, &Candidate)> = collection
            .iter()
            .filter(|candidate| candidate.matches(self.matching))
            .map(|candidate| (bm25(candidate, &idf, mean_length), *candidate))
            .collect();
        scored.sort_by(|(a, left), (b, right)| {
            b.partial_cmp(a)
                .unwrap_or(Ordering::Equal)
                .then_with(|| left.object_id.cmp(&right.object_id))
        });
        let refs: Vec<Value> = scored
            .into_iter()
            .take(self.limit)
            .map(|(_, candidate)| search_ref(scope, &candidate.object_id, &candidate.text))
            .collect();
        json!({ "refs": refs })
    }

    /// Each query term's inverse document frequency over `collection`, in
    /// BM25's non-negative form `ln(1 + (N - n + 0.5) / (n + 0.5))`.
    fn idf(&self, collection: &[&Candidate]) -> Vec<f64> {
        let documents = collection.len() as f64;
        (0..self.terms.len())
            .map(|index| {
                let holding = collection
                    .iter()
                    .filter(|candidate| candidate.frequencies[index] > 0)
                    .count() as f64;
                (1.0 + (documents - holding + 0.5) / (holding + 0.5)).ln()
            })
            .collect()
    }
}

fn mean_length(collection: &[&Candidate]) -> f64 {
    if collection.is_empty() {
        return 1.0;
    }
    let total: u64 = collection
        .iter()
        .map(|candidate| u64::from(candidate.text.terms.length))
        .sum();
    (total as f64 / collection.len() as f64).max(1.0)
}

/// The BM25 score of one document: per query term,
/// `idf · f·(k1+1) / (f + k1·(1 − b + b·len/mean))`.
fn bm25(candidate: &Candidate, idf: &[f64], mean_length: f64) -> f64 {
    let length = f64::from(candidate.text.terms.length);
    let norm = K1 * (1.0 - B + B * length / mean_length);
    candidate
        .frequencies
        .iter()
        .zip(idf)
        .map(|(count, idf)| {
            let count = f64::from(*count);
            idf * count * (K1 + 1.0) / (count + norm)
        })
        .sum()
}

/// The documents holding a term of `params.query` (each file once).
pub(crate) async fn candidates(
    adapters: &AdaptersInner,
    params: &Value,
) -> Result<SearchCandidates, PecrError> {
    let query = required_str(params, "query")?;
    let matching = matching(params)?;
    let limit = limit(params);
    let terms = query_terms(query);
    if terms.is_empty() {
        return Ok(SearchCandidates {
            terms,
            matching,
            limit,
            candidates: Vec::new(),
        });
    }
    let wanted = terms.clone();
    let candidates = adapters
        .fs
        .scan_index(move |entries| {
            let mut found = Vec::new();
            let mut seen = HashSet::new();
            for entry in entries {
                if !seen.insert(entry.canonical_id.as_str()) {
                    continue;
                }
                let Some(text) = indexed_text(entry, &wanted)? else {
                    continue;
                };
                found.extend(Candidate::new(&entry.canonical_id, text, &wanted));
            }
            Ok(found)
        })
        .await?;
    Ok(SearchCandidates {
        terms,
        matching,
        limit,
        candidates,
    })
}

/// The distinct terms of `query`, in query order.
fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for term in pecr_contracts::terms::terms(query) {
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// `search` without policy: every matching document ranks.
pub(super) async fn run(
    adapters: &AdaptersInner,
    params: &Value,
    scope: &SessionScope,
) -> Result<OperatorOutput, PecrError> {
    let candidates = candidates(adapters, params).await?;
    Ok(OperatorOutput {
        result: candidates.rank(scope, |_| true),
        evidence: Vec::new(),
    })
}

/// The entry's text, terms and hashes when it is UTF-8: from the index when
/// it holds them, else read now. A file read now is hashed only when it
/// holds a `wanted` term (else None), as an unwatched corpus is read whole
/// on every search.
fn indexed_text(
    entry: &IndexEntry,
    wanted: &[String],
) -> Result<Option<Arc<IndexedText>>, io::Error> {
    match &entry.content {
        FileContent::Text(text) => Ok(Some(Arc::clone(text))),
        FileContent::NotText => Ok(None),
        FileContent::Unread => {
            let Ok(text) = String::from_utf8(std::fs::read(&entry.path)?) else {
                return Ok(None);
            };
            let terms = TermCounts::of(&text);
            if wanted.iter().all(|term| terms.count(term) == 0) {
                return Ok(None);
            }
            Ok(Some(Arc::new(IndexedText::with_terms(&text, terms))))
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

    fn scope() -> SessionScope {
        SessionScope {
            tenant_id: "local".to_owned(),
            principal_id: "dev".to_owned(),
            as_of_time: "2026-01-01T00:00:00Z".to_owned(),
            policy_snapshot_id: "ps".to_owned(),
            policy_snapshot_hash: "b".repeat(64),
            emitted_evidence_ids: BTreeSet::new(),
        }
    }

    #[test]
    fn ref_ids_are_whole_file_unit_ids() {
        let scope = scope();
        // CRLF, a lone CR and a decomposed é: the content hash is of the
        // canonical text, the version id of the bytes.
        for text in ["plain\n", "", "a\r\nb\rc\n", "cafe\u{301}\n"] {
            let indexed = IndexedText::new(text);
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

    #[test]
    fn match_is_all_unless_any() {
        assert_eq!(matching(&json!({})), Ok(Matching::All));
        assert_eq!(matching(&json!({"match": null})), Ok(Matching::All));
        assert_eq!(matching(&json!({"match": " any "})), Ok(Matching::Any));
        assert_eq!(matching(&json!({"match": "all"})), Ok(Matching::All));
        for bad in [json!("ANY"), json!(1), json!(["any"])] {
            let error = matching(&json!({ "match": bad })).expect_err("refused");
            assert_eq!(error.message, "params.match must be \"all\" or \"any\"");
        }
    }

    /// Candidates over in-memory texts, as `candidates` builds them.
    fn search(query: &str, matching: Matching, docs: &[(&str, &str)]) -> SearchCandidates {
        let terms = query_terms(query);
        let candidates = docs
            .iter()
            .filter_map(|(object_id, text)| {
                Candidate::new(object_id, Arc::new(IndexedText::new(text)), &terms)
            })
            .collect();
        SearchCandidates {
            terms,
            matching,
            limit: usize::MAX,
            candidates,
        }
    }

    fn ids(result: &Value) -> Vec<&str> {
        result["refs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["object_id"].as_str())
            .collect()
    }

    const DOCS: [(&str, &str); 4] = [
        ("a.txt", "The canary string of a restricted file."),
        ("b.txt", "Canary canary canary: a string, a string."),
        (
            "c.txt",
            "A customer file with nothing else in it at all, none.",
        ),
        ("d.txt", "A string."),
    ];

    #[test]
    fn all_needs_every_term_and_any_one() {
        let all = search("canary strings", Matching::All, &DOCS);
        assert_eq!(ids(&all.rank(&scope(), |_| true)), ["b.txt", "a.txt"]);
        let any = search("canary strings", Matching::Any, &DOCS);
        assert_eq!(
            ids(&any.rank(&scope(), |_| true)),
            ["b.txt", "a.txt", "d.txt"]
        );
        // Case and plurals do not matter; a query of stop words finds nothing.
        let loud = search("CANARY STRING", Matching::All, &DOCS);
        assert_eq!(ids(&loud.rank(&scope(), |_| true)), ["b.txt", "a.txt"]);
        assert!(
            search("the of a", Matching::Any, &DOCS)
                .candidates
                .is_empty()
        );
    }

    #[test]
    fn bm25_prefers_rare_terms_repeats_and_short_files() {
        // "restricted" is rarer than "string": a.txt, holding both, first.
        let rare = search("restricted string", Matching::Any, &DOCS);
        assert_eq!(
            ids(&rare.rank(&scope(), |_| true)),
            ["a.txt", "d.txt", "b.txt"]
        );
        // Equal counts: the shorter file first; equal files: by object id.
        let file = search("file", Matching::Any, &DOCS);
        assert_eq!(ids(&file.rank(&scope(), |_| true)), ["a.txt", "c.txt"]);
        let twins = search(
            "twin",
            Matching::Any,
            &[("z.txt", "twin"), ("y.txt", "twin")],
        );
        assert_eq!(ids(&twins.rank(&scope(), |_| true)), ["y.txt", "z.txt"]);
    }

    #[test]
    fn unreadable_documents_neither_appear_nor_weigh() {
        let found = search("restricted string", Matching::Any, &DOCS);
        assert_eq!(
            found.object_ids().collect::<Vec<_>>(),
            ["a.txt", "b.txt", "d.txt"]
        );
        let hidden = |id: &str| id != "a.txt";
        // Without a.txt the result is exactly that of a corpus without it.
        let without: Vec<(&str, &str)> = DOCS.into_iter().filter(|(id, _)| hidden(id)).collect();
        let alone = search("restricted string", Matching::Any, &without);
        assert_eq!(found.rank(&scope(), hidden), alone.rank(&scope(), |_| true));
        assert_eq!(ids(&found.rank(&scope(), hidden)), ["d.txt", "b.txt"]);
    }

    #[test]
    fn the_limit_counts_readable_documents_only() {
        let mut found = search("string", Matching::All, &DOCS);
        found.limit = 1;
        assert_eq!(ids(&found.rank(&scope(), |_| true)), ["d.txt"]);
        // Without d.txt the mean length changes too: b.txt's repeats win.
        assert_eq!(ids(&found.rank(&scope(), |id| id != "d.txt")), ["b.txt"]);
    }
}

//! The seven operators (gateway spec §5.2–§5.9), one module each, and the
//! pieces they share.

mod aggregate;
mod diff;
mod fetch_rows;
mod fetch_span;
mod list_versions;
mod redact;
mod search;

pub use search::SearchCandidates;
pub(crate) use search::candidates as search_candidates;

use std::sync::Arc;

use pecr_contracts::evidence::{EvidenceContent, EvidenceParts, EvidenceUnit};
use pecr_contracts::hashing::TransformStep;
use pecr_errors::PecrError;
use serde_json::{Value, json};

use crate::errors::evidence_encoding_failed;
use crate::redaction::Redaction;
use crate::scope::SessionScope;
use crate::version_store::{NewVersion, VersionKey};
use crate::{AdaptersInner, Operator, OperatorOutput};

/// Runs one operator.
pub(crate) async fn run(
    adapters: &AdaptersInner,
    op: Operator,
    params: &Value,
    scope: &SessionScope,
    redaction: Option<&Redaction>,
) -> Result<OperatorOutput, PecrError> {
    match op {
        Operator::Search => search::run(adapters, params, scope).await,
        Operator::ListVersions => list_versions::run(adapters, params, scope).await,
        Operator::FetchSpan => fetch_span::run(adapters, params, scope).await,
        Operator::Diff => diff::run(adapters, params, scope).await,
        Operator::FetchRows => fetch_rows::run(adapters, params, scope, redaction).await,
        Operator::Aggregate => aggregate::run(adapters, params, scope, redaction).await,
        Operator::Redact => redact::run(params, scope, redaction),
    }
}

/// The wire JSON of a unit.
pub(crate) fn unit_json(unit: &EvidenceUnit) -> Result<Value, PecrError> {
    serde_json::to_value(unit).map_err(|_| evidence_encoding_failed())
}

/// The wire JSON of several units, as an array.
pub(crate) fn units_json(units: &[EvidenceUnit]) -> Result<Value, PecrError> {
    units
        .iter()
        .map(unit_json)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|byte| **byte == b'\n').count()
}

/// A `text_span` over `bytes[start..end]`.
pub(crate) fn text_span(bytes: &[u8], start: usize, end: usize) -> Value {
    let line_start = 1 + newlines(&bytes[..start.min(bytes.len())]);
    let line_end = line_start + newlines(bytes.get(start..end).unwrap_or_default());
    json!({
        "type": "text_span",
        "start_byte": start,
        "end_byte": end,
        "line_start": line_start,
        "line_end": line_end,
    })
}

/// A `text/plain` corpus unit of this session.
pub(crate) fn corpus_unit(
    scope: &SessionScope,
    object_id: &str,
    version_id: String,
    span_or_row_spec: Value,
    text: String,
    transform_chain: Vec<TransformStep>,
) -> EvidenceUnit {
    EvidenceUnit::new(EvidenceParts {
        source_system: crate::fs_corpus::SOURCE_SYSTEM.to_owned(),
        object_id: object_id.to_owned(),
        version_id,
        span_or_row_spec,
        content: EvidenceContent::Text(text),
        as_of_time: scope.as_of_time.clone(),
        policy_snapshot_id: scope.policy_snapshot_id.clone(),
        policy_snapshot_hash: scope.policy_snapshot_hash.clone(),
        transform_chain,
    })
}

/// The live file as a version: its bytes and their sha256.
pub(crate) async fn live_file(
    adapters: &AdaptersInner,
    key: &VersionKey,
) -> Result<NewVersion, PecrError> {
    let bytes = Arc::new(adapters.fs.read(&key.object_id).await?);
    Ok(NewVersion {
        version_id: pecr_contracts::sha256_hex(bytes.as_slice()),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_span_counts_lines() {
        let bytes = b"a\nb\nc";
        assert_eq!(
            text_span(bytes, 0, 5),
            json!({"type":"text_span","start_byte":0,"end_byte":5,"line_start":1,"line_end":3})
        );
        assert_eq!(
            text_span(bytes, 2, 4),
            json!({"type":"text_span","start_byte":2,"end_byte":4,"line_start":2,"line_end":3})
        );
        assert_eq!(
            text_span(b"", 0, 0),
            json!({"type":"text_span","start_byte":0,"end_byte":0,"line_start":1,"line_end":1})
        );
    }
}

//! Evidence units: every unit of a batch in one statement, first writer wins.

use std::collections::HashSet;

use deadpool_postgres::Transaction;
use pecr_contracts::canonical_json;
use tokio_postgres::Statement;

use super::column;
use super::plan::EvidenceRow;
use crate::validate::NewEvidence;

/// Insert-or-ignore by id; returns the ids that were new to the ledger.
pub(super) const INSERT_EVIDENCE: &str = "INSERT INTO pecr_evidence_units \
     (evidence_unit_id, trace_id, session_id, source_system, object_id, version_id, \
      span_or_row_spec_json, content_type, content_hash, as_of_time, retrieved_at, \
      policy_snapshot_id, policy_snapshot_hash, transform_chain_json, payload_json) \
     SELECT u.id, u.trace_id, u.session_id, u.source_system, u.object_id, u.version_id, \
            CAST(u.span AS jsonb), u.content_type, u.content_hash, CAST(u.as_of_time AS timestamptz), \
            CAST(u.retrieved_at AS timestamptz), u.snapshot_id, u.snapshot_hash, \
            CAST(u.chain AS jsonb), CAST(u.payload AS jsonb) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
                 $14::text[], $15::text[]) \
          AS u(id, trace_id, session_id, source_system, object_id, version_id, span, content_type, \
               content_hash, as_of_time, retrieved_at, snapshot_id, snapshot_hash, chain, payload) \
     ON CONFLICT (evidence_unit_id) DO NOTHING RETURNING evidence_unit_id";

/// Inserts the batch's units (the planner already dropped repeats) and
/// returns the ids the ledger did not hold yet.
pub(super) async fn insert_evidence(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[EvidenceRow<'_>],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let unit = |pick: fn(&NewEvidence) -> &str| column(rows, move |row| pick(row.unit));
    let json = |pick: fn(&NewEvidence) -> &serde_json::Value| {
        column(rows, move |row| canonical_json(pick(row.unit)))
    };
    let payloads = column(rows, |row| {
        row.unit
            .content
            .as_ref()
            .filter(|_| row.store_content)
            .map(canonical_json)
    });
    let rows = tx
        .query(
            statement,
            &[
                &unit(|u| &u.evidence_unit_id),
                &column(rows, |row| row.trace_id),
                &column(rows, |row| row.session_id),
                &unit(|u| &u.source_system),
                &unit(|u| &u.object_id),
                &unit(|u| &u.version_id),
                &json(|u| &u.span_or_row_spec),
                &unit(|u| &u.content_type),
                &unit(|u| &u.content_hash),
                &unit(|u| &u.as_of_time),
                &unit(|u| &u.retrieved_at),
                &unit(|u| &u.policy_snapshot_id),
                &unit(|u| &u.policy_snapshot_hash),
                &json(|u| &u.transform_chain),
                &payloads,
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

//! Finalize: the claim map and the session's terminal mode. The planner
//! (`plan.rs`) adds the events, the runtime flag and the replay, so all of
//! a finalize commits or none of it.

use deadpool_postgres::Transaction;
use pecr_contracts::canonical_json;
use tokio_postgres::Statement;

use super::column;
use super::plan::ClaimMapRow;

pub(super) const INSERT_CLAIM_MAPS: &str = "INSERT INTO pecr_claim_maps \
     (claim_map_id, trace_id, session_id, terminal_mode, coverage_threshold, coverage_observed, claim_map_json, \
      sealed_chain_head, sealed_chain_length) \
     SELECT c.id, c.trace_id, c.session_id, c.mode, c.threshold, c.observed, CAST(c.claim_map AS jsonb), \
            c.head, c.length \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::text[], \
                 $8::text[], $9::int8[]) \
          AS c(id, trace_id, session_id, mode, threshold, observed, claim_map, head, length)";

pub(super) const FINALIZE_SESSIONS: &str = "UPDATE pecr_sessions AS s \
     SET finalized_at = now(), terminal_mode = f.mode \
     FROM unnest($1::text[], $2::text[]) AS f(session_id, mode) WHERE s.session_id = f.session_id";

pub(super) async fn insert_claim_maps(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[ClaimMapRow<'_>],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    tx.execute(
        statement,
        &[
            &column(rows, |row| row.write.claim_map_id.as_str()),
            &column(rows, |row| row.trace_id.as_str()),
            &column(rows, |row| row.write.session_id.as_str()),
            &column(rows, |row| row.write.terminal_mode),
            &column(rows, |row| row.write.coverage_threshold),
            &column(rows, |row| row.write.coverage_observed),
            &column(rows, |row| canonical_json(&row.write.claim_map_json)),
            &column(rows, |row| row.sealed.head.as_str()),
            &column(rows, |row| row.sealed.length),
        ],
    )
    .await
}

/// Marks sessions finalized with their terminal mode.
pub(super) async fn finalize_sessions(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[(&str, &'static str)],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids = column(rows, |(id, _)| *id);
    let modes = column(rows, |(_, mode)| *mode);
    tx.execute(statement, &[&ids, &modes]).await
}

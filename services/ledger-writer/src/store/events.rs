//! Audit events: inserted with a verified payload hash, listed in time order.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use pecr_contracts::{canonical_json, hash_canonical_json};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::Value;
use tokio_postgres::{Row, Statement};

use super::plan::EventRow;
use super::{LedgerStore, column, db_error};
use crate::validate::{EventQuery, NewEvent};

/// All events of a batch in one statement, ids minted by the planner.
pub(super) const INSERT_EVENTS: &str = "INSERT INTO pecr_ledger_events \
     (event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload_json, payload_hash, \
      chain_seq, prev_chain_hash, chain_hash) \
     SELECT e.event_id, e.trace_id, e.session_id, e.event_type, e.principal_id, e.policy_snapshot_id, \
            CAST(e.payload AS jsonb), e.payload_hash, e.chain_seq, e.prev_chain_hash, e.chain_hash \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                 $9::int8[], $10::text[], $11::text[]) \
          AS e(event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload, payload_hash, \
               chain_seq, prev_chain_hash, chain_hash) \
     RETURNING event_id, payload_json::text";

/// Inserts the batch's events; the stored payloads come back for
/// [`check_stored_hashes`].
pub(super) async fn insert_events(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[EventRow<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let event = |pick: fn(&NewEvent) -> &str| column(rows, move |row| pick(row.event));
    tx.query(
        statement,
        &[
            &column(rows, |row| row.event_id.as_str()),
            &event(|e| &e.trace_id),
            &event(|e| &e.session_id),
            &event(|e| &e.event_type),
            &event(|e| &e.principal_id),
            &event(|e| &e.policy_snapshot_id),
            &column(rows, |row| canonical_json(&row.event.payload)),
            &event(|e| &e.payload_hash),
            &column(rows, |row| row.chain_seq),
            &column(rows, |row| row.prev_chain_hash.as_str()),
            &column(rows, |row| row.chain_hash.as_str()),
        ],
    )
    .await
}

/// Checks that each stored JSONB still hashes to its payload hash, so the
/// audit re-hash of every row holds. A payload JSONB would change (`-0.0`,
/// exponent floats) is refused, and the batch rolls back.
pub(super) fn check_stored_hashes(rows: &[EventRow<'_>], stored: &[Row]) -> PecrResult<()> {
    let expected: HashMap<&str, &str> = rows
        .iter()
        .map(|row| (row.event_id.as_str(), row.event.payload_hash.as_str()))
        .collect();
    for row in stored {
        let event_id: &str = row.get(0);
        let text: &str = row.get(1);
        let stored_hash =
            serde_json::from_str::<Value>(text).map(|value| hash_canonical_json(&value));
        let expected = expected.get(event_id).copied();
        if expected.is_none() || stored_hash.as_deref().ok() != expected {
            return Err(PecrError::invalid_params(
                "event payload would not hash the same after storage (avoid -0.0 and exponent-form numbers)",
            ));
        }
    }
    if stored.len() != rows.len() {
        return Err(PecrError::ledger_unavailable());
    }
    Ok(())
}

impl LedgerStore {
    pub async fn list_events(&self, query: EventQuery) -> PecrResult<Vec<v1::LedgerEvent>> {
        self.db("list_events", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    r#"SELECT event_id, trace_id, session_id, event_type,
                              to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                              principal_id, policy_snapshot_id, payload_json::text, payload_hash
                       FROM pecr_ledger_events
                       WHERE ($1::text IS NULL OR session_id = $1)
                         AND ($2::text IS NULL OR trace_id = $2)
                         AND ($3::text IS NULL OR event_type = $3)
                       ORDER BY event_time, event_id
                       LIMIT $4"#,
                    &[&query.session_id, &query.trace_id, &query.event_type, &query.limit],
                )
                .await
                .map_err(db_error)?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let payload: String = row.get(7);
                    v1::LedgerEvent {
                        event_id: row.get(0),
                        trace_id: row.get(1),
                        session_id: row.get(2),
                        event_type: row.get(3),
                        event_time: row.get(4),
                        principal_id: row.get(5),
                        policy_snapshot_id: row.get(6),
                        payload: serde_json::from_str::<Value>(&payload)
                            .map(|value| canonical_json(&value))
                            .unwrap_or(payload),
                        payload_hash: row.get(8),
                    }
                })
                .collect())
        })
        .await
    }
}

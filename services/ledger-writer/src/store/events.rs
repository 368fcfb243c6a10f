//! Audit events: append with a verified payload hash, list in time order.

use deadpool_postgres::GenericClient;
use pecr_contracts::{canonical_json, hash_canonical_json, ids};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::Value;

use super::{LedgerStore, db_error};
use crate::validate::{EventQuery, NewEvent};

/// All events of a write in one statement; ids are minted in order, so the
/// events of one call list in the order they were given.
const INSERT_EVENTS: &str = "INSERT INTO pecr_ledger_events \
     (event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload_json, payload_hash) \
     SELECT e.event_id, e.trace_id, e.session_id, e.event_type, e.principal_id, e.policy_snapshot_id, \
            CAST(e.payload AS jsonb), e.payload_hash \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
          AS e(event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload, payload_hash) \
     RETURNING event_id, payload_json::text";

/// Inserts events inside the caller's transaction and checks that each
/// stored JSONB still hashes to its payload hash, so the audit re-hash of
/// every row holds. A payload JSONB would change (`-0.0`, exponent floats)
/// is refused, and the caller's transaction rolls back.
pub(crate) async fn insert_events(
    client: &impl GenericClient,
    events: &[NewEvent],
) -> PecrResult<Vec<String>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let event_ids: Vec<String> = events.iter().map(|_| ids::new_ulid()).collect();
    let column = |pick: fn(&NewEvent) -> String| events.iter().map(pick).collect::<Vec<String>>();
    let statement = client
        .prepare_cached(INSERT_EVENTS)
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &statement,
            &[
                &event_ids,
                &column(|e| e.trace_id.clone()),
                &column(|e| e.session_id.clone()),
                &column(|e| e.event_type.clone()),
                &column(|e| e.principal_id.clone()),
                &column(|e| e.policy_snapshot_id.clone()),
                &column(|e| canonical_json(&e.payload)),
                &column(|e| e.payload_hash.clone()),
            ],
        )
        .await
        .map_err(db_error)?;
    for row in &rows {
        let event_id: String = row.get(0);
        let stored: String = row.get(1);
        let expected = event_ids
            .iter()
            .position(|id| *id == event_id)
            .and_then(|index| events.get(index))
            .map(|event| event.payload_hash.as_str());
        let stored_hash =
            serde_json::from_str::<Value>(&stored).map(|value| hash_canonical_json(&value));
        if expected.is_none() || stored_hash.as_deref().ok() != expected {
            return Err(PecrError::invalid_params(
                "event payload would not hash the same after storage (avoid -0.0 and exponent-form numbers)",
            ));
        }
    }
    if rows.len() != events.len() {
        return Err(PecrError::ledger_unavailable());
    }
    Ok(event_ids)
}

impl LedgerStore {
    pub async fn append_event(&self, event: NewEvent) -> PecrResult<String> {
        self.db("append_event", async {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            let event_id = insert_events(&tx, std::slice::from_ref(&event))
                .await?
                .pop()
                .ok_or_else(PecrError::ledger_unavailable)?;
            tx.commit().await.map_err(db_error)?;
            Ok(event_id)
        })
        .await
    }

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

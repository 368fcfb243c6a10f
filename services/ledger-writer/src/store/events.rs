//! Audit events: append with a verified payload hash, list in time order.

use deadpool_postgres::GenericClient;
use pecr_contracts::{canonical_json, hash_canonical_json, ids};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::Value;

use super::{LedgerStore, db_error};
use crate::validate::{EventQuery, NewEvent};

/// Inserts one event inside the caller's transaction and checks that the
/// stored JSONB still hashes to the payload hash, so the audit re-hash of
/// every row holds. A payload JSONB would change (`-0.0`, exponent floats)
/// is refused, and the caller's transaction rolls back.
pub(crate) async fn insert_event(
    client: &impl GenericClient,
    event: &NewEvent,
) -> PecrResult<String> {
    let event_id = ids::new_ulid();
    let row = client
        .query_one(
            &client.prepare_cached("INSERT INTO pecr_ledger_events \
             (event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload_json, payload_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb), $8) RETURNING payload_json::text").await.map_err(db_error)?,
            &[
                &event_id,
                &event.trace_id,
                &event.session_id,
                &event.event_type,
                &event.principal_id,
                &event.policy_snapshot_id,
                &canonical_json(&event.payload),
                &event.payload_hash,
            ],
        )
        .await
        .map_err(db_error)?;
    let stored: String = row.get(0);
    let stored_hash =
        serde_json::from_str::<Value>(&stored).map(|value| hash_canonical_json(&value));
    if stored_hash.as_deref().ok() != Some(event.payload_hash.as_str()) {
        return Err(PecrError::invalid_params(
            "event payload would not hash the same after storage (avoid -0.0 and exponent-form numbers)",
        ));
    }
    Ok(event_id)
}

impl LedgerStore {
    pub async fn append_event(&self, event: NewEvent) -> PecrResult<String> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            let event_id = insert_event(&tx, &event).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(event_id)
        })
        .await
    }

    pub async fn list_events(&self, query: EventQuery) -> PecrResult<Vec<v1::LedgerEvent>> {
        self.bounded(async {
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

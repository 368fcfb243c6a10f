//! Executed operator calls: evidence, events and counters in one transaction.

use deadpool_postgres::GenericClient;
use pecr_contracts::canonical_json;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

use super::events::insert_events;
use super::sessions::lock_open_session;
use super::{LedgerStore, db_error};
use crate::validate::{NewEvidence, OperatorCallWrite};

/// Insert-or-ignore by id; returns whether the row is new.
async fn insert_evidence(
    client: &impl GenericClient,
    session: &v1::SessionRecord,
    unit: &NewEvidence,
    store_content: bool,
) -> PecrResult<bool> {
    let payload = if store_content {
        unit.content.as_ref().map(canonical_json)
    } else {
        None
    };
    let inserted = client
        .query_opt(
            &client
                .prepare_cached(
                    "INSERT INTO pecr_evidence_units \
             (evidence_unit_id, trace_id, session_id, source_system, object_id, version_id, \
              span_or_row_spec_json, content_type, content_hash, as_of_time, retrieved_at, \
              policy_snapshot_id, policy_snapshot_hash, transform_chain_json, payload_json) \
             VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb), $8, $9, \
                     CAST($10::text AS timestamptz), CAST($11::text AS timestamptz), $12, $13, \
                     CAST($14::text AS jsonb), CAST($15::text AS jsonb)) \
             ON CONFLICT (evidence_unit_id) DO NOTHING RETURNING evidence_unit_id",
                )
                .await
                .map_err(db_error)?,
            &[
                &unit.evidence_unit_id,
                &session.trace_id,
                &session.session_id,
                &unit.source_system,
                &unit.object_id,
                &unit.version_id,
                &canonical_json(&unit.span_or_row_spec),
                &unit.content_type,
                &unit.content_hash,
                &unit.as_of_time,
                &unit.retrieved_at,
                &unit.policy_snapshot_id,
                &unit.policy_snapshot_hash,
                &canonical_json(&unit.transform_chain),
                &payload,
            ],
        )
        .await
        .map_err(db_error)?;
    Ok(inserted.is_some())
}

impl LedgerStore {
    pub async fn record_operator_call(
        &self,
        write: OperatorCallWrite,
    ) -> PecrResult<v1::RecordOperatorCallResponse> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            let session = lock_open_session(&tx, &write.session_id).await?;
            if session.trace_id != write.trace_id {
                return Err(PecrError::invalid_params("trace_id does not match the session"));
            }
            let expected = (write.expected_operator_calls_used, write.expected_bytes_used);
            let stored = (
                i64::try_from(session.operator_calls_used).unwrap_or(i64::MAX),
                i64::try_from(session.bytes_used).unwrap_or(i64::MAX),
            );
            if expected != stored {
                return Err(PecrError::invalid_params("session counters changed concurrently; reload the session")
                    .with_http(409)
                    .with_retryable(true));
            }
            for unit in &write.evidence {
                if unit.policy_snapshot_id != session.policy_snapshot_id
                    || unit.policy_snapshot_hash != session.policy_snapshot_hash
                    || unit.as_of_time != session.as_of_time
                {
                    return Err(PecrError::invalid_params(
                        "evidence must carry the session's policy snapshot and as_of_time",
                    ));
                }
            }

            let mut inserted_ids = Vec::new();
            for unit in &write.evidence {
                if insert_evidence(&tx, &session, unit, write.store_content).await? {
                    inserted_ids.push(unit.evidence_unit_id.clone());
                }
            }
            let event_ids = insert_events(&tx, &write.events).await?;

            let mut evidence_ids = session.evidence_unit_ids.clone();
            evidence_ids.extend(write.evidence.iter().map(|unit| unit.evidence_unit_id.clone()));
            evidence_ids.sort_unstable();
            evidence_ids.dedup();
            tx.execute(
                &tx.prepare_cached("UPDATE pecr_session_runtime SET operator_calls_used = $2, bytes_used = $3, \
                 evidence_unit_ids_json = CAST($4::text AS jsonb), updated_at = now() WHERE session_id = $1").await.map_err(db_error)?,
                &[
                    &write.session_id,
                    &write.operator_calls_used,
                    &write.bytes_used,
                    &serde_json::Value::from(evidence_ids.clone()).to_string(),
                ],
            )
            .await
            .map_err(db_error)?;

            tx.commit().await.map_err(db_error)?;
            // The row is locked and was just written: its new state is known.
            let session = v1::SessionRecord {
                operator_calls_used: write.operator_calls_used.unsigned_abs(),
                bytes_used: write.bytes_used.unsigned_abs(),
                evidence_unit_ids: evidence_ids,
                ..session
            };
            Ok(v1::RecordOperatorCallResponse {
                event_ids,
                inserted_evidence_unit_ids: inserted_ids,
                session: Some(session),
            })
        })
        .await
    }
}

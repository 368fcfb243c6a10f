//! Executed operator calls: evidence, events and counters in one transaction.

use deadpool_postgres::GenericClient;
use pecr_contracts::canonical_json;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

use super::events::insert_events;
use super::sessions::lock_open_session;
use super::{LedgerStore, db_error};
use crate::validate::{NewEvidence, OperatorCallWrite};

/// Every unit of a write in one statement, insert-or-ignore by id.
const INSERT_EVIDENCE: &str = "INSERT INTO pecr_evidence_units \
     (evidence_unit_id, trace_id, session_id, source_system, object_id, version_id, \
      span_or_row_spec_json, content_type, content_hash, as_of_time, retrieved_at, \
      policy_snapshot_id, policy_snapshot_hash, transform_chain_json, payload_json) \
     SELECT u.id, $2, $3, u.source_system, u.object_id, u.version_id, CAST(u.span AS jsonb), \
            u.content_type, u.content_hash, CAST(u.as_of_time AS timestamptz), \
            CAST(u.retrieved_at AS timestamptz), u.snapshot_id, u.snapshot_hash, \
            CAST(u.chain AS jsonb), CAST(u.payload AS jsonb) \
     FROM unnest($1::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
                 $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]) \
          AS u(id, source_system, object_id, version_id, span, content_type, content_hash, \
               as_of_time, retrieved_at, snapshot_id, snapshot_hash, chain, payload) \
     ON CONFLICT (evidence_unit_id) DO NOTHING RETURNING evidence_unit_id";

/// Inserts the units (first writer wins on an existing id) and returns the
/// ids that were new to the ledger, in the order given.
async fn insert_evidence(
    client: &impl GenericClient,
    session: &v1::SessionRecord,
    units: &[NewEvidence],
    store_content: bool,
) -> PecrResult<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let units: Vec<&NewEvidence> = units
        .iter()
        .filter(|unit| seen.insert(unit.evidence_unit_id.as_str()))
        .collect();
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let column = |pick: fn(&NewEvidence) -> String| {
        units.iter().map(|unit| pick(unit)).collect::<Vec<String>>()
    };
    let payloads: Vec<Option<String>> = units
        .iter()
        .map(|unit| {
            unit.content
                .as_ref()
                .filter(|_| store_content)
                .map(canonical_json)
        })
        .collect();
    let statement = client
        .prepare_cached(INSERT_EVIDENCE)
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &statement,
            &[
                &column(|u| u.evidence_unit_id.clone()),
                &session.trace_id,
                &session.session_id,
                &column(|u| u.source_system.clone()),
                &column(|u| u.object_id.clone()),
                &column(|u| u.version_id.clone()),
                &column(|u| canonical_json(&u.span_or_row_spec)),
                &column(|u| u.content_type.clone()),
                &column(|u| u.content_hash.clone()),
                &column(|u| u.as_of_time.clone()),
                &column(|u| u.retrieved_at.clone()),
                &column(|u| u.policy_snapshot_id.clone()),
                &column(|u| u.policy_snapshot_hash.clone()),
                &column(|u| canonical_json(&u.transform_chain)),
                &payloads,
            ],
        )
        .await
        .map_err(db_error)?;
    let inserted: std::collections::BTreeSet<String> = rows.iter().map(|row| row.get(0)).collect();
    Ok(units
        .iter()
        .filter(|unit| inserted.contains(&unit.evidence_unit_id))
        .map(|unit| unit.evidence_unit_id.clone())
        .collect())
}

impl LedgerStore {
    pub async fn record_operator_call(
        &self,
        write: OperatorCallWrite,
    ) -> PecrResult<v1::RecordOperatorCallResponse> {
        self.db("record_operator_call", async {
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

            let inserted_ids =
                insert_evidence(&tx, &session, &write.evidence, write.store_content).await?;
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

//! Finalize: claim map, session terminal mode, event and runtime flag, atomically.

use pecr_contracts::canonical_json;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

use super::events::insert_events;
use super::sessions::{load_session, lock_open_session};
use super::{LedgerStore, db_error};
use crate::validate::FinalizeWrite;

impl LedgerStore {
    pub async fn record_finalize(
        &self,
        write: FinalizeWrite,
    ) -> PecrResult<v1::RecordFinalizeResponse> {
        self.db("record_finalize", async {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            let session = lock_open_session(&tx, &write.session_id).await?;
            if write
                .cited_evidence_ids
                .iter()
                .any(|id| session.evidence_unit_ids.binary_search(id).is_err())
            {
                return Err(PecrError::invalid_params("claim_map cites evidence not emitted in this session"));
            }
            tx.execute(
                &tx.prepare_cached("INSERT INTO pecr_claim_maps \
                 (claim_map_id, trace_id, session_id, terminal_mode, coverage_threshold, coverage_observed, claim_map_json) \
                 VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb))").await.map_err(db_error)?,
                &[
                    &write.claim_map_id,
                    &session.trace_id,
                    &write.session_id,
                    &write.terminal_mode,
                    &write.coverage_threshold,
                    &write.coverage_observed,
                    &canonical_json(&write.claim_map_json),
                ],
            )
            .await
            .map_err(db_error)?;
            tx.execute(
                &tx.prepare_cached("UPDATE pecr_sessions SET finalized_at = now(), terminal_mode = $2 WHERE session_id = $1").await.map_err(db_error)?,
                &[&write.session_id, &write.terminal_mode],
            )
            .await
            .map_err(db_error)?;
            let event_id = insert_events(&tx, std::slice::from_ref(&write.event))
                .await?
                .pop()
                .ok_or_else(PecrError::ledger_unavailable)?;
            tx.execute(
                &tx.prepare_cached("UPDATE pecr_session_runtime SET finalized = true, updated_at = now() WHERE session_id = $1").await.map_err(db_error)?,
                &[&write.session_id],
            )
            .await
            .map_err(db_error)?;
            let session = load_session(&tx, &write.session_id)
                .await?
                .ok_or_else(PecrError::ledger_unavailable)?;
            tx.commit().await.map_err(db_error)?;
            Ok(v1::RecordFinalizeResponse {
                event_id,
                session: Some(session),
                run_id: String::new(),
            })
        })
        .await
    }
}

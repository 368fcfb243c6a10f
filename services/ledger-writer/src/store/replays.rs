//! Replay bundles and evaluations, visible only to their owner.

use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_postgres::Transaction;
use pecr_contracts::hashing::bundle_hash;
use pecr_errors::{ErrorCode, PecrError, PecrResult};
use serde_json::Value;
use tokio_postgres::Statement;

use super::{LedgerStore, column, db_error};
use crate::validate::{NewEvaluation, NewReplay, PrincipalKey};

const DAY_MS: i64 = 86_400_000;

fn replay_not_found() -> PecrError {
    PecrError::new(ErrorCode::ReplayNotFound, "replay not found")
}

/// A stored bundle counts only while its hash still matches.
fn verified_bundle(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    let stored = value.get("metadata")?.get("bundle_hash")?.as_str()?;
    (bundle_hash(&value).as_deref() == Some(stored)).then(|| text.to_owned())
}

pub(super) const INSERT_REPLAYS: &str = "INSERT INTO pecr_replay_bundles \
     (run_id, tenant_id, principal_id_hash, engine_mode, recorded_at_unix_ms, terminal_mode, \
      quality_score, bundle_hash, bundle_json) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], \
                          $7::float8[], $8::text[], $9::text[])";

pub(super) const INSERT_EVALUATIONS: &str = "INSERT INTO pecr_evaluations \
     (evaluation_id, tenant_id, principal_id_hash, created_at_unix_ms, evaluation_json) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])";

pub(super) async fn insert_replays(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[&NewReplay],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    tx.execute(
        statement,
        &[
            &column(rows, |r| r.run_id.as_str()),
            &column(rows, |r| r.tenant_id.as_str()),
            &column(rows, |r| r.principal_id_hash.as_str()),
            &column(rows, |r| r.engine_mode.as_str()),
            &column(rows, |r| r.recorded_at_unix_ms),
            &column(rows, |r| r.terminal_mode.as_str()),
            &column(rows, |r| r.quality_score),
            &column(rows, |r| r.bundle_hash.as_str()),
            &column(rows, |r| r.canonical_text.as_str()),
        ],
    )
    .await
}

pub(super) async fn insert_evaluations(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[&NewEvaluation],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    tx.execute(
        statement,
        &[
            &column(rows, |e| e.evaluation_id.as_str()),
            &column(rows, |e| e.tenant_id.as_str()),
            &column(rows, |e| e.principal_id_hash.as_str()),
            &column(rows, |e| e.created_at_unix_ms),
            &column(rows, |e| e.canonical_text.as_str()),
        ],
    )
    .await
}

impl LedgerStore {
    pub async fn load_replay(&self, owner: PrincipalKey, run_id: &str) -> PecrResult<String> {
        self.db("load_replay", async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &client
                        .prepare_cached(
                            "SELECT bundle_json FROM pecr_replay_bundles \
                     WHERE run_id = $1 AND tenant_id = $2 AND principal_id_hash = $3",
                        )
                        .await
                        .map_err(db_error)?,
                    &[&run_id, &owner.tenant_id, &owner.principal_id_hash],
                )
                .await
                .map_err(db_error)?
                .ok_or_else(replay_not_found)?;
            verified_bundle(&row.get::<_, String>(0)).ok_or_else(replay_not_found)
        })
        .await
    }

    /// The owner's verified bundles among `run_ids`, in one query.
    pub async fn load_replays(
        &self,
        owner: PrincipalKey,
        run_ids: &[String],
    ) -> PecrResult<Vec<String>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.db("load_replays", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &client
                        .prepare_cached(
                            "SELECT bundle_json FROM pecr_replay_bundles \
                     WHERE tenant_id = $1 AND principal_id_hash = $2 AND run_id = ANY($3::text[])",
                        )
                        .await
                        .map_err(db_error)?,
                    &[&owner.tenant_id, &owner.principal_id_hash, &run_ids],
                )
                .await
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .filter_map(|row| verified_bundle(&row.get::<_, String>(0)))
                .collect())
        })
        .await
    }

    pub async fn list_replays(
        &self,
        owner: PrincipalKey,
        engine_mode: Option<String>,
        limit: i64,
    ) -> PecrResult<Vec<String>> {
        self.db("list_replays", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &client.prepare_cached("SELECT bundle_json FROM pecr_replay_bundles \
                     WHERE tenant_id = $1 AND principal_id_hash = $2 AND ($3::text IS NULL OR engine_mode = $3) \
                     ORDER BY recorded_at_unix_ms DESC, run_id DESC LIMIT $4").await.map_err(db_error)?,
                    &[&owner.tenant_id, &owner.principal_id_hash, &engine_mode, &limit],
                )
                .await
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .filter_map(|row| verified_bundle(&row.get::<_, String>(0)))
                .collect())
        })
        .await
    }

    /// Deletes rows recorded strictly more than `retention_days` ago.
    pub async fn prune(&self, retention_days: u32) -> PecrResult<(u64, u64)> {
        if retention_days == 0 {
            return Ok((0, 0));
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let cutoff = now_ms.saturating_sub(i64::from(retention_days) * DAY_MS);
        self.db("prune", async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            let replays = tx
                .execute(
                    &tx.prepare_cached(
                        "DELETE FROM pecr_replay_bundles WHERE recorded_at_unix_ms < $1",
                    )
                    .await
                    .map_err(db_error)?,
                    &[&cutoff],
                )
                .await
                .map_err(db_error)?;
            let evaluations = tx
                .execute(
                    &tx.prepare_cached(
                        "DELETE FROM pecr_evaluations WHERE created_at_unix_ms < $1",
                    )
                    .await
                    .map_err(db_error)?,
                    &[&cutoff],
                )
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok((replays, evaluations))
        })
        .await
    }

    pub async fn load_evaluation(
        &self,
        owner: PrincipalKey,
        evaluation_id: &str,
    ) -> PecrResult<String> {
        self.db("load_evaluation", async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &client
                        .prepare_cached(
                            "SELECT evaluation_json FROM pecr_evaluations \
                     WHERE evaluation_id = $1 AND tenant_id = $2 AND principal_id_hash = $3",
                        )
                        .await
                        .map_err(db_error)?,
                    &[&evaluation_id, &owner.tenant_id, &owner.principal_id_hash],
                )
                .await
                .map_err(db_error)?
                .ok_or_else(|| {
                    PecrError::new(ErrorCode::EvaluationNotFound, "evaluation not found")
                })?;
            Ok(row.get(0))
        })
        .await
    }
}

//! Sessions, policy snapshots and runtime state.

use deadpool_postgres::GenericClient;
use pecr_contracts::{Budget, ids};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::Value;

use super::{LedgerStore, already_finalized, db_error, not_found_session};
use crate::convert;
use crate::validate::{NewRefusal, NewSession};

const SESSION_SELECT: &str = r#"
SELECT s.session_id, s.trace_id, s.principal_id, COALESCE(r.tenant_id, 'local'),
       s.policy_snapshot_id, p.policy_snapshot_hash,
       to_char(p.as_of_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       s.budget_json::text, COALESCE(r.session_token_hash, ''),
       COALESCE(r.session_token_expires_at_epoch_ms, 0),
       GREATEST(COALESCE(r.operator_calls_used, 0), 0), GREATEST(COALESCE(r.bytes_used, 0), 0),
       COALESCE(r.evidence_unit_ids_json, '[]'::jsonb)::text,
       (s.finalized_at IS NOT NULL OR COALESCE(r.finalized, false)), s.terminal_mode,
       COALESCE(p.input_json->>'principal_attrs_hash', '')
FROM pecr_sessions s
JOIN pecr_policy_snapshots p ON p.policy_snapshot_id = s.policy_snapshot_id
LEFT JOIN pecr_session_runtime r ON r.session_id = s.session_id
WHERE s.session_id = $1"#;

/// Loads a session with its runtime state as committed when the statement starts.
pub(crate) async fn load_session(
    client: &impl GenericClient,
    session_id: &str,
) -> PecrResult<Option<v1::SessionRecord>> {
    let Some(row) = client
        .query_opt(
            &client
                .prepare_cached(SESSION_SELECT)
                .await
                .map_err(db_error)?,
            &[&session_id],
        )
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let budget_text: String = row.get(7);
    let budget: Budget = serde_json::from_str(&budget_text).map_err(|_| {
        tracing::warn!(session_id, "stored budget_json is undecodable");
        PecrError::ledger_unavailable()
    })?;
    let ids_text: String = row.get(12);
    // Non-string entries are dropped, as the contract says.
    let evidence_unit_ids = match serde_json::from_str::<Value>(&ids_text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let terminal_mode = row
        .get::<_, Option<String>>(14)
        .and_then(|mode| v1::TerminalMode::from_str_name(&mode))
        .unwrap_or(v1::TerminalMode::Unspecified);
    let non_negative = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(Some(v1::SessionRecord {
        session_id: row.get(0),
        trace_id: row.get(1),
        principal_id: row.get(2),
        tenant_id: row.get(3),
        policy_snapshot_id: row.get(4),
        policy_snapshot_hash: row.get(5),
        as_of_time: row.get(6),
        budget: Some(v1::Budget::from(&budget)),
        session_token_hash: row.get(8),
        session_token_expires_at_epoch_ms: non_negative(row.get(9)),
        operator_calls_used: non_negative(row.get(10)),
        bytes_used: non_negative(row.get(11)),
        evidence_unit_ids,
        finalized: row.get(13),
        terminal_mode: terminal_mode as i32,
        principal_attrs_hash: row.get(15),
    }))
}

/// Locks a session that must exist and still be open (404 / 409 otherwise).
///
/// The lock is taken by its own statement before the load: a `SELECT … FOR
/// UPDATE` that waits for the lock re-reads only the locked row, so a joined
/// runtime row would come back as it was before the other writer committed,
/// and both writers would pass the counter check.
pub(crate) async fn lock_open_session(
    client: &impl GenericClient,
    session_id: &str,
) -> PecrResult<v1::SessionRecord> {
    let locked = client
        .query_opt(
            &client
                .prepare_cached("SELECT 1 FROM pecr_sessions WHERE session_id = $1 FOR UPDATE")
                .await
                .map_err(db_error)?,
            &[&session_id],
        )
        .await
        .map_err(db_error)?;
    if locked.is_none() {
        return Err(not_found_session());
    }
    let session = load_session(client, session_id)
        .await?
        .ok_or_else(not_found_session)?;
    if session.finalized {
        return Err(already_finalized());
    }
    Ok(session)
}

/// The advisory-lock namespace of trace ids (`PECR` in ASCII); two-key
/// locks never collide with the one-key migration lock.
const TRACE_LOCK_SPACE: i32 = 0x5045_4352;

/// True when `new.trace_id` already names a session of another tenant or
/// principal. Sessions on the same trace take turns on an advisory lock, so
/// two principals cannot both claim a new trace at once; the check runs in
/// its own statement, after the lock, to see what the other committed.
async fn trace_owned_by_another(client: &impl GenericClient, new: &NewSession) -> PecrResult<bool> {
    client
        .execute(
            &client
                .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .await
                .map_err(db_error)?,
            &[&TRACE_LOCK_SPACE, &new.trace_id],
        )
        .await
        .map_err(db_error)?;
    let row = client
        .query_one(
            &client
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM pecr_sessions s \
                     JOIN pecr_session_runtime r ON r.session_id = s.session_id \
                     WHERE s.trace_id = $1 AND (s.principal_id <> $2 OR r.tenant_id <> $3))",
                )
                .await
                .map_err(db_error)?,
            &[&new.trace_id, &new.principal_id, &new.tenant_id],
        )
        .await
        .map_err(db_error)?;
    Ok(row.get(0))
}

impl LedgerStore {
    /// Inserts snapshot, session and runtime row in one transaction. A trace
    /// id another (tenant, principal) already uses is replaced by a fresh one.
    pub async fn record_session(&self, mut new: NewSession) -> PecrResult<v1::SessionRecord> {
        self.db("record_session", async {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            if trace_owned_by_another(&tx, &new).await? {
                new.trace_id = ids::new_ulid();
            }
            tx.execute(
                &tx.prepare_cached("INSERT INTO pecr_policy_snapshots \
                 (policy_snapshot_id, policy_snapshot_hash, principal_id, as_of_time, policy_bundle_hash, input_json) \
                 VALUES ($1, $2, $3, CAST($4::text AS timestamptz), $5, CAST($6::text AS jsonb))").await.map_err(db_error)?,
                &[
                    &new.policy_snapshot_id,
                    &new.policy_snapshot_hash,
                    &new.principal_id,
                    &new.as_of_time,
                    &new.policy_bundle_hash,
                    &new.snapshot_json.to_string(),
                ],
            )
            .await
            .map_err(db_error)?;
            tx.execute(
                &tx.prepare_cached("INSERT INTO pecr_sessions (session_id, trace_id, principal_id, policy_snapshot_id, budget_json) \
                 VALUES ($1, $2, $3, $4, CAST($5::text AS jsonb))").await.map_err(db_error)?,
                &[
                    &new.session_id,
                    &new.trace_id,
                    &new.principal_id,
                    &new.policy_snapshot_id,
                    &new.budget.to_declaration_order_json(),
                ],
            )
            .await
            .map_err(db_error)?;
            tx.execute(
                &tx.prepare_cached("INSERT INTO pecr_session_runtime \
                 (session_id, tenant_id, session_token_hash, session_token_expires_at_epoch_ms) \
                 VALUES ($1, $2, $3, $4)").await.map_err(db_error)?,
                &[
                    &new.session_id,
                    &new.tenant_id,
                    &new.session_token_hash,
                    &new.session_token_expires_at_epoch_ms,
                ],
            )
            .await
            .map_err(db_error)?;
            let record = load_session(&tx, &new.session_id)
                .await?
                .ok_or_else(PecrError::ledger_unavailable)?;
            tx.commit().await.map_err(db_error)?;
            Ok(record)
        })
        .await
    }

    /// Appends a refused attempt to use a session (outside its event stream).
    pub async fn record_refusal(&self, refusal: NewRefusal) -> PecrResult<String> {
        self.db("record_access_refusal", async {
            let client = self.client().await?;
            let refusal_id = ids::new_ulid();
            client
                .execute(
                    &client
                        .prepare_cached(
                            "INSERT INTO pecr_session_access_refusals \
                             (refusal_id, session_id, principal_id, tenant_id, reason, action, request_id) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .await
                        .map_err(db_error)?,
                    &[
                        &refusal_id,
                        &refusal.session_id,
                        &refusal.principal_id,
                        &refusal.tenant_id,
                        &refusal.reason,
                        &refusal.action,
                        &refusal.request_id,
                    ],
                )
                .await
                .map_err(db_error)?;
            Ok(refusal_id)
        })
        .await
    }

    pub async fn get_session(&self, session_id: &str) -> PecrResult<v1::SessionRecord> {
        self.db("get_session", async {
            let client = self.client().await?;
            load_session(&client, session_id)
                .await?
                .ok_or_else(not_found_session)
        })
        .await
    }

    pub async fn get_policy_snapshot(
        &self,
        policy_snapshot_id: &str,
    ) -> PecrResult<v1::PolicySnapshot> {
        self.db("get_policy_snapshot", async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &client.prepare_cached("SELECT input_json::text FROM pecr_policy_snapshots WHERE policy_snapshot_id = $1").await.map_err(db_error)?,
                    &[&policy_snapshot_id],
                )
                .await
                .map_err(db_error)?
                .ok_or_else(|| PecrError::invalid_params("unknown policy_snapshot_id").with_http(404))?;
            let text: String = row.get(0);
            serde_json::from_str::<Value>(&text)
                .ok()
                .as_ref()
                .and_then(convert::snapshot_from_json)
                .ok_or_else(|| {
                    tracing::warn!(policy_snapshot_id, "stored policy snapshot is undecodable");
                    PecrError::ledger_unavailable()
                })
        })
        .await
    }
}

//! Sessions, policy snapshots, runtime state and refused attempts.

use deadpool_postgres::{GenericClient, Transaction};
use pecr_contracts::Budget;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::plan::{Chain, RefusalRow, RuntimeRow, SessionRow};
use super::{LedgerStore, column, db_error, not_found_session};
use crate::convert;

/// A session with its runtime state, selected by `$where`.
macro_rules! session_select {
    ($where:literal) => {
        concat!(
            r#"SELECT s.session_id, s.trace_id, s.principal_id, COALESCE(r.tenant_id, 'local'),
       s.policy_snapshot_id, p.policy_snapshot_hash,
       to_char(p.as_of_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       s.budget_json::text, COALESCE(r.session_token_hash, ''),
       COALESCE(r.session_token_expires_at_epoch_ms, 0),
       GREATEST(COALESCE(r.operator_calls_used, 0), 0), GREATEST(COALESCE(r.bytes_used, 0), 0),
       COALESCE(r.evidence_unit_ids_json, '[]'::jsonb)::text,
       (s.finalized_at IS NOT NULL OR COALESCE(r.finalized, false)), s.terminal_mode,
       COALESCE(p.input_json->>'principal_attrs_hash', ''),
       r.chain_head, r.chain_length
FROM pecr_sessions s
JOIN pecr_policy_snapshots p ON p.policy_snapshot_id = s.policy_snapshot_id
LEFT JOIN pecr_session_runtime r ON r.session_id = s.session_id
"#,
            $where
        )
    };
}

const SESSION_SELECT: &str = session_select!("WHERE s.session_id = $1");

/// Loads a session with its runtime state as committed when the statement starts.
pub(crate) async fn load_session(
    client: &impl GenericClient,
    session_id: &str,
) -> PecrResult<Option<v1::SessionRecord>> {
    let statement = client
        .prepare_cached(SESSION_SELECT)
        .await
        .map_err(db_error)?;
    client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_error)?
        .map(|row| session_from_row(&row))
        .transpose()
}

/// A session row of [`session_select!`].
pub(super) fn session_from_row(row: &Row) -> PecrResult<v1::SessionRecord> {
    let budget_text: &str = row.get(7);
    let budget: Budget = serde_json::from_str(budget_text).map_err(|_| {
        let session_id: &str = row.get(0);
        tracing::warn!(session_id, "stored budget_json is undecodable");
        PecrError::ledger_unavailable()
    })?;
    let ids_text: &str = row.get(12);
    // Non-string entries are dropped, as the contract says.
    let evidence_unit_ids = match serde_json::from_str::<Value>(ids_text) {
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
    Ok(v1::SessionRecord {
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
    })
}

/// The chain columns of a [`session_select!`] row; `None` before the
/// session's first chained event.
pub(super) fn chain_from_row(row: &Row) -> Option<Chain> {
    let head: Option<String> = row.get(16);
    let length: Option<i64> = row.get(17);
    Some(Chain {
        head: head?,
        length: length?,
    })
}

/// Locks the sessions a batch writes to, in id order so that two batches
/// never wait for each other in a cycle. The lock is its own statement,
/// before the load: a `SELECT … FOR UPDATE` that waits for the lock
/// re-reads only the locked row, so a joined runtime row would come back
/// as it was before the other writer committed, and both writers would
/// pass the counter check. A session is locked once per batch; the
/// batch's later writes to it use the state the planner keeps.
pub(super) const LOCK_SESSIONS: &str = "SELECT session_id FROM pecr_sessions \
     WHERE session_id = ANY($1::text[]) ORDER BY session_id FOR UPDATE";

/// The sessions just locked, read in a statement of their own (see above).
pub(super) const LOAD_SESSIONS: &str = session_select!("WHERE s.session_id = ANY($1::text[])");

/// The advisory-lock namespace of trace ids (`PECR` in ASCII); two-key
/// locks never collide with the one-key migration lock.
pub(super) const TRACE_LOCK_SPACE: i32 = 0x5045_4352;

/// New sessions on the same trace take turns on an advisory lock, so two
/// principals cannot both claim a new trace at once. Keys are taken in
/// order, so two batches never wait for each other in a cycle.
pub(super) const LOCK_TRACES: &str = "SELECT pg_advisory_xact_lock($1, key) \
     FROM (SELECT DISTINCT hashtext(trace_id) AS key FROM unnest($2::text[]) AS trace_id ORDER BY key) AS keys";

/// Per new session, in order: is its trace already a session of another
/// tenant or principal? Its own statement, after the lock, to see what the
/// lock's previous holder committed.
pub(super) const TRACE_OWNERS: &str = "SELECT EXISTS (SELECT 1 FROM pecr_sessions s \
     JOIN pecr_session_runtime r ON r.session_id = s.session_id \
     WHERE s.trace_id = n.trace_id AND (s.principal_id <> n.principal_id OR r.tenant_id <> n.tenant_id)) \
     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS n(trace_id, principal_id, tenant_id, position) \
     ORDER BY n.position";

pub(super) const INSERT_SNAPSHOTS: &str = "INSERT INTO pecr_policy_snapshots \
     (policy_snapshot_id, policy_snapshot_hash, principal_id, as_of_time, policy_bundle_hash, input_json) \
     SELECT n.id, n.hash, n.principal_id, CAST(n.as_of_time AS timestamptz), n.bundle_hash, CAST(n.input AS jsonb) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
          AS n(id, hash, principal_id, as_of_time, bundle_hash, input)";

pub(super) const INSERT_SESSIONS: &str = "INSERT INTO pecr_sessions \
     (session_id, trace_id, principal_id, policy_snapshot_id, budget_json) \
     SELECT n.id, n.trace_id, n.principal_id, n.snapshot_id, CAST(n.budget AS jsonb) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
          AS n(id, trace_id, principal_id, snapshot_id, budget)";

pub(super) const INSERT_RUNTIME: &str = "INSERT INTO pecr_session_runtime \
     (session_id, tenant_id, session_token_hash, session_token_expires_at_epoch_ms, \
      operator_calls_used, bytes_used, evidence_unit_ids_json, chain_head, chain_length) \
     SELECT s, t, h, e, c, b, CAST(ids AS jsonb), ch, cl \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], \
                 $8::text[], $9::int8[]) \
          AS u(s, t, h, e, c, b, ids, ch, cl)";

/// A NULL leaves the stored value: a finalize alone changes only the flag.
pub(super) const UPDATE_RUNTIME: &str = "UPDATE pecr_session_runtime AS r \
     SET operator_calls_used = COALESCE(u.calls, r.operator_calls_used), \
         bytes_used = COALESCE(u.bytes, r.bytes_used), \
         evidence_unit_ids_json = COALESCE(CAST(u.ids AS jsonb), r.evidence_unit_ids_json), \
         finalized = r.finalized OR u.finalized, updated_at = now(), \
         chain_head = COALESCE(u.chain_head, r.chain_head), \
         chain_length = COALESCE(u.chain_length, r.chain_length) \
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::bool[], $6::text[], $7::int8[]) \
          AS u(session_id, calls, bytes, ids, finalized, chain_head, chain_length) \
     WHERE r.session_id = u.session_id";

pub(super) const INSERT_REFUSALS: &str = "INSERT INTO pecr_session_access_refusals \
     (refusal_id, session_id, principal_id, tenant_id, reason, action, request_id) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])";

/// The trace ids of a batch's new sessions, locked.
pub(super) async fn lock_traces(
    tx: &Transaction<'_>,
    statement: &Statement,
    trace_ids: &[&str],
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(statement, &[&TRACE_LOCK_SPACE, &trace_ids])
        .await
}

/// Per new session, in order, whether another owner holds its trace.
pub(super) async fn traces_owned_elsewhere(
    tx: &Transaction<'_>,
    statement: &Statement,
    new: &[(&str, &str, &str)],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let traces = column(new, |n| n.0);
    let principals = column(new, |n| n.1);
    let tenants = column(new, |n| n.2);
    let rows = tx
        .query(statement, &[&traces, &principals, &tenants])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// A new session's chain, when its first calls wrote events.
fn chained<'r>(row: &'r SessionRow<'_>) -> Option<&'r Chain> {
    (row.chain.length > 0).then_some(&row.chain)
}

/// Snapshot, session and runtime rows of the batch's new sessions: three
/// statements, sent in this order (each refers to the one before).
pub(super) async fn insert_sessions(
    tx: &Transaction<'_>,
    statements: [&Statement; 3],
    rows: &[SessionRow<'_>],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let [snapshots, sessions, runtime] = statements;
    let session_ids = column(rows, |r| r.new.session_id.as_str());
    let principals = column(rows, |r| r.new.principal_id.as_str());
    let snapshot_ids = column(rows, |r| r.new.policy_snapshot_id.as_str());
    let snapshot_params: [&(dyn ToSql + Sync); 6] = [
        &snapshot_ids,
        &column(rows, |r| r.new.policy_snapshot_hash.as_str()),
        &principals,
        &column(rows, |r| r.new.as_of_time.as_str()),
        &column(rows, |r| r.new.policy_bundle_hash.as_str()),
        &column(rows, |r| r.new.snapshot_json.to_string()),
    ];
    let session_params: [&(dyn ToSql + Sync); 5] = [
        &session_ids,
        &column(rows, |r| r.trace_id.as_str()),
        &principals,
        &snapshot_ids,
        &column(rows, |r| r.new.budget.to_declaration_order_json()),
    ];
    let runtime_params: [&(dyn ToSql + Sync); 9] = [
        &session_ids,
        &column(rows, |r| r.new.tenant_id.as_str()),
        &column(rows, |r| r.new.session_token_hash.as_str()),
        &column(rows, |r| r.new.session_token_expires_at_epoch_ms),
        &column(rows, |r| r.operator_calls_used),
        &column(rows, |r| r.bytes_used),
        &column(rows, |r| r.evidence_unit_ids.as_str()),
        &column(rows, |r| chained(r).map(|chain| chain.head.as_str())),
        &column(rows, |r| chained(r).map(|chain| chain.length)),
    ];
    let (snapshots, sessions, runtime) = tokio::join!(
        biased;
        tx.execute(snapshots, &snapshot_params),
        tx.execute(sessions, &session_params),
        tx.execute(runtime, &runtime_params),
    );
    snapshots?;
    sessions?;
    runtime?;
    Ok(())
}

/// Locks and loads existing sessions (see [`LOCK_SESSIONS`]); the two
/// statements are pipelined, and the load still starts after the lock.
pub(super) async fn lock_and_load(
    tx: &Transaction<'_>,
    statements: [&Statement; 2],
    session_ids: &[String],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if session_ids.is_empty() {
        return Ok(Vec::new());
    }
    let [lock, load] = statements;
    let params: [&(dyn ToSql + Sync); 1] = [&session_ids];
    let (locked, loaded) = tokio::join!(
        biased;
        tx.execute(lock, &params),
        tx.query(load, &params),
    );
    locked?;
    loaded
}

pub(super) async fn update_runtime(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[RuntimeRow],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    tx.execute(
        statement,
        &[
            &column(rows, |r| r.session_id.as_str()),
            &column(rows, |r| r.operator_calls_used),
            &column(rows, |r| r.bytes_used),
            &column(rows, |r| r.evidence_unit_ids.as_deref()),
            &column(rows, |r| r.finalized),
            &column(rows, |r| r.chain.as_ref().map(|chain| chain.head.as_str())),
            &column(rows, |r| r.chain.as_ref().map(|chain| chain.length)),
        ],
    )
    .await
}

/// Refused attempts to use a session, kept outside its event stream.
pub(super) async fn insert_refusals(
    tx: &Transaction<'_>,
    statement: &Statement,
    rows: &[RefusalRow<'_>],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    tx.execute(
        statement,
        &[
            &column(rows, |r| r.refusal_id.as_str()),
            &column(rows, |r| r.refusal.session_id.as_str()),
            &column(rows, |r| r.refusal.principal_id.as_str()),
            &column(rows, |r| r.refusal.tenant_id.as_str()),
            &column(rows, |r| r.refusal.reason.as_str()),
            &column(rows, |r| r.refusal.action.as_str()),
            &column(rows, |r| r.refusal.request_id.as_str()),
        ],
    )
    .await
}

impl LedgerStore {
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

//! The ledger's tables read in one read-only snapshot, row by row as the
//! server sends them: memory stays flat however large the ledger is.

use futures_util::StreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::checkpoints::{self, CheckpointWalk, Covered, StoredCheckpoint, Trust};
use super::checks::{
    self, Broken, ChainWalk, SessionChain, StoredClaimMap, StoredEvent, StoredEvidence,
};
use super::progress::Progress;
use crate::checkpoint::merkle::Leaf;

/// What a pass reads: the whole ledger, or the sessions created (and the
/// checkpoints written) in a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Whole,
    Created {
        since_unix_ms: i64,
        until_unix_ms: i64,
    },
}

const IN_RANGE: &str = "created_at >= to_timestamp($1::bigint / 1000.0) \
     AND created_at < to_timestamp($2::bigint / 1000.0)";

impl Scope {
    /// The condition on a session id column.
    fn sessions(&self, column: &str) -> String {
        match self {
            Self::Whole => "TRUE".to_owned(),
            Self::Created { .. } => {
                format!("{column} IN (SELECT session_id FROM pecr_sessions WHERE {IN_RANGE})")
            }
        }
    }

    /// The condition on a checkpoint seq column.
    fn checkpoints(&self, column: &str) -> String {
        match self {
            Self::Whole => "TRUE".to_owned(),
            Self::Created { .. } => format!(
                "{column} IN (SELECT checkpoint_seq FROM pecr_ledger_checkpoints WHERE {IN_RANGE})"
            ),
        }
    }

    fn params(&self) -> Vec<i64> {
        match self {
            Self::Whole => Vec::new(),
            Self::Created {
                since_unix_ms,
                until_unix_ms,
            } => vec![*since_unix_ms, *until_unix_ms],
        }
    }
}

/// Every event with its session's recorded chain, in chain order: a
/// session's unchained events first, then its chain by position.
const EVENTS: &str = "SELECT e.event_id, e.trace_id, e.session_id, e.event_type, e.principal_id, \
            e.policy_snapshot_id, e.payload_json::text, e.payload_hash, e.chain_seq, \
            e.prev_chain_hash, e.chain_hash, r.chain_head, r.chain_length, c.claim_map_id, \
            c.sealed_chain_head, c.sealed_chain_length \
     FROM pecr_ledger_events e \
     LEFT JOIN pecr_session_runtime r ON r.session_id = e.session_id \
     LEFT JOIN pecr_claim_maps c ON c.session_id = e.session_id \
     WHERE {sessions} \
     ORDER BY e.session_id, e.chain_seq NULLS FIRST, e.event_id";

/// Sessions whose runtime row records a chain none of their events carry
/// (they would not appear in [`EVENTS`]).
const LOST_CHAINS: &str = "SELECT r.session_id, r.chain_length FROM pecr_session_runtime r \
     WHERE {sessions} AND r.chain_length > 0 AND NOT EXISTS \
       (SELECT 1 FROM pecr_ledger_events e WHERE e.session_id = r.session_id AND e.chain_seq IS NOT NULL) \
     ORDER BY r.session_id LIMIT 1";

const EVIDENCE: &str = r#"SELECT evidence_unit_id, session_id, source_system, object_id, version_id,
            span_or_row_spec_json::text, content_type, content_hash,
            to_char(as_of_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            policy_snapshot_hash, transform_chain_json::text, payload_json::text
     FROM pecr_evidence_units WHERE {sessions} ORDER BY evidence_unit_id"#;

const CLAIM_MAPS: &str = "SELECT claim_map_id, session_id, terminal_mode, claim_map_json::text \
     FROM pecr_claim_maps WHERE {sessions} ORDER BY claim_map_id";

/// The sessions each checkpoint covers, with their seals as stored now.
const COVERED: &str = "SELECT s.checkpoint_seq, s.session_id, c.sealed_chain_head, c.sealed_chain_length \
     FROM pecr_checkpoint_sessions s \
     LEFT JOIN pecr_claim_maps c ON c.session_id = s.session_id \
     WHERE {checkpoints} ORDER BY s.checkpoint_seq, s.session_id";

const CHECKPOINTS: &str = "SELECT checkpoint_seq, \
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
            prev_checkpoint_hash, merkle_root, session_count, document, checkpoint_hash, \
            signature, public_key \
     FROM pecr_ledger_checkpoints WHERE {checkpoints} ORDER BY checkpoint_seq";

/// What a pass counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub chained: u64,
    pub unchained: u64,
    pub sessions: u64,
    pub evidence_units: u64,
    pub claim_maps: u64,
    pub checkpoints: u64,
    pub signed_checkpoints: u64,
    pub unsigned_checkpoints: u64,
}

/// Why a pass stopped early.
#[derive(Debug)]
pub enum Stop {
    Broken(Broken),
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Stop {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Database(err)
    }
}

impl From<Broken> for Stop {
    fn from(broken: Broken) -> Self {
        Self::Broken(broken)
    }
}

/// One pass's reads: the snapshot, the scope's parameters, the progress.
struct Reader<'a, 't> {
    tx: &'a Transaction<'t>,
    params: Vec<i64>,
    progress: &'a mut Progress,
}

impl Reader<'_, '_> {
    fn params(&self) -> impl ExactSizeIterator<Item = &(dyn ToSql + Sync)> {
        self.params.iter().map(|value| value as &(dyn ToSql + Sync))
    }

    /// The first row of `sql`, if any.
    async fn first_row(&mut self, sql: &str) -> Result<Option<Row>, Stop> {
        let rows = self.tx.query_raw(sql, self.params()).await?;
        let mut rows = std::pin::pin!(rows);
        Ok(rows.next().await.transpose()?)
    }

    /// Runs `check` on each row of `sql`, as the rows arrive.
    async fn each_row(
        &mut self,
        sql: &str,
        table: &'static str,
        mut check: impl FnMut(&Row) -> Result<(), Broken>,
    ) -> Result<u64, Stop> {
        let rows = self.tx.query_raw(sql, self.params()).await?;
        let mut rows = std::pin::pin!(rows);
        let mut count = 0;
        while let Some(row) = rows.next().await {
            check(&row?)?;
            count += 1;
            self.progress.row(table, count);
        }
        self.progress.done(table, count);
        Ok(count)
    }
}

/// Checks every table in `scope`, stopping at the first broken item.
pub async fn all(
    tx: &Transaction<'_>,
    scope: Scope,
    trust: Trust,
    progress: &mut Progress,
) -> Result<Counts, Stop> {
    let mut reader = Reader {
        tx,
        params: scope.params(),
        progress,
    };
    let mut walk = ChainWalk::default();
    let events_sql = EVENTS.replace("{sessions}", &scope.sessions("e.session_id"));
    let events = reader
        .each_row(&events_sql, checks::EVENTS, |row| {
            let event = StoredEvent {
                event_id: row.get(0),
                trace_id: row.get(1),
                session_id: row.get(2),
                event_type: row.get(3),
                principal_id: row.get(4),
                policy_snapshot_id: row.get(5),
                payload_json: row.get(6),
                payload_hash: row.get(7),
                chain_seq: row.get(8),
                prev_chain_hash: row.get(9),
                chain_hash: row.get(10),
            };
            let chain = SessionChain {
                head: row.get(11),
                length: row.get(12),
                claim_map_id: row.get(13),
                sealed_head: row.get(14),
                sealed_length: row.get(15),
            };
            checks::event_payload(&event)?;
            walk.event(&event, &chain)
        })
        .await?;
    walk.finish()?;
    let lost_sql = LOST_CHAINS.replace("{sessions}", &scope.sessions("r.session_id"));
    let lost = reader
        .first_row(&lost_sql)
        .await?
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)));
    if let Some((session_id, length)) = lost {
        return Err(Stop::Broken(Broken {
            table: checks::RUNTIME,
            id: session_id.clone(),
            session_id,
            what: format!("records a chain of {length} events, but no chained event is stored"),
        }));
    }
    let evidence_sql = EVIDENCE.replace("{sessions}", &scope.sessions("session_id"));
    let evidence_units = reader
        .each_row(&evidence_sql, checks::EVIDENCE, |row| {
            checks::evidence(&StoredEvidence {
                evidence_unit_id: row.get(0),
                session_id: row.get(1),
                source_system: row.get(2),
                object_id: row.get(3),
                version_id: row.get(4),
                span_or_row_spec_json: row.get(5),
                content_type: row.get(6),
                content_hash: row.get(7),
                as_of_time: row.get(8),
                policy_snapshot_hash: row.get(9),
                transform_chain_json: row.get(10),
                payload_json: row.get(11),
            })
        })
        .await?;
    let claim_maps_sql = CLAIM_MAPS.replace("{sessions}", &scope.sessions("session_id"));
    let claim_maps = reader
        .each_row(&claim_maps_sql, checks::CLAIM_MAPS, |row| {
            checks::claim_map(&StoredClaimMap {
                claim_map_id: row.get(0),
                session_id: row.get(1),
                terminal_mode: row.get(2),
                claim_map_json: row.get(3),
            })
        })
        .await?;
    let checkpoints = checkpoints(&mut reader, scope, trust).await?;
    Ok(Counts {
        events,
        chained: walk.chained,
        unchained: walk.unchained,
        sessions: walk.sessions,
        evidence_units,
        claim_maps,
        checkpoints: checkpoints.checkpoints,
        signed_checkpoints: checkpoints.signed,
        unsigned_checkpoints: checkpoints.unsigned,
    })
}

/// The checkpoints in order, each against the sessions it covers. The
/// covered sessions are read first, one checkpoint's leaves in memory at a
/// time, and kept as one root per checkpoint.
async fn checkpoints(
    reader: &mut Reader<'_, '_>,
    scope: Scope,
    trust: Trust,
) -> Result<CheckpointWalk, Stop> {
    let mut roots: std::collections::BTreeMap<i64, Covered> = Default::default();
    let mut current: Option<(i64, Vec<Leaf>)> = None;
    let covered_sql = COVERED.replace("{checkpoints}", &scope.checkpoints("s.checkpoint_seq"));
    reader
        .each_row(&covered_sql, checkpoints::COVERED, |row| {
            let seq: i64 = row.get(0);
            let session_id: String = row.get(1);
            let (Some(chain_head), Some(chain_length)) = (row.get(2), row.get(3)) else {
                return Err(Broken {
                    table: checkpoints::COVERED,
                    id: seq.to_string(),
                    session_id,
                    what: "a covered session has no sealed claim map".to_owned(),
                });
            };
            if current.as_ref().is_some_and(|(current, _)| *current != seq)
                && let Some((done, leaves)) = current.take()
            {
                roots.insert(done, Covered::of(&leaves));
            }
            current
                .get_or_insert_with(|| (seq, Vec::new()))
                .1
                .push(Leaf {
                    session_id,
                    chain_head,
                    chain_length,
                });
            Ok(())
        })
        .await?;
    if let Some((done, leaves)) = current {
        roots.insert(done, Covered::of(&leaves));
    }
    let mut walk = CheckpointWalk::new(trust, scope == Scope::Whole);
    let checkpoints_sql =
        CHECKPOINTS.replace("{checkpoints}", &scope.checkpoints("checkpoint_seq"));
    reader
        .each_row(&checkpoints_sql, checkpoints::CHECKPOINTS, |row| {
            let stored = StoredCheckpoint {
                checkpoint_seq: row.get(0),
                created_at: row.get(1),
                prev_checkpoint_hash: row.get(2),
                merkle_root: row.get(3),
                session_count: row.get(4),
                document: row.get(5),
                checkpoint_hash: row.get(6),
                signature: row.get(7),
                public_key: row.get(8),
            };
            let covered = roots
                .remove(&stored.checkpoint_seq)
                .unwrap_or_else(|| Covered::of(&[]));
            walk.checkpoint(&stored, &covered)
        })
        .await?;
    if let Some(orphan) = roots.keys().next() {
        return Err(Stop::Broken(Broken {
            table: checkpoints::COVERED,
            id: orphan.to_string(),
            session_id: String::new(),
            what: format!("sessions are covered by checkpoint {orphan}, which is not stored"),
        }));
    }
    Ok(walk)
}

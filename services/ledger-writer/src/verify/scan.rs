//! The ledger's tables read in one read-only snapshot, row by row as the
//! server sends them: memory stays flat however large the ledger is.

use futures_util::StreamExt;
use tokio_postgres::{Row, Transaction};

use super::checks::{
    self, Broken, ChainWalk, SessionChain, StoredClaimMap, StoredEvent, StoredEvidence,
};
use super::progress::Progress;

/// Every event with its session's recorded chain, in chain order: a
/// session's unchained events first, then its chain by position.
const EVENTS: &str = "SELECT e.event_id, e.trace_id, e.session_id, e.event_type, e.principal_id, \
            e.policy_snapshot_id, e.payload_json::text, e.payload_hash, e.chain_seq, \
            e.prev_chain_hash, e.chain_hash, r.chain_head, r.chain_length, c.claim_map_id, \
            c.sealed_chain_head, c.sealed_chain_length \
     FROM pecr_ledger_events e \
     LEFT JOIN pecr_session_runtime r ON r.session_id = e.session_id \
     LEFT JOIN pecr_claim_maps c ON c.session_id = e.session_id \
     ORDER BY e.session_id, e.chain_seq NULLS FIRST, e.event_id";

/// Sessions whose runtime row records a chain none of their events carry
/// (they would not appear in [`EVENTS`]).
const LOST_CHAINS: &str = "SELECT r.session_id, r.chain_length FROM pecr_session_runtime r \
     WHERE r.chain_length > 0 AND NOT EXISTS \
       (SELECT 1 FROM pecr_ledger_events e WHERE e.session_id = r.session_id AND e.chain_seq IS NOT NULL) \
     ORDER BY r.session_id LIMIT 1";

const EVIDENCE: &str = r#"SELECT evidence_unit_id, session_id, source_system, object_id, version_id,
            span_or_row_spec_json::text, content_type, content_hash,
            to_char(as_of_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            policy_snapshot_hash, transform_chain_json::text, payload_json::text
     FROM pecr_evidence_units ORDER BY evidence_unit_id"#;

const CLAIM_MAPS: &str = "SELECT claim_map_id, session_id, terminal_mode, claim_map_json::text \
     FROM pecr_claim_maps ORDER BY claim_map_id";

/// What a pass counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub chained: u64,
    pub unchained: u64,
    pub sessions: u64,
    pub evidence_units: u64,
    pub claim_maps: u64,
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

/// Runs `check` on each row of `sql`, as the rows arrive.
async fn each_row(
    tx: &Transaction<'_>,
    sql: &str,
    progress: &mut Progress,
    table: &'static str,
    mut check: impl FnMut(&Row) -> Result<(), Broken>,
) -> Result<u64, Stop> {
    let rows = tx.query_raw(sql, std::iter::empty::<&str>()).await?;
    let mut rows = std::pin::pin!(rows);
    let mut count = 0;
    while let Some(row) = rows.next().await {
        check(&row?)?;
        count += 1;
        progress.row(table, count);
    }
    progress.done(table, count);
    Ok(count)
}

/// Checks every table, stopping at the first broken item.
pub async fn all(tx: &Transaction<'_>, progress: &mut Progress) -> Result<Counts, Stop> {
    let mut walk = ChainWalk::default();
    let events = each_row(tx, EVENTS, progress, checks::EVENTS, |row| {
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
    let lost = tx.query(LOST_CHAINS, &[]).await?.into_iter().next();
    if let Some(row) = lost {
        let session_id: String = row.get(0);
        let length: i64 = row.get(1);
        return Err(Stop::Broken(Broken {
            table: checks::RUNTIME,
            id: session_id.clone(),
            session_id,
            what: format!("records a chain of {length} events, but no chained event is stored"),
        }));
    }
    let evidence_units = each_row(tx, EVIDENCE, progress, checks::EVIDENCE, |row| {
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
    let claim_maps = each_row(tx, CLAIM_MAPS, progress, checks::CLAIM_MAPS, |row| {
        checks::claim_map(&StoredClaimMap {
            claim_map_id: row.get(0),
            session_id: row.get(1),
            terminal_mode: row.get(2),
            claim_map_json: row.get(3),
        })
    })
    .await?;
    Ok(Counts {
        events,
        chained: walk.chained,
        unchained: walk.unchained,
        sessions: walk.sessions,
        evidence_units,
        claim_maps,
    })
}

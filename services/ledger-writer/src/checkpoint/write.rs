//! Writes checkpoints. One at a time across every replica (a transaction
//! advisory lock), each numbered one past the newest, so the checkpoints
//! form one chain however many writers share the ledger.

use std::sync::Arc;

use deadpool_postgres::Pool;
use pecr_errors::PecrResult;
use pecr_proto::v1;
use tokio_postgres::Row;

use super::document::{self, Document};
use super::merkle::{self, Leaf};
use super::signing::SigningKey;
use crate::store::{connection, db_error};

/// Most sessions one checkpoint covers; more wait for the next one.
const MAX_SESSIONS: i64 = 50_000;

/// The advisory lock that serialises checkpoint writers.
const LOCK_KEY: i64 = 0x7065_6372_636b_7074; // "pecrckpt"

const SELECT_COLUMNS: &str = "checkpoint_seq, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
     prev_checkpoint_hash, merkle_root, session_count, document, checkpoint_hash, signature, \
     public_key";

/// Finalized sessions no checkpoint covers yet, by id.
const UNCOVERED: &str = "SELECT c.session_id, c.sealed_chain_head, c.sealed_chain_length \
     FROM pecr_claim_maps c \
     WHERE c.sealed_chain_head IS NOT NULL AND NOT EXISTS \
       (SELECT 1 FROM pecr_checkpoint_sessions s WHERE s.session_id = c.session_id) \
     ORDER BY c.session_id LIMIT $1";

const INSERT: &str = "INSERT INTO pecr_ledger_checkpoints \
     (checkpoint_seq, created_at, prev_checkpoint_hash, merkle_root, session_count, document, \
      checkpoint_hash, signature, public_key) \
     VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8)";

const INSERT_COVERED: &str = "INSERT INTO pecr_checkpoint_sessions (session_id, checkpoint_seq) \
     SELECT unnest($1::text[]), $2";

/// Writes checkpoints with the configured key, if any.
#[derive(Clone)]
pub struct Checkpointer {
    pool: Pool,
    key: Option<Arc<SigningKey>>,
}

impl Checkpointer {
    pub fn new(pool: Pool, key: Option<Arc<SigningKey>>) -> Self {
        Self { pool, key }
    }

    /// Writes a checkpoint over the sessions finalized since the newest
    /// one; None when there are none.
    pub async fn write(&self) -> PecrResult<Option<v1::LedgerCheckpoint>> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(db_error)?;
        // A background job: it may take longer than an RPC's write.
        tx.batch_execute("SET LOCAL statement_timeout = '60s'")
            .await
            .map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(db_error)?;
        let leaves: Vec<Leaf> = tx
            .query(UNCOVERED, &[&MAX_SESSIONS])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| Leaf {
                session_id: row.get(0),
                chain_head: row.get(1),
                chain_length: row.get(2),
            })
            .collect();
        if leaves.is_empty() {
            return Ok(None);
        }
        let newest = tx
            .query_opt(
                "SELECT checkpoint_seq, checkpoint_hash FROM pecr_ledger_checkpoints \
                 ORDER BY checkpoint_seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(db_error)?;
        let (seq, prev) = match newest {
            Some(row) => (row.get::<_, i64>(0) + 1, row.get::<_, String>(1)),
            None => (1, document::genesis()),
        };
        let created_at: String = tx
            .query_one(
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        let document = Document {
            checkpoint_seq: seq,
            created_at,
            prev_checkpoint_hash: prev,
            merkle_root: merkle::root(&leaves),
            session_count: leaves.len() as i64,
            public_key: self.key.as_ref().map(|key| key.public_key().to_hex()),
        };
        let text = document.text();
        let hash = document::checkpoint_hash(&text);
        let signature = self.key.as_ref().map(|key| key.sign(text.as_bytes()));
        tx.execute(
            INSERT,
            &[
                &seq,
                &document.prev_checkpoint_hash,
                &document.merkle_root,
                &document.session_count,
                &text,
                &hash,
                &signature,
                &document.public_key,
            ],
        )
        .await
        .map_err(db_error)?;
        let covered: Vec<&str> = leaves.iter().map(|leaf| leaf.session_id.as_str()).collect();
        tx.execute(INSERT_COVERED, &[&covered, &seq])
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(stored(&document, text, hash, signature)))
    }

    /// The newest checkpoint, if any.
    pub async fn newest(&self) -> PecrResult<Option<v1::LedgerCheckpoint>> {
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {SELECT_COLUMNS} FROM pecr_ledger_checkpoints \
                     ORDER BY checkpoint_seq DESC LIMIT 1"
                ),
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(from_row))
    }
}

fn stored(
    document: &Document,
    text: String,
    hash: String,
    signature: Option<String>,
) -> v1::LedgerCheckpoint {
    v1::LedgerCheckpoint {
        checkpoint_seq: document.checkpoint_seq as u64,
        created_at: document.created_at.clone(),
        prev_checkpoint_hash: document.prev_checkpoint_hash.clone(),
        merkle_root: document.merkle_root.clone(),
        session_count: document.session_count as u64,
        document: text,
        checkpoint_hash: hash,
        signed: signature.is_some(),
        signature: signature.unwrap_or_default(),
        public_key: document.public_key.clone().unwrap_or_default(),
    }
}

fn from_row(row: &Row) -> v1::LedgerCheckpoint {
    let signature: Option<String> = row.get(7);
    v1::LedgerCheckpoint {
        checkpoint_seq: row.get::<_, i64>(0) as u64,
        created_at: row.get(1),
        prev_checkpoint_hash: row.get(2),
        merkle_root: row.get(3),
        session_count: row.get::<_, i64>(4) as u64,
        document: row.get(5),
        checkpoint_hash: row.get(6),
        signed: signature.is_some(),
        signature: signature.unwrap_or_default(),
        public_key: row.get::<_, Option<String>>(8).unwrap_or_default(),
    }
}

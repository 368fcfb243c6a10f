//! SQL access to the ledger. Every operation is bounded by the write
//! timeout. Writes go through the committer, which runs concurrent writes
//! in shared transactions (`batch.rs`); reads use a pooled connection.

pub mod batch;
mod events;
mod evidence;
mod finalize;
mod plan;
mod replays;
mod sessions;
mod versions;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::Pool;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use tokio_postgres::error::SqlState;
use tracing::Instrument;

pub use plan::{Write, Written};

use crate::committer::Committer;
use crate::validate::{
    FinalizeWrite, NewEvaluation, NewEvent, NewRefusal, NewReplay, NewSession, OperatorCallWrite,
};

/// The ledger database behind LedgerService.
#[derive(Clone)]
pub struct LedgerStore {
    pool: Pool,
    write_timeout: Duration,
    committer: Committer,
}

impl LedgerStore {
    pub fn new(pool: Pool, write_timeout: Duration, committer: Committer) -> Self {
        Self {
            pool,
            write_timeout,
            committer,
        }
    }

    /// Hands `write` to the committer and waits, within the write timeout,
    /// until the transaction holding it has committed (or refused it).
    async fn commit<T>(&self, write: Write, answer: fn(Written) -> Option<T>) -> PecrResult<T> {
        self.db(write.operation(), async {
            let written = self.committer.submit(write).await?;
            answer(written).ok_or_else(|| {
                tracing::warn!("the committer answered a write with another kind of result");
                PecrError::ledger_unavailable()
            })
        })
        .await
    }

    /// The session as the write left it, with its first calls' answer.
    pub async fn record_session(&self, new: NewSession) -> PecrResult<v1::RecordSessionResponse> {
        self.commit(Write::Session(Box::new(new)), |written| match written {
            Written::Session(response) => Some(*response),
            _ => None,
        })
        .await
    }

    pub async fn record_operator_call(
        &self,
        write: OperatorCallWrite,
    ) -> PecrResult<v1::RecordOperatorCallResponse> {
        self.commit(
            Write::OperatorCall(Box::new(write)),
            |written| match written {
                Written::OperatorCall(response) => Some(response),
                _ => None,
            },
        )
        .await
    }

    pub async fn record_finalize(
        &self,
        write: FinalizeWrite,
    ) -> PecrResult<v1::RecordFinalizeResponse> {
        self.commit(Write::Finalize(Box::new(write)), |written| match written {
            Written::Finalize(response) => Some(response),
            _ => None,
        })
        .await
    }

    pub async fn append_event(&self, event: NewEvent) -> PecrResult<String> {
        self.commit(Write::Event(Box::new(event)), |written| match written {
            Written::Event(event_id) => Some(event_id),
            _ => None,
        })
        .await
    }

    /// Appends a refused attempt to use a session (outside its event stream).
    pub async fn record_refusal(&self, refusal: NewRefusal) -> PecrResult<String> {
        self.commit(Write::Refusal(Box::new(refusal)), |written| match written {
            Written::Refusal(refusal_id) => Some(refusal_id),
            _ => None,
        })
        .await
    }

    pub async fn store_replay(&self, replay: NewReplay) -> PecrResult<String> {
        self.commit(Write::Replay(Box::new(replay)), |written| match written {
            Written::Replay(run_id) => Some(run_id),
            _ => None,
        })
        .await
    }

    pub async fn store_evaluation(&self, evaluation: NewEvaluation) -> PecrResult<String> {
        self.commit(
            Write::Evaluation(Box::new(evaluation)),
            |written| match written {
                Written::Evaluation(evaluation_id) => Some(evaluation_id),
                _ => None,
            },
        )
        .await
    }

    /// Runs `work` under the write timeout; a timeout is `ERR_LEDGER_UNAVAILABLE`.
    async fn bounded<T>(&self, work: impl Future<Output = PecrResult<T>>) -> PecrResult<T> {
        tokio::time::timeout(self.write_timeout, work)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(
                    timeout_ms = self.write_timeout.as_millis() as u64,
                    "ledger operation timed out"
                );
                Err(PecrError::ledger_unavailable())
            })
    }

    /// [`Self::bounded`] in a `db` client span named after the operation
    /// (OpenTelemetry database conventions; never SQL text or parameters).
    async fn db<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = PecrResult<T>>,
    ) -> PecrResult<T> {
        let span = tracing::info_span!(
            "db",
            otel.name = operation,
            otel.kind = "client",
            db.system = "postgresql",
            db.operation.name = operation,
            outcome = tracing::field::Empty,
        );
        let result = self.bounded(work).instrument(span.clone()).await;
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        result
    }

    async fn client(&self) -> PecrResult<deadpool_postgres::Object> {
        connection(&self.pool).await
    }

    /// `SELECT 1` within the write timeout.
    pub async fn ping(&self) -> bool {
        self.bounded(async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(db_error)?;
            Ok(())
        })
        .await
        .is_ok()
    }

    /// True when the newest compiled-in migration is applied.
    pub async fn is_migrated(&self) -> bool {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    &client
                        .prepare_cached(
                            "SELECT COALESCE(MAX(version), 0)::bigint FROM refinery_schema_history",
                        )
                        .await
                        .map_err(db_error)?,
                    &[],
                )
                .await
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0) >= crate::LAST_MIGRATION_VERSION)
        })
        .await
        .unwrap_or(false)
    }
}

/// One column of a multi-row statement (`unnest($1::text[], …)`).
pub(crate) fn column<'r, T, V>(rows: &'r [T], pick: impl Fn(&'r T) -> V) -> Vec<V> {
    rows.iter().map(pick).collect()
}

/// A pooled connection; its statements time out on the server (see `db.rs`).
pub(crate) async fn connection(pool: &Pool) -> PecrResult<deadpool_postgres::Object> {
    pool.get().await.map_err(|err| {
        tracing::warn!(
            reason = pool_error_kind(&err),
            sqlstate = pool_sqlstate(&err),
            "ledger connection unavailable"
        );
        PecrError::ledger_unavailable()
    })
}

/// Why the pool gave no connection, as a fixed label.
fn pool_error_kind(err: &deadpool_postgres::PoolError) -> &'static str {
    use deadpool_postgres::PoolError;
    match err {
        PoolError::Timeout(_) => "timeout",
        PoolError::Backend(_) => "connect_failed",
        PoolError::Closed => "pool_closed",
        PoolError::NoRuntimeSpecified => "no_runtime",
        PoolError::PostCreateHook(_) => "post_create_hook",
    }
}

fn pool_sqlstate(err: &deadpool_postgres::PoolError) -> &str {
    match err {
        deadpool_postgres::PoolError::Backend(err) => err.code().map_or("", SqlState::code),
        _ => "",
    }
}

/// Values the database refused: the caller's input, so a 400.
const REJECTED_VALUE: [SqlState; 7] = [
    SqlState::CHECK_VIOLATION,
    SqlState::INVALID_DATETIME_FORMAT,
    SqlState::DATETIME_FIELD_OVERFLOW,
    SqlState::INVALID_TEXT_REPRESENTATION,
    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
    SqlState::UNTRANSLATABLE_CHARACTER,
    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
];

/// Maps a database error to what clients may see. The log gets the
/// SQLSTATE (and for a unique violation the table) only: server messages,
/// details and context can quote the values a caller sent.
pub(crate) fn db_error(err: tokio_postgres::Error) -> PecrError {
    let Some(db) = err.as_db_error() else {
        tracing::warn!(closed = err.is_closed(), "ledger connection error");
        return PecrError::ledger_unavailable();
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        let message = match db.table() {
            Some("pecr_claim_maps") => "claim_map_id already exists",
            Some("pecr_replay_bundles") => "run_id already exists",
            Some("pecr_evaluations") => "evaluation_id already exists",
            Some("pecr_sessions" | "pecr_policy_snapshots") => {
                "session_id or policy_snapshot_id already exists"
            }
            _ => {
                tracing::warn!(
                    sqlstate = code.code(),
                    table = ?db.table(),
                    "unexpected unique violation"
                );
                return PecrError::ledger_unavailable();
            }
        };
        return PecrError::invalid_params(message).with_http(409);
    }
    if *code == SqlState::QUERY_CANCELED {
        tracing::warn!(
            sqlstate = code.code(),
            "ledger statement cancelled by its timeout"
        );
        return PecrError::ledger_unavailable();
    }
    if *code == SqlState::FOREIGN_KEY_VIOLATION {
        return PecrError::invalid_params("unknown session_id").with_http(404);
    }
    if REJECTED_VALUE.contains(code) {
        tracing::info!(sqlstate = code.code(), "ledger database rejected a value");
        return PecrError::invalid_params("a value was rejected by the ledger database");
    }
    tracing::warn!(sqlstate = code.code(), "ledger statement failed");
    PecrError::ledger_unavailable()
}

fn not_found_session() -> PecrError {
    PecrError::invalid_params("unknown session_id").with_http(404)
}

fn already_finalized() -> PecrError {
    PecrError::invalid_params("session already finalized").with_http(409)
}

//! One batch of writes in one transaction, in four round trips after BEGIN:
//! new sessions' trace locks, new sessions' rows with the lock and load of
//! the sessions written to, every other row, COMMIT. Each phase's
//! statements are pipelined; PostgreSQL still runs them one after another,
//! so each statement sees what the ones before it did.

use deadpool_postgres::{Object, Transaction};
use pecr_errors::PecrError;
use tokio_postgres::Statement;

use super::plan::{Plan, Write, Written, keep_inserted};
use super::{db_error, events, evidence, finalize, replays, sessions};

/// Why a batch wrote nothing.
#[derive(Debug)]
pub enum Failure {
    /// A statement failed: the transaction rolled back. For a batch of one
    /// this is the write's own error.
    Statement(PecrError),
    /// No connection, a timeout, or COMMIT failed: nothing is known to be
    /// written, and every caller of the batch gets `ERR_LEDGER_UNAVAILABLE`.
    Unavailable(PecrError),
}

/// A database error fails the statement (and the batch is retried write by
/// write); a lost connection or a statement cancelled by its timeout fails
/// everything at once (a write alone would wait on the same lock again).
fn failure(err: tokio_postgres::Error) -> Failure {
    let cancelled = err.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED);
    if err.as_db_error().is_some() && !cancelled {
        Failure::Statement(db_error(err))
    } else {
        Failure::Unavailable(db_error(err))
    }
}

/// Every statement a batch may send, prepared once per connection.
struct Statements {
    lock_traces: Statement,
    trace_owners: Statement,
    insert_snapshots: Statement,
    insert_sessions: Statement,
    insert_runtime: Statement,
    lock_sessions: Statement,
    load_sessions: Statement,
    insert_evidence: Statement,
    insert_claim_maps: Statement,
    finalize_sessions: Statement,
    insert_events: Statement,
    update_runtime: Statement,
    insert_replays: Statement,
    insert_evaluations: Statement,
    insert_refusals: Statement,
}

impl Statements {
    /// From the connection's statement cache; the first batch on a
    /// connection prepares them all in one pipelined round trip.
    async fn prepare(tx: &Transaction<'_>) -> Result<Self, tokio_postgres::Error> {
        let (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o) = tokio::join!(
            biased;
            tx.prepare_cached(sessions::LOCK_TRACES),
            tx.prepare_cached(sessions::TRACE_OWNERS),
            tx.prepare_cached(sessions::INSERT_SNAPSHOTS),
            tx.prepare_cached(sessions::INSERT_SESSIONS),
            tx.prepare_cached(sessions::INSERT_RUNTIME),
            tx.prepare_cached(sessions::LOCK_SESSIONS),
            tx.prepare_cached(sessions::LOAD_SESSIONS),
            tx.prepare_cached(evidence::INSERT_EVIDENCE),
            tx.prepare_cached(finalize::INSERT_CLAIM_MAPS),
            tx.prepare_cached(finalize::FINALIZE_SESSIONS),
            tx.prepare_cached(events::INSERT_EVENTS),
            tx.prepare_cached(sessions::UPDATE_RUNTIME),
            tx.prepare_cached(replays::INSERT_REPLAYS),
            tx.prepare_cached(replays::INSERT_EVALUATIONS),
            tx.prepare_cached(sessions::INSERT_REFUSALS),
        );
        Ok(Self {
            lock_traces: a?,
            trace_owners: b?,
            insert_snapshots: c?,
            insert_sessions: d?,
            insert_runtime: e?,
            lock_sessions: f?,
            load_sessions: g?,
            insert_evidence: h?,
            insert_claim_maps: i?,
            finalize_sessions: j?,
            insert_events: k?,
            update_runtime: l?,
            insert_replays: m?,
            insert_evaluations: n?,
            insert_refusals: o?,
        })
    }
}

/// Runs `writes` (already in [`Write::order_key`] order) in one transaction
/// and, once COMMIT succeeded, answers each: its result, or the refusal the
/// planner found (a refused write wrote nothing, the others are committed).
pub async fn commit(
    client: &mut Object,
    writes: &[&Write],
) -> Result<Vec<pecr_errors::PecrResult<Written>>, Failure> {
    let tx = client.transaction().await.map_err(failure)?;
    let prepared = Statements::prepare(&tx).await.map_err(failure)?;
    let mut plan = Plan::default();
    let mut answers: Vec<Option<pecr_errors::PecrResult<Written>>> =
        writes.iter().map(|_| None).collect();

    // New sessions: lock their traces, then see who owns them. Their first
    // calls are planned with them; those calls' evidence and events go in
    // with every other row, after the session rows they refer to.
    let new: Vec<(usize, &crate::validate::NewSession)> = writes
        .iter()
        .copied()
        .enumerate()
        .filter_map(|(index, write)| match write {
            Write::Session(new) => Some((index, &**new)),
            _ => None,
        })
        .collect();
    if !new.is_empty() {
        let traces: Vec<&str> = new.iter().map(|(_, n)| n.trace_id.as_str()).collect();
        let owners: Vec<(&str, &str, &str)> = new
            .iter()
            .map(|(_, n)| {
                (
                    n.trace_id.as_str(),
                    n.principal_id.as_str(),
                    n.tenant_id.as_str(),
                )
            })
            .collect();
        let (locked, owned) = tokio::join!(
            biased;
            sessions::lock_traces(&tx, &prepared.lock_traces, &traces),
            sessions::traces_owned_elsewhere(&tx, &prepared.trace_owners, &owners),
        );
        locked.map_err(failure)?;
        let owned = owned.map_err(failure)?;
        for ((index, new), owned) in new.iter().zip(owned) {
            let answer = plan.session(new, owned);
            answers[*index] = Some(answer.map(|response| Written::Session(Box::new(response))));
        }
    }

    // New sessions' rows, and the sessions the other writes change.
    let to_lock = plan.sessions_to_lock(writes);
    let (inserted, loaded) = tokio::join!(
        biased;
        sessions::insert_sessions(
            &tx,
            [
                &prepared.insert_snapshots,
                &prepared.insert_sessions,
                &prepared.insert_runtime,
            ],
            &plan.rows.sessions,
        ),
        sessions::lock_and_load(
            &tx,
            [&prepared.lock_sessions, &prepared.load_sessions],
            &to_lock,
        ),
    );
    inserted.map_err(failure)?;
    let loaded = loaded
        .map_err(failure)?
        .iter()
        .map(|row| {
            sessions::session_from_row(row).map(|record| (record, sessions::chain_from_row(row)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Statement)?;
    plan.hold(loaded);
    for (write, answer) in writes.iter().copied().zip(answers.iter_mut()) {
        if answer.is_none() {
            *answer = Some(plan.write(write));
        }
    }

    // Every other row. Units go in id order: two batches inserting the
    // same units wait for each other in one order, never in a cycle.
    plan.rows
        .evidence
        .sort_by(|a, b| a.unit.evidence_unit_id.cmp(&b.unit.evidence_unit_id));
    let runtime = plan.runtime_rows();
    let rows = &plan.rows;
    let (evidence, claim_maps, finalized, events, runtime, replays, evaluations, refusals) = tokio::join!(
        biased;
        evidence::insert_evidence(&tx, &prepared.insert_evidence, &rows.evidence),
        finalize::insert_claim_maps(&tx, &prepared.insert_claim_maps, &rows.claim_maps),
        finalize::finalize_sessions(&tx, &prepared.finalize_sessions, &rows.finalized),
        events::insert_events(&tx, &prepared.insert_events, &rows.events),
        sessions::update_runtime(&tx, &prepared.update_runtime, &runtime),
        replays::insert_replays(&tx, &prepared.insert_replays, &rows.replays),
        replays::insert_evaluations(&tx, &prepared.insert_evaluations, &rows.evaluations),
        sessions::insert_refusals(&tx, &prepared.insert_refusals, &rows.refusals),
    );
    // The first failure is the cause; the statements after it only saw an
    // aborted transaction.
    let inserted_evidence = evidence.map_err(failure)?;
    claim_maps.map_err(failure)?;
    finalized.map_err(failure)?;
    let stored_events = events.map_err(failure)?;
    runtime.map_err(failure)?;
    replays.map_err(failure)?;
    evaluations.map_err(failure)?;
    refusals.map_err(failure)?;
    events::check_stored_hashes(&rows.events, &stored_events).map_err(Failure::Statement)?;

    tx.commit()
        .await
        .map_err(|err| Failure::Unavailable(db_error(err)))?;
    Ok(answers
        .into_iter()
        .map(|answer| {
            let mut answer = answer.unwrap_or_else(|| Err(PecrError::ledger_unavailable()));
            if let Ok(written) = answer.as_mut() {
                keep_inserted(written, &inserted_evidence);
            }
            answer
        })
        .collect())
}

//! What one batch writes. Each write is checked against its session as the
//! batch's transaction sees it (the committed state plus the batch's earlier
//! writes) and is either refused or turned into rows; the rows of the whole
//! batch then go to PostgreSQL a few statements in all. No SQL here.

use std::collections::{BTreeMap, HashMap, HashSet};

use pecr_contracts::ids;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

use super::{already_finalized, not_found_session};
use crate::validate::{
    FinalizeWrite, NewEvaluation, NewEvent, NewEvidence, NewRefusal, NewReplay, NewSession,
    OperatorCallWrite,
};

/// One write a caller asked for.
pub enum Write {
    Session(Box<NewSession>),
    OperatorCall(Box<OperatorCallWrite>),
    Finalize(Box<FinalizeWrite>),
    Event(Box<NewEvent>),
    Refusal(Box<NewRefusal>),
    Replay(Box<NewReplay>),
    Evaluation(Box<NewEvaluation>),
}

/// What a committed write answers.
#[derive(Debug)]
pub enum Written {
    /// The session as the write left it, with its first calls' answer when
    /// they were recorded.
    Session(Box<v1::RecordSessionResponse>),
    OperatorCall(v1::RecordOperatorCallResponse),
    Finalize(v1::RecordFinalizeResponse),
    Event(String),
    Refusal(String),
    Replay(String),
    Evaluation(String),
}

impl Write {
    /// The store operation's name, as the `db` span calls it.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::Session(_) => "record_session",
            Self::OperatorCall(_) => "record_operator_call",
            Self::Finalize(_) => "record_finalize",
            Self::Event(_) => "append_event",
            Self::Refusal(_) => "record_access_refusal",
            Self::Replay(_) => "store_replay",
            Self::Evaluation(_) => "store_evaluation",
        }
    }

    /// The order writes run in within a batch: new sessions by trace id
    /// (they take the trace's advisory lock), then the rest by session id
    /// (they lock the session row), then writes that touch no session. A
    /// stable sort keeps the arrival order of one session's writes.
    pub fn order_key(&self) -> (u8, &str) {
        match self {
            Self::Session(new) => (0, &new.trace_id),
            Self::OperatorCall(write) => (1, &write.session_id),
            Self::Finalize(write) => (1, &write.session_id),
            Self::Event(event) => (1, &event.session_id),
            Self::Refusal(refusal) => (1, &refusal.session_id),
            Self::Replay(replay) => (2, &replay.run_id),
            Self::Evaluation(evaluation) => (2, &evaluation.evaluation_id),
        }
    }

    /// The existing session this write locks, if any.
    fn locks(&self) -> Option<&str> {
        match self {
            Self::OperatorCall(write) => Some(&write.session_id),
            Self::Finalize(write) => Some(&write.session_id),
            // An event's foreign key takes a share lock on its session: it
            // is taken with the others, in order, so lanes cannot deadlock.
            Self::Event(event) => Some(&event.session_id),
            _ => None,
        }
    }
}

/// A new session's rows, with the trace id it is recorded under.
pub struct SessionRow<'a> {
    pub new: &'a NewSession,
    pub trace_id: String,
    /// The runtime row's counters as inserted: its first calls' when the
    /// write carries them (no update of the row in the same transaction).
    pub operator_calls_used: i64,
    pub bytes_used: i64,
    /// JSON array text.
    pub evidence_unit_ids: String,
    /// The chain as its first calls' events left it.
    pub chain: Chain,
}

pub struct EvidenceRow<'a> {
    pub unit: &'a NewEvidence,
    pub trace_id: &'a str,
    pub session_id: &'a str,
    pub store_content: bool,
}

pub struct EventRow<'a> {
    pub event_id: String,
    pub event: &'a NewEvent,
    /// Position in the session's chain, from 1.
    pub chain_seq: i64,
    pub prev_chain_hash: String,
    pub chain_hash: String,
}

/// A session's chain as a batch leaves it: its head and its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub head: String,
    pub length: i64,
}

impl Chain {
    /// The chain of a session without chained events: its genesis value.
    pub fn start(session_id: &str) -> Self {
        Self {
            head: crate::chain::genesis(session_id),
            length: 0,
        }
    }
}

pub struct ClaimMapRow<'a> {
    pub write: &'a FinalizeWrite,
    pub trace_id: String,
    /// The session's chain once the finalize's events are in it.
    pub sealed: Chain,
}

pub struct RefusalRow<'a> {
    pub refusal_id: String,
    pub refusal: &'a NewRefusal,
}

/// A session's runtime row after the batch; `None` leaves a column as stored.
pub struct RuntimeRow {
    pub session_id: String,
    pub operator_calls_used: Option<i64>,
    pub bytes_used: Option<i64>,
    pub evidence_unit_ids: Option<String>,
    pub finalized: bool,
    pub chain: Option<Chain>,
}

/// Everything a batch inserts or updates, table by table.
#[derive(Default)]
pub struct Rows<'a> {
    pub sessions: Vec<SessionRow<'a>>,
    pub evidence: Vec<EvidenceRow<'a>>,
    pub claim_maps: Vec<ClaimMapRow<'a>>,
    /// Sessions finalized by the batch, with their terminal mode.
    pub finalized: Vec<(&'a str, &'static str)>,
    pub events: Vec<EventRow<'a>>,
    pub replays: Vec<&'a NewReplay>,
    pub evaluations: Vec<&'a NewEvaluation>,
    pub refusals: Vec<RefusalRow<'a>>,
}

/// A session held by the batch's transaction, as the batch leaves it.
struct Held {
    record: v1::SessionRecord,
    counters_changed: bool,
    finalized: bool,
    chain: Chain,
    chain_changed: bool,
}

impl Held {
    /// A session as loaded (or created), not yet changed by the batch.
    fn open(record: v1::SessionRecord, chain: Chain) -> Self {
        Self {
            record,
            counters_changed: false,
            finalized: false,
            chain,
            chain_changed: false,
        }
    }
}

/// How a new session's trace id was settled within the batch.
enum Trace {
    /// Another owner holds the requested trace: this fresh id replaces it.
    Replaced(String),
    /// The same owner's earlier session of the batch claimed it.
    Joined,
    /// This session claimed it for its owner.
    Claimed,
}

impl Trace {
    /// The trace id `new` is recorded under.
    fn id(&self, new: &NewSession) -> String {
        match self {
            Self::Replaced(fresh) => fresh.clone(),
            Self::Joined | Self::Claimed => new.trace_id.clone(),
        }
    }
}

/// The batch being planned.
#[derive(Default)]
pub struct Plan<'a> {
    held: HashMap<String, Held>,
    /// Trace ids claimed by this batch's new sessions, with their owner.
    traces: HashMap<&'a str, (&'a str, &'a str)>,
    /// Evidence ids some earlier write of the batch inserts.
    evidence_seen: HashSet<&'a str>,
    pub rows: Rows<'a>,
}

impl<'a> Plan<'a> {
    /// Existing sessions the batch's writes must lock, sorted and distinct.
    pub fn sessions_to_lock(&self, writes: &[&'a Write]) -> Vec<String> {
        let ids: std::collections::BTreeSet<&str> = writes
            .iter()
            .filter_map(|write| write.locks())
            .filter(|id| !self.held.contains_key(*id))
            .collect();
        ids.into_iter().map(str::to_owned).collect()
    }

    /// Sessions just locked and loaded (one that does not exist is absent),
    /// with their chain (`None`: no chained event yet).
    pub fn hold(&mut self, sessions: Vec<(v1::SessionRecord, Option<Chain>)>) {
        for (record, chain) in sessions {
            let chain = chain.unwrap_or_else(|| Chain::start(&record.session_id));
            self.held
                .insert(record.session_id.clone(), Held::open(record, chain));
        }
    }

    /// A new session, with its first calls when it carries them. A trace id
    /// another (tenant, principal) owns, in the ledger (`owned_elsewhere`)
    /// or earlier in this batch, is replaced by a fresh one, and then the
    /// calls are not recorded (the caller records them under the new
    /// trace). A refusal of the calls refuses the whole write: nothing of it
    /// stays in the plan. Its record is known without reading it back.
    pub fn session(
        &mut self,
        new: &'a NewSession,
        owned_elsewhere: bool,
    ) -> PecrResult<v1::RecordSessionResponse> {
        let trace = self.claim_trace(new, owned_elsewhere);
        let displaced = self.held.remove(&new.session_id);
        let record = self.hold_new_session(new, trace.id(new));
        let calls = match (&new.first_calls, &trace) {
            (Some(calls), Trace::Joined | Trace::Claimed) => calls,
            _ => {
                return Ok(v1::RecordSessionResponse {
                    session: Some(record),
                    first_calls: None,
                });
            }
        };
        match self.operator_call(calls) {
            Ok(response) => {
                self.insert_with_counters(&new.session_id);
                Ok(v1::RecordSessionResponse {
                    session: response.session.clone(),
                    first_calls: Some(response),
                })
            }
            Err(err) => {
                self.drop_new_session(new, &trace, displaced);
                Err(err)
            }
        }
    }

    /// The trace a new session is recorded under, claimed for its owner.
    fn claim_trace(&mut self, new: &'a NewSession, owned_elsewhere: bool) -> Trace {
        let owner = (new.principal_id.as_str(), new.tenant_id.as_str());
        match self.traces.get(new.trace_id.as_str()) {
            _ if owned_elsewhere => Trace::Replaced(ids::new_ulid()),
            Some(other) if *other != owner => Trace::Replaced(ids::new_ulid()),
            Some(_) => Trace::Joined,
            None => {
                self.traces.insert(&new.trace_id, owner);
                Trace::Claimed
            }
        }
    }

    /// Plans a new session's rows and holds it with zero counters, so the
    /// batch's later writes (and its first calls) apply to it.
    fn hold_new_session(&mut self, new: &'a NewSession, trace_id: String) -> v1::SessionRecord {
        let record = v1::SessionRecord {
            session_id: new.session_id.clone(),
            trace_id: trace_id.clone(),
            principal_id: new.principal_id.clone(),
            tenant_id: new.tenant_id.clone(),
            policy_snapshot_id: new.policy_snapshot_id.clone(),
            policy_snapshot_hash: new.policy_snapshot_hash.clone(),
            as_of_time: new.as_of_time.clone(),
            budget: Some(v1::Budget::from(&new.budget)),
            session_token_hash: new.session_token_hash.clone(),
            session_token_expires_at_epoch_ms: new.session_token_expires_at_epoch_ms.unsigned_abs(),
            operator_calls_used: 0,
            bytes_used: 0,
            evidence_unit_ids: Vec::new(),
            finalized: false,
            terminal_mode: v1::TerminalMode::Unspecified as i32,
            principal_attrs_hash: new.principal_attrs_hash.clone(),
        };
        self.rows.sessions.push(SessionRow {
            new,
            trace_id,
            operator_calls_used: 0,
            bytes_used: 0,
            evidence_unit_ids: "[]".to_owned(),
            chain: Chain::start(&new.session_id),
        });
        self.held.insert(
            new.session_id.clone(),
            Held::open(record.clone(), Chain::start(&new.session_id)),
        );
        record
    }

    /// Moves a new session's counters, as its first calls left them, into
    /// its runtime row's insert: the row is then not updated as well.
    fn insert_with_counters(&mut self, session_id: &str) {
        let (Some(held), Some(row)) =
            (self.held.get_mut(session_id), self.rows.sessions.last_mut())
        else {
            return;
        };
        row.operator_calls_used = counter(held.record.operator_calls_used);
        row.bytes_used = counter(held.record.bytes_used);
        row.evidence_unit_ids = evidence_ids_json(&held.record.evidence_unit_ids);
        row.chain = held.chain.clone();
        held.counters_changed = false;
        held.chain_changed = false;
    }

    /// Takes back what [`Self::claim_trace`] and [`Self::hold_new_session`]
    /// planned for a refused session, giving back the entry it `displaced`.
    /// A refused operator call plans nothing, so nothing else of the write
    /// is left in the plan.
    fn drop_new_session(&mut self, new: &NewSession, trace: &Trace, displaced: Option<Held>) {
        self.rows.sessions.pop();
        match displaced {
            Some(held) => self.held.insert(new.session_id.clone(), held),
            None => self.held.remove(&new.session_id),
        };
        if matches!(trace, Trace::Claimed) {
            self.traces.remove(new.trace_id.as_str());
        }
    }

    /// Any write but a new session (see [`Self::session`]).
    pub fn write(&mut self, write: &'a Write) -> PecrResult<Written> {
        match write {
            Write::Session(_) => Err(PecrError::ledger_unavailable()),
            Write::OperatorCall(write) => self.operator_call(write).map(Written::OperatorCall),
            Write::Finalize(write) => self.finalize(write).map(Written::Finalize),
            Write::Event(event) => {
                if !self.held.contains_key(&event.session_id) {
                    return Err(not_found_session());
                }
                Ok(Written::Event(self.event(event)))
            }
            Write::Refusal(refusal) => {
                let refusal_id = ids::new_ulid();
                self.rows.refusals.push(RefusalRow {
                    refusal_id: refusal_id.clone(),
                    refusal,
                });
                Ok(Written::Refusal(refusal_id))
            }
            Write::Replay(replay) => {
                self.rows.replays.push(replay);
                Ok(Written::Replay(replay.run_id.clone()))
            }
            Write::Evaluation(evaluation) => {
                self.rows.evaluations.push(evaluation);
                Ok(Written::Evaluation(evaluation.evaluation_id.clone()))
            }
        }
    }

    /// The runtime rows the batch changed.
    pub fn runtime_rows(&self) -> Vec<RuntimeRow> {
        let changed: BTreeMap<&str, &Held> = self
            .held
            .iter()
            .filter(|(_, held)| held.counters_changed || held.finalized || held.chain_changed)
            .map(|(id, held)| (id.as_str(), held))
            .collect();
        changed
            .into_iter()
            .map(|(id, held)| {
                let counters = held.counters_changed;
                RuntimeRow {
                    session_id: id.to_owned(),
                    operator_calls_used: counters.then(|| counter(held.record.operator_calls_used)),
                    bytes_used: counters.then(|| counter(held.record.bytes_used)),
                    evidence_unit_ids: counters
                        .then(|| evidence_ids_json(&held.record.evidence_unit_ids)),
                    finalized: held.finalized,
                    chain: held.chain_changed.then(|| held.chain.clone()),
                }
            })
            .collect()
    }

    /// A session this write may change: locked by the batch and still open.
    fn open_session(&mut self, session_id: &str) -> PecrResult<&mut Held> {
        let held = self
            .held
            .get_mut(session_id)
            .ok_or_else(not_found_session)?;
        if held.record.finalized {
            return Err(already_finalized());
        }
        Ok(held)
    }

    /// An event row with its id minted now: ids increase, so one write's
    /// events list in the order given and a batch's in the batch's order.
    /// The event is linked to its session's chain head, which it becomes.
    fn event(&mut self, event: &'a NewEvent) -> String {
        let event_id = ids::new_ulid();
        let held = self.held.get_mut(&event.session_id);
        let mut start = None;
        let chain = match held {
            Some(held) => {
                held.chain_changed = true;
                &mut held.chain
            }
            None => start.insert(Chain::start(&event.session_id)),
        };
        let chain_seq = chain.length + 1;
        let chain_hash = crate::chain::chain_hash(&crate::chain::Link {
            session_id: &event.session_id,
            seq: chain_seq,
            event_id: &event_id,
            trace_id: &event.trace_id,
            event_type: &event.event_type,
            principal_id: &event.principal_id,
            policy_snapshot_id: &event.policy_snapshot_id,
            payload_hash: &event.payload_hash,
            prev_chain_hash: &chain.head,
        });
        let prev_chain_hash = std::mem::replace(&mut chain.head, chain_hash.clone());
        chain.length = chain_seq;
        self.rows.events.push(EventRow {
            event_id: event_id.clone(),
            event,
            chain_seq,
            prev_chain_hash,
            chain_hash,
        });
        event_id
    }

    fn operator_call(
        &mut self,
        write: &'a OperatorCallWrite,
    ) -> PecrResult<v1::RecordOperatorCallResponse> {
        let held = self.open_session(&write.session_id)?;
        let session = &held.record;
        if session.trace_id != write.trace_id {
            return Err(PecrError::invalid_params(
                "trace_id does not match the session",
            ));
        }
        check_counters(
            session,
            Some(write.expected_operator_calls_used),
            Some(write.expected_bytes_used),
        )?;
        if write.evidence.iter().any(|unit| {
            unit.policy_snapshot_id != session.policy_snapshot_id
                || unit.policy_snapshot_hash != session.policy_snapshot_hash
                || unit.as_of_time != session.as_of_time
        }) {
            return Err(PecrError::invalid_params(
                "evidence must carry the session's policy snapshot and as_of_time",
            ));
        }

        let mut evidence_ids = session.evidence_unit_ids.clone();
        evidence_ids.extend(
            write
                .evidence
                .iter()
                .map(|unit| unit.evidence_unit_id.clone()),
        );
        evidence_ids.sort_unstable();
        evidence_ids.dedup();
        held.record.operator_calls_used = write.operator_calls_used.unsigned_abs();
        held.record.bytes_used = write.bytes_used.unsigned_abs();
        held.record.evidence_unit_ids = evidence_ids;
        held.counters_changed = true;
        let session = held.record.clone();

        // Units first inserted by this write; the ledger keeps the first
        // writer's row, so a unit an earlier write of the batch (or the
        // ledger) holds is not new here.
        let mut candidates = Vec::new();
        for unit in &write.evidence {
            if self.evidence_seen.insert(&unit.evidence_unit_id) {
                candidates.push(unit.evidence_unit_id.clone());
                self.rows.evidence.push(EvidenceRow {
                    unit,
                    trace_id: &write.trace_id,
                    session_id: &write.session_id,
                    store_content: write.store_content,
                });
            }
        }
        let event_ids = write.events.iter().map(|event| self.event(event)).collect();
        Ok(v1::RecordOperatorCallResponse {
            event_ids,
            // Narrowed to the units the ledger did not hold yet once the
            // insert has answered (see `keep_inserted`).
            inserted_evidence_unit_ids: candidates,
            session: Some(session),
        })
    }

    fn finalize(&mut self, write: &'a FinalizeWrite) -> PecrResult<v1::RecordFinalizeResponse> {
        let held = self.open_session(&write.session_id)?;
        let session = &held.record;
        check_counters(
            session,
            write.expected_operator_calls_used,
            write.expected_bytes_used,
        )?;
        if write
            .cited_evidence_ids
            .iter()
            .any(|id| session.evidence_unit_ids.binary_search(id).is_err())
        {
            return Err(PecrError::invalid_params(
                "claim_map cites evidence not emitted in this session",
            ));
        }
        if let Some(replay) = &write.replay {
            check_replay_owner(session, replay)?;
        }
        held.record.finalized = true;
        held.record.terminal_mode = v1::TerminalMode::from_str_name(write.terminal_mode)
            .unwrap_or(v1::TerminalMode::Unspecified) as i32;
        held.finalized = true;
        let session = held.record.clone();

        self.rows
            .finalized
            .push((&write.session_id, write.terminal_mode));
        for event in &write.events {
            self.event(event);
        }
        let event_id = self.event(&write.event);
        let sealed = self
            .held
            .get(&write.session_id)
            .map(|held| held.chain.clone())
            .unwrap_or_else(|| Chain::start(&write.session_id));
        self.rows.claim_maps.push(ClaimMapRow {
            write,
            trace_id: session.trace_id.clone(),
            sealed,
        });
        let run_id = match &write.replay {
            Some(replay) => {
                self.rows.replays.push(replay);
                replay.run_id.clone()
            }
            None => String::new(),
        };
        Ok(v1::RecordFinalizeResponse {
            event_id,
            session: Some(session),
            run_id,
        })
    }
}

/// Drops from an operator call's answer (a new session's first calls
/// included) the units the ledger already held.
pub fn keep_inserted(written: &mut Written, inserted: &HashSet<String>) {
    let response = match written {
        Written::OperatorCall(response) => response,
        Written::Session(response) => match response.first_calls.as_mut() {
            Some(first_calls) => first_calls,
            None => return,
        },
        _ => return,
    };
    response
        .inserted_evidence_unit_ids
        .retain(|id| inserted.contains(id));
}

/// The evidence ids as the JSON array text the runtime row stores.
fn evidence_ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

fn counter(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The compare-and-set on the session counters: a caller that read them
/// before another writer moved them must reload and retry.
fn check_counters(
    session: &v1::SessionRecord,
    operator_calls_used: Option<i64>,
    bytes_used: Option<i64>,
) -> PecrResult<()> {
    let moved = |expected: Option<i64>, stored: u64| expected.is_some_and(|e| e != counter(stored));
    if moved(operator_calls_used, session.operator_calls_used)
        || moved(bytes_used, session.bytes_used)
    {
        return Err(PecrError::invalid_params(
            "session counters changed concurrently; reload the session",
        )
        .with_http(409)
        .with_retryable(true));
    }
    Ok(())
}

/// A finalize's replay belongs to the session's tenant and principal.
fn check_replay_owner(session: &v1::SessionRecord, replay: &NewReplay) -> PecrResult<()> {
    if replay.tenant_id != session.tenant_id {
        return Err(PecrError::invalid_params(
            "replay.tenant_id must be the session's tenant",
        ));
    }
    if replay.principal_id_hash != pecr_contracts::hashing::principal_id_hash(&session.principal_id)
    {
        return Err(PecrError::invalid_params(
            "replay.bundle.metadata.principal_id_hash must be the session principal's hash",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_contracts::Budget;
    use serde_json::json;

    const SNAPSHOT_HASH: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn new_session(session_id: &str, trace_id: &str, principal: &str) -> Write {
        Write::Session(Box::new(NewSession {
            session_id: session_id.into(),
            trace_id: trace_id.into(),
            policy_snapshot_id: format!("ps-{session_id}"),
            policy_snapshot_hash: SNAPSHOT_HASH.into(),
            principal_id: principal.into(),
            tenant_id: "local".into(),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            policy_bundle_hash: "b".repeat(64),
            snapshot_json: json!({}),
            principal_attrs_hash: "a".repeat(64),
            budget: Budget {
                max_operator_calls: 10,
                max_bytes: 1024,
                max_wallclock_ms: 1000,
                max_recursion_depth: 1,
                max_parallelism: None,
            },
            session_token_hash: "c".repeat(64),
            session_token_expires_at_epoch_ms: 4_102_444_800_000,
            first_calls: None,
        }))
    }

    /// A new session of `principal` on `trace_id` whose first call emits `units`.
    fn session_with_calls(
        session_id: &str,
        trace_id: &str,
        principal: &str,
        units: &[&str],
    ) -> Write {
        let Write::Session(mut new) = new_session(session_id, trace_id, principal) else {
            unreachable!()
        };
        let Write::OperatorCall(mut calls) = call(session_id, 0, units) else {
            unreachable!()
        };
        calls.trace_id = trace_id.into();
        new.first_calls = Some(calls);
        Write::Session(new)
    }

    /// [`session_with_calls`] whose evidence carries another session's
    /// snapshot, which the planner refuses.
    fn session_with_refused_calls(session_id: &str, trace_id: &str, principal: &str) -> Write {
        let mut write = session_with_calls(session_id, trace_id, principal, &["foreign"]);
        if let Write::Session(new) = &mut write
            && let Some(calls) = new.first_calls.as_mut()
        {
            calls.evidence[0].policy_snapshot_id = "ps-elsewhere".into();
        }
        write
    }

    fn plan_session<'a>(
        plan: &mut Plan<'a>,
        write: &'a Write,
        owned_elsewhere: bool,
    ) -> PecrResult<v1::RecordSessionResponse> {
        match write {
            Write::Session(new) => plan.session(new, owned_elsewhere),
            _ => unreachable!(),
        }
    }

    /// A stored, open session as the load returns it.
    fn stored(session_id: &str, calls: u64, evidence: &[&str]) -> v1::SessionRecord {
        v1::SessionRecord {
            session_id: session_id.into(),
            trace_id: format!("trace-{session_id}"),
            principal_id: "dev".into(),
            tenant_id: "local".into(),
            policy_snapshot_id: format!("ps-{session_id}"),
            policy_snapshot_hash: SNAPSHOT_HASH.into(),
            as_of_time: "1970-01-01T00:00:00Z".into(),
            operator_calls_used: calls,
            bytes_used: calls * 100,
            evidence_unit_ids: evidence.iter().map(|id| (*id).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn event(session_id: &str, event_type: &str) -> NewEvent {
        NewEvent {
            trace_id: format!("trace-{session_id}"),
            session_id: session_id.into(),
            event_type: event_type.into(),
            principal_id: "dev".into(),
            policy_snapshot_id: format!("ps-{session_id}"),
            payload: json!({}),
            payload_hash: "d".repeat(64),
        }
    }

    fn unit(session_id: &str, id: &str) -> NewEvidence {
        NewEvidence {
            evidence_unit_id: id.into(),
            source_system: "fs_corpus".into(),
            object_id: "a.txt".into(),
            version_id: "v".into(),
            span_or_row_spec: json!({}),
            content_type: "text/plain".into(),
            content_hash: "e".repeat(64),
            content: None,
            as_of_time: "1970-01-01T00:00:00Z".into(),
            retrieved_at: "1970-01-01T00:00:00Z".into(),
            policy_snapshot_id: format!("ps-{session_id}"),
            policy_snapshot_hash: SNAPSHOT_HASH.into(),
            transform_chain: json!([]),
        }
    }

    fn call(session_id: &str, from: i64, units: &[&str]) -> Write {
        Write::OperatorCall(Box::new(OperatorCallWrite {
            session_id: session_id.into(),
            trace_id: format!("trace-{session_id}"),
            evidence: units.iter().map(|id| unit(session_id, id)).collect(),
            events: vec![event(session_id, "OPERATOR_CALL")],
            expected_operator_calls_used: from,
            expected_bytes_used: from * 100,
            operator_calls_used: from + 1,
            bytes_used: (from + 1) * 100,
            store_content: false,
        }))
    }

    fn finalize(session_id: &str, replay: Option<NewReplay>) -> FinalizeWrite {
        FinalizeWrite {
            session_id: session_id.into(),
            claim_map_id: format!("cm-{session_id}"),
            terminal_mode: "SUPPORTED",
            coverage_threshold: 0.95,
            coverage_observed: 1.0,
            claim_map_json: json!({}),
            cited_evidence_ids: Vec::new(),
            events: vec![event(session_id, "POLICY_DECISION")],
            event: event(session_id, "FINALIZE_RESULT"),
            expected_operator_calls_used: None,
            expected_bytes_used: None,
            replay,
        }
    }

    fn replay(tenant: &str, principal: &str) -> NewReplay {
        NewReplay {
            tenant_id: tenant.into(),
            run_id: "run-1".into(),
            principal_id_hash: pecr_contracts::hashing::principal_id_hash(principal),
            engine_mode: "baseline".into(),
            recorded_at_unix_ms: 1,
            terminal_mode: "SUPPORTED".into(),
            quality_score: 1.0,
            bundle_hash: "f".repeat(64),
            canonical_text: "{}".into(),
            session_id: None,
        }
    }

    fn status(result: &PecrResult<Written>) -> (u16, bool) {
        match result {
            Ok(_) => (200, false),
            Err(err) => (err.http_status, err.retryable),
        }
    }

    #[test]
    fn a_trace_is_claimed_once_per_owner_within_a_batch() {
        let writes = [
            new_session("s1", "t", "dev"),
            new_session("s2", "t", "dev"),
            new_session("s3", "t", "support"),
            new_session("s4", "u", "dev"),
        ];
        let mut plan = Plan::default();
        let traces: Vec<String> = writes
            .iter()
            .zip([false, false, false, true])
            .map(|(write, owned_elsewhere)| {
                let response = plan_session(&mut plan, write, owned_elsewhere).expect("recorded");
                response.session.expect("session").trace_id
            })
            .collect();
        assert_eq!(traces[0], "t");
        assert_eq!(traces[1], "t", "the same owner joins its trace");
        assert_ne!(traces[2], "t", "another principal gets a fresh trace");
        assert_ne!(traces[3], "u", "a trace owned in the ledger is replaced");
        assert_eq!(plan.rows.sessions.len(), 4);
        assert!(
            plan.runtime_rows().is_empty(),
            "new runtime rows are inserted"
        );
    }

    #[test]
    fn a_sessions_first_calls_are_planned_right_after_it() {
        let write = session_with_calls("s", "t", "dev", &["u2", "u1"]);
        let mut plan = Plan::default();
        let response = plan_session(&mut plan, &write, false).expect("recorded");
        let first_calls = response.first_calls.expect("first calls recorded");
        let session = response.session.expect("session");
        assert_eq!(first_calls.session.as_ref(), Some(&session));
        assert_eq!(
            (
                session.trace_id.as_str(),
                session.operator_calls_used,
                session.bytes_used
            ),
            ("t", 1, 100)
        );
        assert_eq!(session.evidence_unit_ids, ["u1", "u2"]);
        let event_ids: Vec<&str> = plan
            .rows
            .events
            .iter()
            .map(|row| row.event_id.as_str())
            .collect();
        assert_eq!(first_calls.event_ids, event_ids);
        assert_eq!(first_calls.inserted_evidence_unit_ids, ["u2", "u1"]);
        assert_eq!(plan.rows.sessions.len(), 1);
        assert!(plan.rows.evidence.iter().all(|row| row.trace_id == "t"));
        let inserted = &plan.rows.sessions[0];
        assert_eq!(
            (
                inserted.operator_calls_used,
                inserted.bytes_used,
                inserted.evidence_unit_ids.as_str()
            ),
            (1, 100, r#"["u1","u2"]"#),
            "the new runtime row is inserted with the calls' counters"
        );
        assert!(
            plan.runtime_rows().is_empty(),
            "and is not updated in the same transaction"
        );

        let mut written = Written::Session(Box::new(v1::RecordSessionResponse {
            session: Some(session),
            first_calls: Some(first_calls),
        }));
        keep_inserted(&mut written, &["u1".to_owned()].into());
        let Written::Session(response) = written else {
            unreachable!()
        };
        let first_calls = response.first_calls.expect("first calls");
        assert_eq!(
            first_calls.inserted_evidence_unit_ids,
            ["u1"],
            "the ledger already held u2"
        );
    }

    #[test]
    fn first_calls_on_a_replaced_trace_are_not_planned() {
        let owned = session_with_calls("s1", "t", "dev", &["u1"]);
        let claimed = new_session("s2", "u", "support");
        let joined_by_another = session_with_calls("s3", "u", "dev", &["u3"]);
        let mut plan = Plan::default();
        for (write, owned_elsewhere) in [
            (&owned, true),
            (&claimed, false),
            (&joined_by_another, false),
        ] {
            let response = plan_session(&mut plan, write, owned_elsewhere).expect("recorded");
            assert!(response.first_calls.is_none());
            let session = response.session.expect("session");
            assert_eq!(
                (session.operator_calls_used, session.evidence_unit_ids.len()),
                (0, 0)
            );
        }
        assert_eq!(plan.rows.sessions.len(), 3, "each session is recorded");
        assert!(plan.rows.events.is_empty() && plan.rows.evidence.is_empty());
        assert!(plan.runtime_rows().is_empty());
    }

    #[test]
    fn refused_first_calls_take_their_session_back_and_leave_the_batch_alone() {
        let writes = [
            new_session("s1", "t", "dev"),
            session_with_refused_calls("s2", "t", "dev"),
            session_with_refused_calls("s3", "v", "dev"),
            new_session("s4", "v", "support"),
            session_with_calls("s5", "w", "dev", &["u5"]),
        ];
        let mut plan = Plan::default();
        let answers: Vec<_> = writes
            .iter()
            .map(|write| plan_session(&mut plan, write, false))
            .collect();
        let refused = answers[1].as_ref().map(|_| ()).expect_err("refused");
        assert_eq!(
            (refused.http_status, refused.message.as_str()),
            (
                400,
                "evidence must carry the session's policy snapshot and as_of_time"
            )
        );
        assert!(answers[2].is_err());
        let traces: Vec<String> = [&answers[0], &answers[3], &answers[4]]
            .iter()
            .map(|answer| {
                let response = answer.as_ref().expect("recorded");
                response.session.as_ref().expect("session").trace_id.clone()
            })
            .collect();
        assert_eq!(
            traces,
            ["t", "v", "w"],
            "a refused session's trace claim is taken back"
        );
        let sessions: Vec<&str> = plan
            .rows
            .sessions
            .iter()
            .map(|row| row.new.session_id.as_str())
            .collect();
        assert_eq!(sessions, ["s1", "s4", "s5"]);
        let evidence: Vec<&str> = plan
            .rows
            .evidence
            .iter()
            .map(|row| row.unit.evidence_unit_id.as_str())
            .collect();
        assert_eq!(evidence, ["u5"], "only the accepted calls' rows");
        assert_eq!(plan.rows.events.len(), 1);
        let later = call("s2", 0, &[]);
        assert_eq!(
            status(&plan.write(&later)),
            (404, false),
            "a later write of the batch does not find the refused session"
        );
        assert_eq!(
            plan.sessions_to_lock(&[&later]),
            ["s2"],
            "it is looked up in the ledger instead"
        );
    }

    #[test]
    fn a_refused_session_gives_back_the_batch_session_it_displaced() {
        let first = new_session("s", "trace-s", "dev");
        let again = session_with_refused_calls("s", "trace-s", "dev");
        let mut plan = Plan::default();
        plan_session(&mut plan, &first, false).expect("recorded");
        assert!(plan_session(&mut plan, &again, false).is_err());
        assert_eq!(plan.rows.sessions.len(), 1);
        let next = call("s", 0, &[]);
        let Ok(Written::OperatorCall(response)) = plan.write(&next) else {
            panic!("the first session is still held")
        };
        assert_eq!(response.session.map(|s| s.operator_calls_used), Some(1));
    }

    #[test]
    fn a_batch_applies_one_sessions_writes_in_order_and_refuses_the_stale_one() {
        let writes = [call("s", 2, &[]), call("s", 2, &[]), call("s", 3, &[])];
        let mut plan = Plan::default();
        plan.hold(vec![(stored("s", 2, &[]), None)]);
        let answers: Vec<_> = writes.iter().map(|write| plan.write(write)).collect();
        assert_eq!(
            answers.iter().map(status).collect::<Vec<_>>(),
            [(200, false), (409, true), (200, false)],
            "the second racer lost to the first, the third read the first's result"
        );
        let rows = plan.runtime_rows();
        assert_eq!(rows.len(), 1, "one runtime update per session");
        assert_eq!(
            (rows[0].operator_calls_used, rows[0].bytes_used),
            (Some(4), Some(400))
        );
        assert_eq!(plan.rows.events.len(), 2, "the refused write adds no row");
    }

    #[test]
    fn unknown_and_finalized_sessions_are_refused_without_rows() {
        let mut finalized = stored("done", 0, &[]);
        finalized.finalized = true;
        let mut plan = Plan::default();
        plan.hold(vec![(finalized, None)]);
        let writes = [
            call("nope", 0, &[]),
            call("done", 0, &[]),
            Write::Event(Box::new(event("nope", "POLICY_DECISION"))),
        ];
        let answers: Vec<_> = writes.iter().map(|write| plan.write(write)).collect();
        let messages: Vec<String> = answers
            .iter()
            .map(|answer| {
                answer
                    .as_ref()
                    .map(|_| ())
                    .expect_err("refused")
                    .message
                    .clone()
            })
            .collect();
        assert_eq!(
            messages,
            [
                "unknown session_id",
                "session already finalized",
                "unknown session_id"
            ]
        );
        assert_eq!(status(&answers[0]), (404, false));
        assert!(plan.rows.events.is_empty() && plan.runtime_rows().is_empty());
    }

    #[test]
    fn evidence_is_new_only_for_its_first_writer() {
        let writes = [call("a", 0, &["u1", "u2"]), call("b", 0, &["u2", "u3"])];
        let mut plan = Plan::default();
        plan.hold(vec![
            (stored("a", 0, &[]), None),
            (stored("b", 0, &[]), None),
        ]);
        let mut answers: Vec<_> = writes
            .iter()
            .map(|write| plan.write(write).expect("accepted"))
            .collect();
        let ids: Vec<&str> = plan
            .rows
            .evidence
            .iter()
            .map(|row| row.unit.evidence_unit_id.as_str())
            .collect();
        assert_eq!(ids, ["u1", "u2", "u3"], "each unit is sent once");
        // The ledger already held u1.
        let inserted: HashSet<String> = ["u2", "u3"].map(String::from).into();
        for answer in &mut answers {
            keep_inserted(answer, &inserted);
        }
        let new_ids = |written: &Written| match written {
            Written::OperatorCall(response) => response.inserted_evidence_unit_ids.clone(),
            _ => unreachable!(),
        };
        assert_eq!(new_ids(&answers[0]), ["u2"]);
        assert_eq!(new_ids(&answers[1]), ["u3"]);
        let Written::OperatorCall(second) = &answers[1] else {
            unreachable!()
        };
        assert_eq!(
            second.session.as_ref().map(|s| s.evidence_unit_ids.clone()),
            Some(vec!["u2".to_owned(), "u3".to_owned()]),
            "a session lists every unit it emitted, new to the ledger or not"
        );
    }

    #[test]
    fn a_finalize_writes_its_events_in_order_and_changes_only_the_runtime_flag() {
        let write = Write::Finalize(Box::new(finalize("s", Some(replay("local", "dev")))));
        let mut plan = Plan::default();
        plan.hold(vec![(stored("s", 3, &[]), None)]);
        let Ok(Written::Finalize(response)) = plan.write(&write) else {
            panic!("accepted")
        };
        assert_eq!(response.run_id, "run-1");
        let session = response.session.expect("session");
        assert!(session.finalized);
        assert_eq!(session.terminal_mode, v1::TerminalMode::Supported as i32);
        let types: Vec<&str> = plan
            .rows
            .events
            .iter()
            .map(|row| row.event.event_type.as_str())
            .collect();
        assert_eq!(types, ["POLICY_DECISION", "FINALIZE_RESULT"]);
        assert!(plan.rows.events[0].event_id < plan.rows.events[1].event_id);
        assert_eq!(plan.rows.events[1].event_id, response.event_id);
        let rows = plan.runtime_rows();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].finalized);
        assert_eq!(
            (
                rows[0].operator_calls_used,
                rows[0].evidence_unit_ids.as_deref()
            ),
            (None, None),
            "a finalize leaves the stored counters and evidence list as they are"
        );
        assert_eq!(plan.rows.replays.len(), 1);
        // Nothing more may follow in the same batch.
        let late = call("s", 3, &[]);
        assert_eq!(
            plan.write(&late).map(|_| ()).expect_err("refused").message,
            "session already finalized"
        );
    }

    #[test]
    fn a_finalize_checks_its_counters_and_its_replays_owner() {
        let mut stale = finalize("s", None);
        stale.expected_operator_calls_used = Some(2);
        let mut bytes_only = finalize("s", None);
        bytes_only.expected_bytes_used = Some(200);
        let cases = [
            (stale, (409, true)),
            (finalize("s", Some(replay("other", "dev"))), (400, false)),
            (
                finalize("s", Some(replay("local", "support"))),
                (400, false),
            ),
        ];
        for (write, expected) in cases {
            let write = Write::Finalize(Box::new(write));
            let mut plan = Plan::default();
            plan.hold(vec![(stored("s", 3, &[]), None)]);
            assert_eq!(status(&plan.write(&write)), expected);
            assert!(plan.rows.events.is_empty() && plan.rows.replays.is_empty());
            assert!(plan.runtime_rows().is_empty(), "a refusal changes nothing");
        }
        let mut plan = Plan::default();
        plan.hold(vec![(stored("s", 2, &[]), None)]);
        let write = Write::Finalize(Box::new(bytes_only));
        assert_eq!(status(&plan.write(&write)), (200, false));
    }

    #[test]
    fn writes_order_sessions_first_then_by_session() {
        let mut writes = [
            Write::Event(Box::new(event("b", "POLICY_DECISION"))),
            call("a", 0, &[]),
            new_session("z", "t2", "dev"),
            call("b", 0, &[]),
            new_session("y", "t1", "dev"),
        ];
        writes.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let order: Vec<(&str, &str)> = writes
            .iter()
            .map(|write| (write.operation(), write.order_key().1))
            .collect();
        assert_eq!(
            order,
            [
                ("record_session", "t1"),
                ("record_session", "t2"),
                ("record_operator_call", "a"),
                ("append_event", "b"),
                ("record_operator_call", "b"),
            ]
        );
    }
}

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
    Session(v1::SessionRecord),
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
}

pub struct ClaimMapRow<'a> {
    pub write: &'a FinalizeWrite,
    pub trace_id: String,
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

    /// Sessions just locked and loaded (one that does not exist is absent).
    pub fn hold(&mut self, sessions: Vec<v1::SessionRecord>) {
        for record in sessions {
            self.held.insert(
                record.session_id.clone(),
                Held {
                    record,
                    counters_changed: false,
                    finalized: false,
                },
            );
        }
    }

    /// A new session. A trace id another (tenant, principal) owns, in the
    /// ledger (`owned_elsewhere`) or earlier in this batch, is replaced by a
    /// fresh one. Its record is known without reading it back.
    pub fn session(&mut self, new: &'a NewSession, owned_elsewhere: bool) -> v1::SessionRecord {
        let owner = (new.principal_id.as_str(), new.tenant_id.as_str());
        let claimed = self.traces.get(new.trace_id.as_str());
        let trace_id = if owned_elsewhere || claimed.is_some_and(|other| *other != owner) {
            ids::new_ulid()
        } else {
            self.traces.insert(&new.trace_id, owner);
            new.trace_id.clone()
        };
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
        self.rows.sessions.push(SessionRow { new, trace_id });
        self.held.insert(
            new.session_id.clone(),
            Held {
                record: record.clone(),
                counters_changed: false,
                finalized: false,
            },
        );
        record
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
            .filter(|(_, held)| held.counters_changed || held.finalized)
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
                    evidence_unit_ids: counters.then(|| {
                        serde_json::Value::from(held.record.evidence_unit_ids.clone()).to_string()
                    }),
                    finalized: held.finalized,
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
    fn event(&mut self, event: &'a NewEvent) -> String {
        let event_id = ids::new_ulid();
        self.rows.events.push(EventRow {
            event_id: event_id.clone(),
            event,
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

        self.rows.claim_maps.push(ClaimMapRow {
            write,
            trace_id: session.trace_id.clone(),
        });
        self.rows
            .finalized
            .push((&write.session_id, write.terminal_mode));
        for event in &write.events {
            self.event(event);
        }
        let event_id = self.event(&write.event);
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

/// Drops from an operator call's answer the units the ledger already held.
pub fn keep_inserted(written: &mut Written, inserted: &HashSet<String>) {
    if let Written::OperatorCall(response) = written {
        response
            .inserted_evidence_unit_ids
            .retain(|id| inserted.contains(id));
    }
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

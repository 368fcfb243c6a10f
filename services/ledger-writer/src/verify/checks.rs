//! What `verify` recomputes for one row, with the contract's recipes: no
//! database here, so each rule is tested on its own.

use std::fmt;

use pecr_contracts::hash_canonical_json;
use pecr_contracts::hashing::{
    EvidenceIdentity, TransformStep, claim_id, evidence_unit_id, text_content_hash,
};
use serde_json::Value;

use crate::chain::{Link, chain_hash, genesis};

/// The first item that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub table: &'static str,
    pub id: String,
    pub session_id: String,
    pub what: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} id={}", self.table, self.id)?;
        if !self.session_id.is_empty() {
            write!(f, " session={}", self.session_id)?;
        }
        write!(f, ": {}", self.what)
    }
}

pub const EVENTS: &str = "pecr_ledger_events";
pub const EVIDENCE: &str = "pecr_evidence_units";
pub const CLAIM_MAPS: &str = "pecr_claim_maps";
pub const RUNTIME: &str = "pecr_session_runtime";

fn broken(table: &'static str, id: &str, session_id: &str, what: String) -> Broken {
    Broken {
        table,
        id: id.to_owned(),
        session_id: session_id.to_owned(),
        what,
    }
}

/// A stored event as `verify` reads it.
pub struct StoredEvent {
    pub event_id: String,
    pub trace_id: String,
    pub session_id: String,
    pub event_type: String,
    pub principal_id: String,
    pub policy_snapshot_id: String,
    pub payload_json: String,
    pub payload_hash: String,
    pub chain_seq: Option<i64>,
    pub prev_chain_hash: Option<String>,
    pub chain_hash: Option<String>,
}

/// The recorded chain state of an event's session: the runtime row's head
/// and the finalize record's seal.
#[derive(Clone, Default)]
pub struct SessionChain {
    pub head: Option<String>,
    pub length: Option<i64>,
    pub claim_map_id: Option<String>,
    pub sealed_head: Option<String>,
    pub sealed_length: Option<i64>,
}

/// The payload hash of an event, recomputed from the stored JSON.
pub fn event_payload(event: &StoredEvent) -> Result<(), Broken> {
    let computed = serde_json::from_str::<Value>(&event.payload_json)
        .map(|value| hash_canonical_json(&value))
        .map_err(|err| {
            broken(
                EVENTS,
                &event.event_id,
                &event.session_id,
                format!("payload is not JSON: {err}"),
            )
        })?;
    if computed != event.payload_hash {
        return Err(broken(
            EVENTS,
            &event.event_id,
            &event.session_id,
            format!(
                "payload hash differs: stored {}, payload hashes to {computed}",
                event.payload_hash
            ),
        ));
    }
    Ok(())
}

/// Walks the events of one session after another, in chain order
/// (unchained events first), checking every link.
#[derive(Default)]
pub struct ChainWalk {
    session: Option<(String, SessionChain)>,
    /// The last chained event of the current session: seq, hash, event id.
    last: Option<(i64, String, String)>,
    /// Whether the current session's seal was met at its position.
    sealed_seen: bool,
    pub sessions: u64,
    pub chained: u64,
    pub unchained: u64,
}

impl ChainWalk {
    /// The next event in (session, chain seq, event id) order.
    pub fn event(&mut self, event: &StoredEvent, chain: &SessionChain) -> Result<(), Broken> {
        if self.session.as_ref().map(|(id, _)| id.as_str()) != Some(event.session_id.as_str()) {
            self.finish()?;
            self.session = Some((event.session_id.clone(), chain.clone()));
            self.last = None;
            self.sealed_seen = false;
            self.sessions += 1;
        }
        let (seq, prev, stored) = match (
            event.chain_seq,
            event.prev_chain_hash.as_deref(),
            event.chain_hash.as_deref(),
        ) {
            (None, None, None) => {
                if self.last.is_some() {
                    return Err(self.broken_event(event, "unchained event inside a chain".into()));
                }
                self.unchained += 1;
                return Ok(());
            }
            (Some(seq), Some(prev), Some(stored)) => (seq, prev, stored),
            _ => {
                return Err(self.broken_event(event, "chain columns only partly set".into()));
            }
        };
        let (expected_seq, expected_prev) = match &self.last {
            Some((last_seq, last_hash, _)) => (last_seq + 1, last_hash.clone()),
            None => (1, genesis(&event.session_id)),
        };
        if seq != expected_seq {
            let after = match &self.last {
                Some((last_seq, _, last_id)) => format!("seq {last_seq} (event {last_id})"),
                None => "the chain's start".to_owned(),
            };
            return Err(self.broken_event(
                event,
                format!(
                    "chain_seq {seq} follows {after}: expected seq {expected_seq}; an event is missing or reordered"
                ),
            ));
        }
        if prev != expected_prev {
            return Err(self.broken_event(
                event,
                format!(
                    "prev_chain_hash {prev} differs from the previous chain hash {expected_prev}"
                ),
            ));
        }
        let computed = chain_hash(&Link {
            session_id: &event.session_id,
            seq,
            event_id: &event.event_id,
            trace_id: &event.trace_id,
            event_type: &event.event_type,
            principal_id: &event.principal_id,
            policy_snapshot_id: &event.policy_snapshot_id,
            payload_hash: &event.payload_hash,
            prev_chain_hash: prev,
        });
        if computed != stored {
            return Err(self.broken_event(
                event,
                format!("chain hash differs: stored {stored}, recomputed {computed}"),
            ));
        }
        if chain.sealed_length == Some(seq) {
            if chain.sealed_head.as_deref() != Some(stored) {
                return Err(broken(
                    CLAIM_MAPS,
                    chain.claim_map_id.as_deref().unwrap_or(""),
                    &event.session_id,
                    format!(
                        "sealed chain head {} differs from the chain hash {stored} of event {} at seq {seq}",
                        chain.sealed_head.as_deref().unwrap_or("(none)"),
                        event.event_id
                    ),
                ));
            }
            self.sealed_seen = true;
        }
        self.chained += 1;
        self.last = Some((seq, stored.to_owned(), event.event_id.clone()));
        Ok(())
    }

    /// Ends the current session: its recorded head and seal must be the
    /// chain just walked.
    pub fn finish(&mut self) -> Result<(), Broken> {
        let Some((session_id, chain)) = self.session.take() else {
            return Ok(());
        };
        let (length, head) = match &self.last {
            Some((seq, hash, _)) => (Some(*seq), Some(hash.as_str())),
            None => (None, None),
        };
        if chain.length.filter(|length| *length > 0) != length || chain.head.as_deref() != head {
            return Err(broken(
                RUNTIME,
                &session_id,
                &session_id,
                format!(
                    "recorded chain head {} at length {} differs from the events' chain {} at length {}",
                    chain.head.as_deref().unwrap_or("(none)"),
                    chain.length.unwrap_or(0),
                    head.unwrap_or("(none)"),
                    length.unwrap_or(0)
                ),
            ));
        }
        if chain.sealed_length.is_some() && !self.sealed_seen {
            return Err(broken(
                CLAIM_MAPS,
                chain.claim_map_id.as_deref().unwrap_or(""),
                &session_id,
                format!(
                    "sealed chain length {} has no event at that position",
                    chain.sealed_length.unwrap_or(0)
                ),
            ));
        }
        Ok(())
    }

    fn broken_event(&self, event: &StoredEvent, what: String) -> Broken {
        broken(EVENTS, &event.event_id, &event.session_id, what)
    }
}

/// A stored evidence unit as `verify` reads it.
pub struct StoredEvidence {
    pub evidence_unit_id: String,
    pub session_id: String,
    pub source_system: String,
    pub object_id: String,
    pub version_id: String,
    pub span_or_row_spec_json: String,
    pub content_type: String,
    pub content_hash: String,
    pub as_of_time: String,
    pub policy_snapshot_hash: String,
    pub transform_chain_json: String,
    pub payload_json: Option<String>,
}

/// The unit's content hash (when its content is stored) and its id.
pub fn evidence(unit: &StoredEvidence) -> Result<(), Broken> {
    let fail = |what: String| broken(EVIDENCE, &unit.evidence_unit_id, &unit.session_id, what);
    let json = |name: &str, text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|err| fail(format!("{name} is not JSON: {err}")))
    };
    if let Some(payload) = &unit.payload_json {
        let content = json("content", payload)?;
        let computed = match (unit.content_type.as_str(), &content) {
            ("text/plain", Value::String(text)) => text_content_hash(text),
            _ => hash_canonical_json(&content),
        };
        if computed != unit.content_hash {
            return Err(fail(format!(
                "content hash differs: stored {}, content hashes to {computed}",
                unit.content_hash
            )));
        }
    }
    let span = json("span_or_row_spec", &unit.span_or_row_spec_json)?;
    let steps = transform_steps(&json("transform_chain", &unit.transform_chain_json)?)
        .ok_or_else(|| fail("transform_chain is not a list of steps".to_owned()))?;
    let computed = evidence_unit_id(&EvidenceIdentity {
        source_system: &unit.source_system,
        object_id: &unit.object_id,
        version_id: &unit.version_id,
        span_or_row_spec: &span,
        content_hash: &unit.content_hash,
        as_of_time: &unit.as_of_time,
        policy_snapshot_hash: &unit.policy_snapshot_hash,
        transform_chain: &steps,
    });
    if computed != unit.evidence_unit_id {
        return Err(fail(format!(
            "evidence unit id differs from its identity, which hashes to {computed}"
        )));
    }
    Ok(())
}

/// The steps of a stored transform chain (as [`TransformStep::to_json`]
/// wrote them).
fn transform_steps(chain: &Value) -> Option<Vec<TransformStep>> {
    chain
        .as_array()?
        .iter()
        .map(|step| {
            Some(TransformStep {
                transform_type: step.get("transform_type")?.as_str()?.to_owned(),
                transform_hash: step.get("transform_hash")?.as_str()?.to_owned(),
                params: step.get("params").cloned(),
            })
        })
        .collect()
}

/// A stored claim map as `verify` reads it.
pub struct StoredClaimMap {
    pub claim_map_id: String,
    pub session_id: String,
    pub terminal_mode: String,
    pub claim_map_json: String,
}

/// The claim map names its row's id and mode, and each claim's id is the
/// hash of its text, status and evidence.
pub fn claim_map(map: &StoredClaimMap) -> Result<(), Broken> {
    let fail = |what: String| broken(CLAIM_MAPS, &map.claim_map_id, &map.session_id, what);
    let value = serde_json::from_str::<Value>(&map.claim_map_json)
        .map_err(|err| fail(format!("claim map is not JSON: {err}")))?;
    if value.get("claim_map_id").and_then(Value::as_str) != Some(map.claim_map_id.as_str()) {
        return Err(fail("claim_map_json names another claim_map_id".to_owned()));
    }
    if value.get("terminal_mode").and_then(Value::as_str) != Some(map.terminal_mode.as_str()) {
        return Err(fail(
            "claim_map_json's terminal_mode differs from the row's".to_owned(),
        ));
    }
    let claims = value
        .get("claims")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("claim_map_json has no claims list".to_owned()))?;
    for (index, claim) in claims.iter().enumerate() {
        let text = |name: &str| claim.get(name).and_then(Value::as_str).unwrap_or_default();
        let ids: Vec<String> = claim
            .get("evidence_unit_ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let computed = claim_id(text("claim_text"), text("status"), &ids);
        if computed != text("claim_id") {
            return Err(fail(format!(
                "claims[{index}].claim_id {} differs from its claim, which hashes to {computed}",
                text("claim_id")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chained(session_id: &str, seq: i64, prev: &str) -> StoredEvent {
        let mut event = StoredEvent {
            event_id: format!("e-{seq}"),
            trace_id: "t".into(),
            session_id: session_id.into(),
            event_type: "OPERATOR_CALL".into(),
            principal_id: "p".into(),
            policy_snapshot_id: "ps".into(),
            payload_json: "{}".into(),
            payload_hash: hash_canonical_json(&serde_json::json!({})),
            chain_seq: Some(seq),
            prev_chain_hash: Some(prev.into()),
            chain_hash: None,
        };
        event.chain_hash = Some(chain_hash(&Link {
            session_id,
            seq,
            event_id: &event.event_id,
            trace_id: &event.trace_id,
            event_type: &event.event_type,
            principal_id: &event.principal_id,
            policy_snapshot_id: &event.policy_snapshot_id,
            payload_hash: &event.payload_hash,
            prev_chain_hash: prev,
        }));
        event
    }

    fn chain_of(session_id: &str, length: i64) -> Vec<StoredEvent> {
        let mut events: Vec<StoredEvent> = Vec::new();
        for seq in 1..=length {
            let prev = events
                .last()
                .and_then(|event| event.chain_hash.clone())
                .unwrap_or_else(|| genesis(session_id));
            events.push(chained(session_id, seq, &prev));
        }
        events
    }

    fn recorded(events: &[StoredEvent], sealed_at: Option<i64>) -> SessionChain {
        let head = events.last().and_then(|event| event.chain_hash.clone());
        let sealed = sealed_at.map(|seq| events[seq as usize - 1].chain_hash.clone());
        SessionChain {
            head,
            length: Some(events.len() as i64),
            claim_map_id: sealed_at.map(|_| "cm".to_owned()),
            sealed_head: sealed.flatten(),
            sealed_length: sealed_at,
        }
    }

    fn walk(events: &[StoredEvent], chain: &SessionChain) -> Result<ChainWalk, Broken> {
        let mut walk = ChainWalk::default();
        for event in events {
            event_payload(event)?;
            walk.event(event, chain)?;
        }
        walk.finish()?;
        Ok(walk)
    }

    #[test]
    fn an_intact_sealed_chain_verifies() {
        let events = chain_of("s", 4);
        let walk = walk(&events, &recorded(&events, Some(3))).expect("verifies");
        assert_eq!((walk.sessions, walk.chained, walk.unchained), (1, 4, 0));
    }

    #[test]
    fn a_missing_event_names_the_one_after_it() {
        let mut events = chain_of("s", 4);
        let chain = recorded(&events, None);
        events.remove(1);
        let broken = walk(&events, &chain).err().expect("broken");
        assert_eq!((broken.table, broken.id.as_str()), (EVENTS, "e-3"));
        assert!(broken.what.contains("expected seq 2"), "{}", broken.what);
    }

    #[test]
    fn a_missing_last_event_is_seen_from_the_recorded_head() {
        let mut events = chain_of("s", 3);
        let chain = recorded(&events, None);
        events.pop();
        let broken = walk(&events, &chain).err().expect("broken");
        assert_eq!((broken.table, broken.id.as_str()), (RUNTIME, "s"));
    }

    #[test]
    fn an_edited_column_breaks_the_link() {
        let mut events = chain_of("s", 2);
        let chain = recorded(&events, None);
        events[0].event_type = "POLICY_DECISION".into();
        let broken = walk(&events, &chain).err().expect("broken");
        assert_eq!(broken.id, "e-1");
        assert!(
            broken.what.starts_with("chain hash differs"),
            "{}",
            broken.what
        );
    }

    #[test]
    fn a_seal_that_is_not_in_the_chain_is_named() {
        let events = chain_of("s", 2);
        let mut chain = recorded(&events, Some(2));
        chain.sealed_head = Some("0".repeat(64));
        let broken = walk(&events, &chain).err().expect("broken");
        assert_eq!((broken.table, broken.id.as_str()), (CLAIM_MAPS, "cm"));
    }

    #[test]
    fn unchained_events_verify_by_payload_hash() {
        let mut legacy = chained("s", 1, "x");
        (legacy.chain_seq, legacy.prev_chain_hash, legacy.chain_hash) = (None, None, None);
        let walk = walk(std::slice::from_ref(&legacy), &SessionChain::default()).expect("ok");
        assert_eq!((walk.chained, walk.unchained), (0, 1));
        legacy.payload_json = r#"{"a":1}"#.into();
        let broken = event_payload(&legacy).expect_err("broken");
        assert!(broken.what.starts_with("payload hash differs"));
    }
}

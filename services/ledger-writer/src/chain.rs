//! The per-session hash chain of ledger events: one recipe, used by the
//! writer when it inserts events and by `verify` when it re-checks them.

use pecr_contracts::hash_canonical_json;
use serde_json::json;

/// Names the recipe inside every hashed document, so a later recipe can
/// never produce a hash that collides with one of this one.
const RECIPE: &str = "pecr-ledger-chain/v1";

/// The columns of an event that its chain hash covers. `event_time` is left
/// out: the database assigns it, and the order of a chain is `seq`.
pub struct Link<'a> {
    pub session_id: &'a str,
    pub seq: i64,
    pub event_id: &'a str,
    pub trace_id: &'a str,
    pub event_type: &'a str,
    pub principal_id: &'a str,
    pub policy_snapshot_id: &'a str,
    pub payload_hash: &'a str,
    pub prev_chain_hash: &'a str,
}

/// The value a session's first event chains from.
pub fn genesis(session_id: &str) -> String {
    hash_canonical_json(&json!({ "recipe": RECIPE, "genesis": session_id }))
}

/// sha256 of the canonical JSON of the event's columns and the previous
/// chain hash.
pub fn chain_hash(link: &Link<'_>) -> String {
    hash_canonical_json(&json!({
        "recipe": RECIPE,
        "session_id": link.session_id,
        "seq": link.seq,
        "event_id": link.event_id,
        "trace_id": link.trace_id,
        "event_type": link.event_type,
        "principal_id": link.principal_id,
        "policy_snapshot_id": link.policy_snapshot_id,
        "payload_hash": link.payload_hash,
        "prev_chain_hash": link.prev_chain_hash,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link<'a>(prev: &'a str) -> Link<'a> {
        Link {
            session_id: "s-1",
            seq: 1,
            event_id: "e-1",
            trace_id: "t-1",
            event_type: "OPERATOR_CALL",
            principal_id: "p-1",
            policy_snapshot_id: "ps-1",
            payload_hash: "00",
            prev_chain_hash: prev,
        }
    }

    /// A fixed vector: a change of the recipe changes these and must come
    /// with a new `RECIPE` name.
    #[test]
    fn recipe_test_vector() {
        let genesis = genesis("s-1");
        assert_eq!(
            genesis,
            pecr_contracts::sha256_hex(r#"{"genesis":"s-1","recipe":"pecr-ledger-chain/v1"}"#)
        );
        let expected = pecr_contracts::sha256_hex(format!(
            r#"{{"event_id":"e-1","event_type":"OPERATOR_CALL","payload_hash":"00","policy_snapshot_id":"ps-1","prev_chain_hash":"{genesis}","principal_id":"p-1","recipe":"pecr-ledger-chain/v1","seq":1,"session_id":"s-1","trace_id":"t-1"}}"#
        ));
        assert_eq!(chain_hash(&link(&genesis)), expected);
    }

    #[test]
    fn every_column_and_the_previous_hash_count() {
        let base = chain_hash(&link("a"));
        assert_ne!(base, chain_hash(&link("b")));
        let mut other = link("a");
        other.seq = 2;
        assert_ne!(base, chain_hash(&other));
        let mut other = link("a");
        other.payload_hash = "01";
        assert_ne!(base, chain_hash(&other));
        assert_ne!(genesis("s-1"), genesis("s-2"));
    }
}

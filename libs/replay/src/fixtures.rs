//! Bundles and JSON helpers shared by this crate's unit tests.

use serde::Serialize;
use serde_json::Value;

use pecr_contracts::budget::Budget;
use pecr_contracts::hashing::principal_id_hash;

use crate::bundle::{Claim, ClaimMap, REPLAY_SCHEMA_VERSION, ReplayBundle, ReplayBundleMetadata};
use crate::modes::{ClaimStatus, EngineMode, TerminalMode};

pub(crate) const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

pub(crate) fn budget(max_parallelism: Option<u32>) -> Budget {
    Budget {
        max_operator_calls: 10,
        max_bytes: 1_048_576,
        max_wallclock_ms: 1000,
        max_recursion_depth: 3,
        max_parallelism,
    }
}

/// Scenario 9's bundle: run `run_01`, baseline, 61.5, INSUFFICIENT_EVIDENCE.
pub(crate) fn scenario_bundle() -> ReplayBundle {
    ReplayBundle {
        metadata: ReplayBundleMetadata {
            schema_version: REPLAY_SCHEMA_VERSION,
            run_id: "run_01".to_owned(),
            trace_id: "trace_01".to_owned(),
            request_id: "req_01".to_owned(),
            principal_id_hash: principal_id_hash("dev"),
            engine_mode: EngineMode::Baseline,
            recorded_at_unix_ms: 1_700_000_000_000,
            terminal_mode: TerminalMode::InsufficientEvidence,
            quality_score: 61.5,
            bundle_hash: String::new(),
        },
        query: "smoke".to_owned(),
        budget: budget(None),
        session_id: "session_01".to_owned(),
        policy_snapshot_id: "snapshot_01".to_owned(),
        loop_terminal_mode: TerminalMode::InsufficientEvidence,
        loop_response_text: None,
        response_text: "UNKNOWN: insufficient evidence to answer the query.".to_owned(),
        claim_map: ClaimMap {
            claim_map_id: "cm_01".to_owned(),
            terminal_mode: TerminalMode::InsufficientEvidence,
            claims: vec![Claim {
                claim_id: "76f6a5677446734df3eda2aa42d57412879f6d193d6a276b4f869f5674984851"
                    .to_owned(),
                claim_text: "insufficient evidence to answer the query.".to_owned(),
                status: ClaimStatus::Unknown,
                evidence_unit_ids: vec![],
            }],
            coverage_threshold: 0.95,
            coverage_observed: 1.0,
            notes: None,
        },
        operator_calls_used: 2,
        bytes_used: 300,
        depth_used: 1,
        evidence_ref_count: 2,
        evidence_unit_ids: vec![ID_A.to_owned()],
        cited_evidence: Vec::new(),
    }
}

/// A sealed bundle with every optional field present, for tampering.
pub(crate) fn full_bundle() -> ReplayBundle {
    let mut bundle = scenario_bundle();
    bundle.metadata.engine_mode = EngineMode::Rlm;
    bundle.loop_response_text = Some("loop text".to_owned());
    bundle.budget = budget(Some(4));
    bundle.claim_map.notes = Some("a note".to_owned());
    bundle.claim_map.claims.push(Claim {
        claim_id: ID_B.to_owned(),
        claim_text: "supported claim".to_owned(),
        status: ClaimStatus::Supported,
        evidence_unit_ids: vec![ID_A.to_owned()],
    });
    bundle.seal();
    bundle
}

pub(crate) fn with_member(mut value: Value, pointer: &str, key: &str, member: Value) -> Value {
    if let Some(object) = value.pointer_mut(pointer).and_then(Value::as_object_mut) {
        object.insert(key.to_owned(), member);
    } else {
        panic!("no object at {pointer}");
    }
    value
}

pub(crate) fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("contract types serialize")
}

//! The replay bundle (spec 10 §1.8, spec 30 §12): the claim map it carries,
//! its integrity hash, and run ids.
//!
//! Serialization rules, as the contract fixes them:
//! - The bundle, its `metadata` and its `budget` reject unknown fields;
//!   `ClaimMap` and `Claim` ignore (and drop) them.
//! - Optional fields are omitted when absent: `loop_response_text` and
//!   `claim_map.notes`. On input an explicit `null` means absent.
//! - Inside a bundle an absent `budget.max_parallelism` is written as `null`
//!   (spec 10 §1.2 and §2.4), whatever the REST edge does for budgets.

use pecr_contracts::budget::Budget;
use pecr_contracts::hashing::{bundle_hash, is_sha256_hex};
use pecr_contracts::ids::new_ulid;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::modes::{ClaimStatus, EngineMode, TerminalMode};

/// `metadata.schema_version` of every v1 bundle.
pub const REPLAY_SCHEMA_VERSION: u32 = 1;

/// One atomic claim. Unknown fields are ignored (and dropped) on decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub claim_id: String,
    pub claim_text: String,
    pub status: ClaimStatus,
    pub evidence_unit_ids: Vec<String>,
}

/// The claims of an answer with their coverage. Unknown fields are ignored
/// (and dropped) on decode; `notes` is omitted when absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimMap {
    pub claim_map_id: String,
    pub terminal_mode: TerminalMode,
    pub claims: Vec<Claim>,
    pub coverage_threshold: f64,
    pub coverage_observed: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Where one cited evidence unit came from: identity, never content
/// (closed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitedEvidence {
    pub evidence_unit_id: String,
    pub source_system: String,
    pub object_id: String,
    pub version_id: String,
}

/// Metadata of a replay bundle (closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBundleMetadata {
    pub schema_version: u32,
    pub run_id: String,
    pub trace_id: String,
    pub request_id: String,
    pub principal_id_hash: String,
    pub engine_mode: EngineMode,
    pub recorded_at_unix_ms: u64,
    /// Final terminal mode of the run.
    pub terminal_mode: TerminalMode,
    pub quality_score: f64,
    pub bundle_hash: String,
}

/// Everything recorded about one successful run (closed). Hash-protected by
/// `metadata.bundle_hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBundle {
    pub metadata: ReplayBundleMetadata,
    pub query: String,
    /// Written with `"max_parallelism": null` when absent.
    #[serde(serialize_with = "serialize_budget_with_null")]
    pub budget: Budget,
    pub session_id: String,
    pub policy_snapshot_id: String,
    pub loop_terminal_mode: TerminalMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_response_text: Option<String>,
    pub response_text: String,
    pub claim_map: ClaimMap,
    pub operator_calls_used: u32,
    pub bytes_used: u64,
    pub depth_used: u32,
    pub evidence_ref_count: u32,
    /// Sorted, de-duplicated.
    pub evidence_unit_ids: Vec<String>,
    /// The units the answer's claims cite, sorted by id. Omitted when
    /// empty, so bundles written before it keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cited_evidence: Vec<CitedEvidence>,
}

/// Why a stored bundle cannot be used. Callers treat `HashMismatch` as
/// "does not exist" (404, skipped in lists) and `Decode` as unparsable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Not a ReplayBundle: wrong shape, wrong type, or an unknown field.
    #[error("invalid replay bundle: {0}")]
    Decode(String),
    /// The stored `metadata.bundle_hash` is not the hash of the bundle.
    #[error("replay bundle hash mismatch")]
    HashMismatch { stored: String, computed: String },
}

impl ReplayError {
    /// True when the bundle must be treated as nonexistent.
    pub fn is_hash_mismatch(&self) -> bool {
        matches!(self, Self::HashMismatch { .. })
    }
}

impl ReplayBundle {
    /// The serialized form that is stored and that `bundle_hash` covers:
    /// optional fields omitted, `budget.max_parallelism` null when absent.
    pub fn to_json(&self) -> Value {
        // Serializing these types into a Value cannot fail: every map key is
        // a string and non-finite floats become null.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Canonical hash of [`Self::to_json`] with `metadata.bundle_hash` = "".
    /// The stored `bundle_hash` does not influence the result.
    pub fn compute_bundle_hash(&self) -> String {
        bundle_hash(&self.to_json()).unwrap_or_default()
    }

    /// Sets `metadata.bundle_hash`; call after every other field is final.
    pub fn seal(&mut self) {
        self.metadata.bundle_hash = self.compute_bundle_hash();
    }

    /// Decodes a stored bundle (closed at the top, in `metadata` and in
    /// `budget`) and checks its hash, recomputed over the parsed bundle.
    pub fn from_json_verified(value: &Value) -> Result<Self, ReplayError> {
        let bundle =
            Self::deserialize(value).map_err(|error| ReplayError::Decode(error.to_string()))?;
        bundle.verify()?;
        Ok(bundle)
    }

    /// Checks that the stored `metadata.bundle_hash` is the bundle's hash.
    pub fn verify(&self) -> Result<(), ReplayError> {
        let computed = self.compute_bundle_hash();
        let stored = &self.metadata.bundle_hash;
        if is_sha256_hex(stored) && *stored == computed {
            Ok(())
        } else {
            Err(ReplayError::HashMismatch {
                stored: stored.clone(),
                computed,
            })
        }
    }
}

/// `run_id` of a bundle: `<trace_id>-<ULID>`.
pub fn run_id(trace_id: &str, ulid: &str) -> String {
    format!("{trace_id}-{ulid}")
}

/// `run_id` with a fresh ULID.
pub fn new_run_id(trace_id: &str) -> String {
    run_id(trace_id, &new_ulid())
}

/// Writes every Budget field, `max_parallelism` as `null` when absent, so
/// the bundle hash does not depend on how `Budget` itself serializes.
fn serialize_budget_with_null<S: Serializer>(
    budget: &Budget,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct BudgetWithNull {
        max_operator_calls: u32,
        max_bytes: u64,
        max_wallclock_ms: u64,
        max_recursion_depth: u32,
        max_parallelism: Option<u32>,
    }
    BudgetWithNull {
        max_operator_calls: budget.max_operator_calls,
        max_bytes: budget.max_bytes,
        max_wallclock_ms: budget.max_wallclock_ms,
        max_recursion_depth: budget.max_recursion_depth,
        max_parallelism: budget.max_parallelism,
    }
    .serialize(serializer)
}

#[cfg(test)]
mod tests {
    use pecr_contracts::hashing::{bundle_hash, principal_id_hash};
    use pecr_contracts::ids::{is_safe_store_id, parse_ulid};
    use serde_json::json;

    use super::*;
    use crate::fixtures::{ID_A, ID_B, full_bundle, scenario_bundle, to_value, with_member};

    #[test]
    fn scenario_9_bundle_round_trips_unchanged() {
        let mut bundle = scenario_bundle();
        bundle.seal();
        let text = serde_json::to_string_pretty(&bundle).expect("serializes");
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        let decoded = ReplayBundle::from_json_verified(&parsed).expect("verifies");
        assert_eq!(decoded, bundle);
        assert_eq!(decoded.to_json(), parsed);
        assert_eq!(decoded.metadata.run_id, "run_01");
        assert_eq!(decoded.metadata.engine_mode, EngineMode::Baseline);
        assert_eq!(decoded.metadata.quality_score, 61.5);
        assert_eq!(
            decoded.metadata.terminal_mode,
            TerminalMode::InsufficientEvidence
        );
        assert_eq!(parsed["metadata"]["engine_mode"], json!("baseline"));
        assert_eq!(parsed["metadata"]["quality_score"], json!(61.5));
    }

    #[test]
    fn serialized_bundle_matches_the_contract_shape() {
        let bundle = scenario_bundle();
        let expected = json!({
            "metadata": {
                "schema_version": 1,
                "run_id": "run_01",
                "trace_id": "trace_01",
                "request_id": "req_01",
                "principal_id_hash": principal_id_hash("dev"),
                "engine_mode": "baseline",
                "recorded_at_unix_ms": 1_700_000_000_000_u64,
                "terminal_mode": "INSUFFICIENT_EVIDENCE",
                "quality_score": 61.5,
                "bundle_hash": ""
            },
            "query": "smoke",
            "budget": {
                "max_operator_calls": 10,
                "max_bytes": 1_048_576,
                "max_wallclock_ms": 1000,
                "max_recursion_depth": 3,
                "max_parallelism": null
            },
            "session_id": "session_01",
            "policy_snapshot_id": "snapshot_01",
            "loop_terminal_mode": "INSUFFICIENT_EVIDENCE",
            "response_text": "UNKNOWN: insufficient evidence to answer the query.",
            "claim_map": {
                "claim_map_id": "cm_01",
                "terminal_mode": "INSUFFICIENT_EVIDENCE",
                "claims": [{
                    "claim_id": "76f6a5677446734df3eda2aa42d57412879f6d193d6a276b4f869f5674984851",
                    "claim_text": "insufficient evidence to answer the query.",
                    "status": "UNKNOWN",
                    "evidence_unit_ids": []
                }],
                "coverage_threshold": 0.95,
                "coverage_observed": 1.0
            },
            "operator_calls_used": 2,
            "bytes_used": 300,
            "depth_used": 1,
            "evidence_ref_count": 2,
            "evidence_unit_ids": [ID_A]
        });
        assert_eq!(bundle.to_json(), expected);
        assert_eq!(to_value(&bundle), expected);
        // The hash is the canonical hash of exactly that shape.
        assert_eq!(Some(bundle.compute_bundle_hash()), bundle_hash(&expected));
    }

    #[test]
    fn absent_optionals_are_omitted_and_null_reads_as_absent() {
        let bundle = full_bundle();
        let json = bundle.to_json();
        assert_eq!(json["loop_response_text"], json!("loop text"));
        assert_eq!(json["claim_map"]["notes"], json!("a note"));
        assert_eq!(json["budget"]["max_parallelism"], json!(4));

        let plain = scenario_bundle().to_json();
        assert!(plain.get("loop_response_text").is_none());
        assert!(plain["claim_map"].get("notes").is_none());

        let nulls = with_member(plain.clone(), "", "loop_response_text", Value::Null);
        let nulls = with_member(nulls, "/claim_map", "notes", Value::Null);
        let decoded: ReplayBundle = serde_json::from_value(nulls).expect("null is absent");
        assert_eq!(decoded.to_json(), plain);
    }

    #[test]
    fn absent_max_parallelism_hashes_as_null() {
        let bundle = scenario_bundle();
        let json = bundle.to_json();
        assert_eq!(json["budget"]["max_parallelism"], Value::Null);
        assert!(
            json["budget"]
                .as_object()
                .is_some_and(|b| b.contains_key("max_parallelism"))
        );

        // A hash over a form that omitted the key would differ.
        let mut omitted = json.clone();
        if let Some(budget) = omitted
            .pointer_mut("/budget")
            .and_then(Value::as_object_mut)
        {
            budget.remove("max_parallelism");
        }
        assert_ne!(bundle_hash(&omitted), Some(bundle.compute_bundle_hash()));

        // A stored file that omits the key still verifies: it reads as absent
        // and is hashed with null, like the writer did.
        let mut sealed = scenario_bundle();
        sealed.seal();
        let mut stored = sealed.to_json();
        if let Some(budget) = stored.pointer_mut("/budget").and_then(Value::as_object_mut) {
            budget.remove("max_parallelism");
        }
        assert_eq!(
            ReplayBundle::from_json_verified(&stored),
            Ok(sealed.clone())
        );

        let mut with_value = sealed;
        with_value.budget.max_parallelism = Some(1);
        assert!(with_value.verify().is_err());
    }

    #[test]
    fn seal_sets_a_hash_that_ignores_the_stored_one() {
        let mut bundle = scenario_bundle();
        let before = bundle.compute_bundle_hash();
        assert!(is_sha256_hex(&before));
        assert!(
            bundle.verify().is_err(),
            "an unsealed bundle does not verify"
        );
        bundle.seal();
        assert_eq!(bundle.metadata.bundle_hash, before);
        assert_eq!(bundle.compute_bundle_hash(), before);
        assert_eq!(bundle.verify(), Ok(()));
    }

    /// Every other value of the same type that still decodes.
    fn tampered(pointer: &str, leaf: &Value) -> Value {
        const ENUMS: [&str; 9] = [
            "SUPPORTED",
            "INSUFFICIENT_EVIDENCE",
            "INSUFFICIENT_PERMISSION",
            "SOURCE_UNAVAILABLE",
            "ASSUMPTION",
            "UNKNOWN",
            "baseline",
            "rlm",
            "",
        ];
        match leaf {
            Value::String(text) => match text.as_str() {
                "SUPPORTED" if pointer.ends_with("/status") => json!("ASSUMPTION"),
                "SUPPORTED" => json!("INSUFFICIENT_PERMISSION"),
                "INSUFFICIENT_EVIDENCE" => json!("SOURCE_UNAVAILABLE"),
                "UNKNOWN" => json!("ASSUMPTION"),
                "baseline" => json!("rlm"),
                "rlm" => json!("baseline"),
                other if ENUMS.contains(&other) => panic!("no swap for {other}"),
                other => json!(format!("{other}x")),
            },
            Value::Number(number) if number.is_u64() => {
                json!(number.as_u64().map_or(0, |n| n + 1))
            }
            Value::Number(number) => json!(number.as_f64().map_or(0.0, |n| n + 0.25)),
            Value::Bool(flag) => json!(!flag),
            Value::Null => json!(4),
            other => panic!("not a leaf: {other}"),
        }
    }

    fn leaf_pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    leaf_pointers(member, format!("{prefix}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    leaf_pointers(item, format!("{prefix}/{index}"), out);
                }
            }
            _ => out.push(prefix),
        }
    }

    #[test]
    fn changing_any_value_breaks_verification() {
        let sealed = full_bundle().to_json();
        assert!(ReplayBundle::from_json_verified(&sealed).is_ok());
        let mut pointers = Vec::new();
        leaf_pointers(&sealed, String::new(), &mut pointers);
        assert!(pointers.len() > 30, "every field is covered: {pointers:?}");
        for pointer in pointers {
            let mut copy = sealed.clone();
            let Some(leaf) = copy.pointer_mut(&pointer) else {
                panic!("pointer {pointer} resolves");
            };
            *leaf = tampered(&pointer, leaf);
            let result = ReplayBundle::from_json_verified(&copy);
            assert!(
                matches!(result, Err(ReplayError::HashMismatch { .. })),
                "tampering {pointer} gave {result:?}"
            );
        }

        // Structural edits too: one more id, one claim fewer.
        let mut more = sealed.clone();
        if let Some(ids) = more
            .pointer_mut("/evidence_unit_ids")
            .and_then(Value::as_array_mut)
        {
            ids.push(json!(ID_B));
        }
        let mut fewer = sealed.clone();
        if let Some(claims) = fewer
            .pointer_mut("/claim_map/claims")
            .and_then(Value::as_array_mut)
        {
            claims.pop();
        }
        let mut dropped = sealed;
        if let Some(object) = dropped.as_object_mut() {
            object.remove("loop_response_text");
        }
        for copy in [more, fewer, dropped] {
            let error = ReplayBundle::from_json_verified(&copy).expect_err("tampered");
            assert!(error.is_hash_mismatch());
        }
    }

    #[test]
    fn stored_hash_must_be_hex64() {
        let mut bundle = scenario_bundle();
        bundle.seal();
        bundle.metadata.bundle_hash = bundle.metadata.bundle_hash.to_uppercase();
        assert!(bundle.verify().is_err());
    }

    #[test]
    fn unknown_fields_in_closed_bundle_parts_are_rejected() {
        let bundle = full_bundle().to_json();
        for pointer in ["", "/metadata", "/budget"] {
            let bad = with_member(bundle.clone(), pointer, "oops", json!(1));
            let result = ReplayBundle::from_json_verified(&bad);
            assert!(
                matches!(&result, Err(ReplayError::Decode(message)) if message.contains("oops")),
                "unknown field at {pointer:?} gave {result:?}"
            );
        }
        let metadata = bundle["metadata"].clone();
        assert!(serde_json::from_value::<ReplayBundleMetadata>(metadata.clone()).is_ok());
        let bad = with_member(metadata, "", "extra", json!(true));
        assert!(serde_json::from_value::<ReplayBundleMetadata>(bad).is_err());
    }

    #[test]
    fn unknown_fields_in_claim_map_and_claims_are_dropped() {
        let sealed = full_bundle();
        let json = sealed.to_json();
        let extended = with_member(json.clone(), "/claim_map", "extra", json!({"x": 1}));
        let extended = with_member(extended, "/claim_map/claims/0", "weight", json!(0.5));
        let decoded = ReplayBundle::from_json_verified(&extended).expect("extras are ignored");
        assert_eq!(decoded, sealed);
        assert_eq!(decoded.to_json(), json);

        let claim: Claim = serde_json::from_value(json!({
            "claim_id": "", "claim_text": "t", "status": "UNKNOWN",
            "evidence_unit_ids": [], "extra": "dropped"
        }))
        .expect("open type");
        assert!(to_value(&claim).get("extra").is_none());
    }

    #[test]
    fn bundle_decoding_is_strict_about_shape() {
        let json = scenario_bundle().to_json();
        let mut missing = json.clone();
        if let Some(object) = missing.as_object_mut() {
            object.remove("response_text");
        }
        let bad_enum = with_member(json.clone(), "/metadata", "engine_mode", json!("BASELINE"));
        let bad_int = with_member(json.clone(), "", "bytes_used", json!(-1));
        let float_int = with_member(json.clone(), "", "depth_used", json!(1.0));
        let null_required = with_member(json, "", "query", Value::Null);
        for bad in [
            missing,
            bad_enum,
            bad_int,
            float_int,
            null_required,
            json!([]),
        ] {
            let result = ReplayBundle::from_json_verified(&bad);
            assert!(matches!(result, Err(ReplayError::Decode(_))), "{result:?}");
        }
    }

    #[test]
    fn integer_literals_for_doubles_do_not_change_the_hash() {
        let mut bundle = scenario_bundle();
        bundle.metadata.quality_score = 61.0;
        bundle.seal();
        let stored = with_member(bundle.to_json(), "/metadata", "quality_score", json!(61));
        assert_eq!(ReplayBundle::from_json_verified(&stored), Ok(bundle));
    }

    #[test]
    fn run_ids_join_trace_and_ulid() {
        assert_eq!(
            run_id("01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAW"),
            "01ARZ3NDEKTSV4RRFFQ69G5FAV-01ARZ3NDEKTSV4RRFFQ69G5FAW"
        );
        let fresh = new_run_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let suffix = fresh
            .strip_prefix("01ARZ3NDEKTSV4RRFFQ69G5FAV-")
            .expect("trace id prefix");
        assert_eq!(parse_ulid(suffix).as_deref(), Some(suffix));
        assert!(is_safe_store_id(&fresh));
    }
}

//! The evaluation contract (spec 30 §13): a submission naming stored runs,
//! the score of each run, the scorecards per engine mode, and the stored
//! result.
//!
//! Serialization rules, as the contract fixes them:
//! - All four types reject unknown fields.
//! - The submission's `engine_mode`, `min_quality_score` and
//!   `max_source_unavailable_rate` are omitted when absent; on input an
//!   explicit `null` means absent.
//! - `replay_ids` and `missing_replay_ids` default to `[]` on input and are
//!   always written.

use serde::{Deserialize, Serialize};

use crate::bundle::ReplayBundle;
use crate::decimal::clamp_unit;
use crate::modes::{EngineMode, TerminalMode};

/// A request to score stored runs (closed). Absent optionals are omitted on
/// output; `replay_ids` is always written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayEvaluationSubmission {
    pub evaluation_name: String,
    #[serde(default)]
    pub replay_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_mode: Option<EngineMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_quality_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_source_unavailable_rate: Option<f64>,
}

/// The score of one run within an evaluation (closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRunScore {
    pub run_id: String,
    pub trace_id: String,
    pub engine_mode: EngineMode,
    pub terminal_mode: TerminalMode,
    pub quality_score: f64,
    /// Clamped to [0, 1].
    pub coverage_observed: f64,
}

impl ReplayRunScore {
    /// Spec 30 §13.1 step 7: the bundle's metadata and its clamped coverage.
    pub fn from_bundle(bundle: &ReplayBundle) -> Self {
        Self {
            run_id: bundle.metadata.run_id.clone(),
            trace_id: bundle.metadata.trace_id.clone(),
            engine_mode: bundle.metadata.engine_mode,
            terminal_mode: bundle.metadata.terminal_mode,
            quality_score: bundle.metadata.quality_score,
            coverage_observed: clamp_unit(bundle.claim_map.coverage_observed),
        }
    }
}

/// Aggregate quality of the runs of one engine mode (closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQualityScorecard {
    pub engine_mode: EngineMode,
    pub run_count: u64,
    /// 2 decimals.
    pub average_quality_score: f64,
    /// 2 decimals.
    pub minimum_quality_score: f64,
    /// 2 decimals.
    pub maximum_quality_score: f64,
    /// 4 decimals.
    pub supported_rate: f64,
    /// 4 decimals.
    pub source_unavailable_rate: f64,
    /// 4 decimals.
    pub average_coverage_observed: f64,
}

/// A stored evaluation (closed). Not integrity-hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayEvaluationResult {
    pub evaluation_id: String,
    pub evaluation_name: String,
    pub principal_id_hash: String,
    pub created_at_unix_ms: u64,
    pub replay_ids: Vec<String>,
    #[serde(default)]
    pub missing_replay_ids: Vec<String>,
    pub run_results: Vec<ReplayRunScore>,
    pub scorecards: Vec<RunQualityScorecard>,
    pub overall_pass: bool,
}

#[cfg(test)]
mod tests {
    use pecr_contracts::hashing::principal_id_hash;
    use serde_json::{Value, json};

    use super::*;
    use crate::fixtures::{full_bundle, to_value, with_member};

    fn submission_json() -> Value {
        json!({
            "evaluation_name": "smoke-eval",
            "replay_ids": ["run_01"],
            "engine_mode": "rlm",
            "min_quality_score": 0,
            "max_source_unavailable_rate": 1
        })
    }

    fn run_score_json() -> Value {
        json!({
            "run_id": "run_01", "trace_id": "trace_01", "engine_mode": "baseline",
            "terminal_mode": "SUPPORTED", "quality_score": 100.0, "coverage_observed": 1.0
        })
    }

    fn scorecard_json() -> Value {
        json!({
            "engine_mode": "baseline", "run_count": 1,
            "average_quality_score": 100.0, "minimum_quality_score": 100.0,
            "maximum_quality_score": 100.0, "supported_rate": 1.0,
            "source_unavailable_rate": 0.0, "average_coverage_observed": 1.0
        })
    }

    fn result_json() -> Value {
        json!({
            "evaluation_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "evaluation_name": "smoke-eval",
            "principal_id_hash": principal_id_hash("dev"),
            "created_at_unix_ms": 1_700_000_000_000_u64,
            "replay_ids": ["run_01"],
            "missing_replay_ids": [],
            "run_results": [run_score_json()],
            "scorecards": [scorecard_json()],
            "overall_pass": true
        })
    }

    #[test]
    fn unknown_fields_in_evaluation_types_are_rejected() {
        fn check<T: serde::de::DeserializeOwned + Serialize>(valid: Value, pointer: &str) {
            let decoded: T = serde_json::from_value(valid.clone()).expect("valid input");
            let _ = to_value(&decoded);
            let bad = with_member(valid, pointer, "oops", json!(null));
            assert!(
                serde_json::from_value::<T>(bad).is_err(),
                "{} accepted an unknown field at {pointer:?}",
                std::any::type_name::<T>()
            );
        }
        check::<ReplayEvaluationSubmission>(submission_json(), "");
        check::<ReplayRunScore>(run_score_json(), "");
        check::<RunQualityScorecard>(scorecard_json(), "");
        check::<ReplayEvaluationResult>(result_json(), "");
        check::<ReplayEvaluationResult>(result_json(), "/run_results/0");
        check::<ReplayEvaluationResult>(result_json(), "/scorecards/0");
    }

    #[test]
    fn submission_omits_absent_optionals_and_always_writes_replay_ids() {
        let minimal: ReplayEvaluationSubmission =
            serde_json::from_value(json!({"evaluation_name": "x"})).expect("minimal");
        assert_eq!(minimal.replay_ids, Vec::<String>::new());
        assert_eq!(
            to_value(&minimal),
            json!({"evaluation_name": "x", "replay_ids": []})
        );
        let nulls: ReplayEvaluationSubmission = serde_json::from_value(json!({
            "evaluation_name": "x", "engine_mode": null,
            "min_quality_score": null, "max_source_unavailable_rate": null
        }))
        .expect("null means absent");
        assert_eq!(nulls, minimal);

        let full: ReplayEvaluationSubmission =
            serde_json::from_value(submission_json()).expect("full");
        assert_eq!(full.engine_mode, Some(EngineMode::Rlm));
        assert_eq!(full.min_quality_score, Some(0.0));
        assert_eq!(
            to_value(&full),
            json!({
                "evaluation_name": "smoke-eval", "replay_ids": ["run_01"],
                "engine_mode": "rlm", "min_quality_score": 0.0,
                "max_source_unavailable_rate": 1.0
            })
        );
        assert!(serde_json::from_value::<ReplayEvaluationSubmission>(json!({})).is_err());
    }

    #[test]
    fn evaluation_result_round_trips_and_defaults_missing_ids() {
        let result: ReplayEvaluationResult = serde_json::from_value(result_json()).expect("valid");
        assert_eq!(to_value(&result), result_json());

        let mut without = result_json();
        if let Some(object) = without.as_object_mut() {
            object.remove("missing_replay_ids");
        }
        let decoded: ReplayEvaluationResult =
            serde_json::from_value(without).expect("missing_replay_ids defaults");
        assert_eq!(decoded, result);
        assert_eq!(to_value(&decoded)["missing_replay_ids"], json!([]));

        let mut no_runs = result_json();
        if let Some(object) = no_runs.as_object_mut() {
            object.remove("run_results");
        }
        assert!(serde_json::from_value::<ReplayEvaluationResult>(no_runs).is_err());
    }

    #[test]
    fn run_score_from_bundle_clamps_coverage() {
        let mut bundle = full_bundle();
        let score = ReplayRunScore::from_bundle(&bundle);
        assert_eq!(score.run_id, "run_01");
        assert_eq!(score.trace_id, "trace_01");
        assert_eq!(score.engine_mode, EngineMode::Rlm);
        assert_eq!(score.terminal_mode, TerminalMode::InsufficientEvidence);
        assert_eq!(score.quality_score, 61.5);
        assert_eq!(score.coverage_observed, 1.0);
        bundle.claim_map.coverage_observed = 1.25;
        assert_eq!(ReplayRunScore::from_bundle(&bundle).coverage_observed, 1.0);
        bundle.claim_map.coverage_observed = -0.5;
        assert_eq!(ReplayRunScore::from_bundle(&bundle).coverage_observed, 0.0);
        bundle.claim_map.coverage_observed = 0.75;
        assert_eq!(ReplayRunScore::from_bundle(&bundle).coverage_observed, 0.75);
    }
}

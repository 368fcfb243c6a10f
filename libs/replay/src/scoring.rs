//! Run quality score (spec 30 §12.2), scorecards (§13.3) and the evaluation
//! verdict (§13.1 steps 5 and 8–10).
//!
//! The score is computed as an exact fraction of hundredths and rounded half
//! away from zero; averages and rates use the fixed point of
//! [`crate::decimal`].

use std::collections::{BTreeMap, BTreeSet};

use crate::bundle::ClaimMap;
use crate::decimal::{
    FIXED_DECIMALS, clamp_unit, div_round_half_up, mean_rounded, pow10, rate_rounded,
    round_half_away_from_zero, to_fixed,
};
use crate::evaluation::{ReplayEvaluationSubmission, ReplayRunScore, RunQualityScorecard};
use crate::modes::{ClaimStatus, EngineMode, TerminalMode};

/// Message when `min_quality_score` is outside [0, 100].
pub const MIN_QUALITY_SCORE_OUT_OF_RANGE: &str = "min_quality_score must be between 0 and 100";
/// Message when `max_source_unavailable_rate` is outside [0, 1].
pub const MAX_SOURCE_UNAVAILABLE_RATE_OUT_OF_RANGE: &str =
    "max_source_unavailable_rate must be between 0 and 1";
/// Message when `evaluation_name` is blank.
pub const EVALUATION_NAME_EMPTY: &str = "evaluation_name must not be empty";

/// Highest `min_quality_score` (quality scores are 0..=100).
pub const QUALITY_SCORE_MAX: f64 = 100.0;
/// Highest `max_source_unavailable_rate` (a share, 0..=1).
pub const SOURCE_UNAVAILABLE_RATE_MAX: f64 = 1.0;
/// Most `replay_ids` one submission may name: each is a store read.
pub const MAX_REPLAY_IDS: usize = 1000;

/// Default per-run pass threshold.
pub const DEFAULT_MIN_QUALITY_SCORE: f64 = 0.0;
/// Default source-unavailable rate threshold.
pub const DEFAULT_MAX_SOURCE_UNAVAILABLE_RATE: f64 = 1.0;

/// `T × 4000`: the terminal-mode term in hundredths of a score point
/// (weight 0.40 × 100 × 100).
fn terminal_term(mode: TerminalMode) -> u128 {
    match mode {
        TerminalMode::Supported => 4000,
        TerminalMode::InsufficientPermission => 3120,
        TerminalMode::InsufficientEvidence => 2880,
        TerminalMode::SourceUnavailable => 800,
    }
}

/// Spec 30 §12.2: `round((0.40·T + 0.35·C + 0.15·P + 0.10·V)·100, 2)`,
/// half away from zero. `terminal_mode` is the run's final mode, C the
/// clamped `claim_map.coverage_observed`, E the number of distinct ids in
/// `evidence_unit_ids`.
pub fn quality_score(
    terminal_mode: TerminalMode,
    claim_map: &ClaimMap,
    evidence_unit_ids: &[String],
) -> f64 {
    let supported: Vec<_> = claim_map
        .claims
        .iter()
        .filter(|claim| claim.status == ClaimStatus::Supported)
        .collect();
    let s = supported.len() as u128;
    let se = supported
        .iter()
        .filter(|claim| !claim.evidence_unit_ids.is_empty())
        .count() as u128;
    let e = evidence_unit_ids.iter().collect::<BTreeSet<_>>().len() as u128;
    let coverage = clamp_unit(claim_map.coverage_observed);

    // Everything except C, in hundredths, as `rational / denominator`.
    let (rational, denominator) = if s == 0 {
        let v = if e == 0 { 800 } else { 1000 };
        (terminal_term(terminal_mode) + 1500 + v, 1)
    } else {
        (
            terminal_term(terminal_mode) * s + 1500 * se + 1000 * e.min(s),
            s,
        )
    };
    let exact = coverage_units(coverage).and_then(|c| {
        // hundredths = rational/denominator + 3500·c/10^12
        let scale = pow10(FIXED_DECIMALS);
        let numerator = rational
            .checked_mul(scale)?
            .checked_add(c.checked_mul(3500)?.checked_mul(denominator)?)?;
        div_round_half_up(numerator, denominator.checked_mul(scale)?)
    });
    match exact {
        Some(hundredths) => hundredths as f64 / 100.0,
        None => {
            // Unreachable for any realistic claim count; plain f64 fallback.
            let raw = rational as f64 / denominator as f64 + 3500.0 * coverage;
            raw.round() / 100.0
        }
    }
}

/// Coverage in [0, 1] as 10⁻¹² units.
fn coverage_units(coverage: f64) -> Option<u128> {
    u128::try_from(to_fixed(coverage)?).ok()
}

/// Spec 30 §13.3: one scorecard per engine mode present, ordered `baseline`
/// then `rlm`. Scores to 2 decimals; rates and mean coverage (clamped) to 4.
pub fn scorecards(runs: &[ReplayRunScore]) -> Vec<RunQualityScorecard> {
    let mut groups: BTreeMap<EngineMode, Vec<&ReplayRunScore>> = BTreeMap::new();
    for run in runs {
        groups.entry(run.engine_mode).or_default().push(run);
    }
    groups
        .into_iter()
        .map(|(engine_mode, group)| {
            let scores: Vec<f64> = group.iter().map(|run| run.quality_score).collect();
            let coverage: Vec<f64> = group
                .iter()
                .map(|run| clamp_unit(run.coverage_observed))
                .collect();
            let count_mode =
                |mode: TerminalMode| group.iter().filter(|run| run.terminal_mode == mode).count();
            let minimum = scores.iter().copied().fold(f64::INFINITY, f64::min);
            let maximum = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            RunQualityScorecard {
                engine_mode,
                run_count: group.len() as u64,
                average_quality_score: mean_rounded(&scores, 2),
                minimum_quality_score: round_half_away_from_zero(minimum, 2),
                maximum_quality_score: round_half_away_from_zero(maximum, 2),
                supported_rate: rate_rounded(count_mode(TerminalMode::Supported), group.len(), 4),
                source_unavailable_rate: rate_rounded(
                    count_mode(TerminalMode::SourceUnavailable),
                    group.len(),
                    4,
                ),
                average_coverage_observed: mean_rounded(&coverage, 4),
            }
        })
        .collect()
}

/// Pass thresholds of an evaluation, defaults applied (§13.1 step 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvaluationThresholds {
    pub min_quality_score: f64,
    pub max_source_unavailable_rate: f64,
}

impl Default for EvaluationThresholds {
    fn default() -> Self {
        Self {
            min_quality_score: DEFAULT_MIN_QUALITY_SCORE,
            max_source_unavailable_rate: DEFAULT_MAX_SOURCE_UNAVAILABLE_RATE,
        }
    }
}

impl EvaluationThresholds {
    /// The submission's thresholds, 0 and 1 where absent.
    pub fn from_submission(submission: &ReplayEvaluationSubmission) -> Self {
        Self {
            min_quality_score: submission
                .min_quality_score
                .unwrap_or(DEFAULT_MIN_QUALITY_SCORE),
            max_source_unavailable_rate: submission
                .max_source_unavailable_rate
                .unwrap_or(DEFAULT_MAX_SOURCE_UNAVAILABLE_RATE),
        }
    }
}

/// The computed part of an evaluation result.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationOutcome {
    pub scorecards: Vec<RunQualityScorecard>,
    /// Share of selected runs that are SOURCE_UNAVAILABLE (unrounded; 0 when
    /// nothing is selected). Not part of the stored result.
    pub source_unavailable_rate: f64,
    pub overall_pass: bool,
}

/// §13.1 steps 8–10 over the selected runs (in selection order, duplicates
/// included) and the requested ids that were not found.
pub fn evaluate(
    run_results: &[ReplayRunScore],
    missing_replay_ids: &[String],
    thresholds: EvaluationThresholds,
) -> EvaluationOutcome {
    let source_unavailable = run_results
        .iter()
        .filter(|run| run.terminal_mode == TerminalMode::SourceUnavailable)
        .count();
    let source_unavailable_rate = if run_results.is_empty() {
        0.0
    } else {
        source_unavailable as f64 / run_results.len() as f64
    };
    let overall_pass = run_results
        .iter()
        .all(|run| run.quality_score >= thresholds.min_quality_score)
        && source_unavailable_rate <= thresholds.max_source_unavailable_rate
        && missing_replay_ids.is_empty();
    EvaluationOutcome {
        scorecards: scorecards(run_results),
        source_unavailable_rate,
        overall_pass,
    }
}

/// §13.1 steps 1–2, which run before authentication: a present threshold
/// must lie in its closed range (NaN never does).
pub fn validate_thresholds(submission: &ReplayEvaluationSubmission) -> Result<(), String> {
    if let Some(min) = submission.min_quality_score
        && !(0.0..=QUALITY_SCORE_MAX).contains(&min)
    {
        return Err(MIN_QUALITY_SCORE_OUT_OF_RANGE.to_owned());
    }
    if let Some(max) = submission.max_source_unavailable_rate
        && !(0.0..=SOURCE_UNAVAILABLE_RATE_MAX).contains(&max)
    {
        return Err(MAX_SOURCE_UNAVAILABLE_RATE_OUT_OF_RANGE.to_owned());
    }
    Ok(())
}

/// §13.1 steps 1, 2 and 4 in order: thresholds, then a name that is not
/// blank after trimming. Each failure is a 400 `ERR_INVALID_PARAMS` whose
/// message is one of the `*_OUT_OF_RANGE` / `EVALUATION_NAME_EMPTY`
/// constants. Call [`validate_thresholds`] before authenticating to keep
/// the contract's order.
pub fn validate_submission(submission: &ReplayEvaluationSubmission) -> Result<(), String> {
    validate_thresholds(submission)?;
    if submission.evaluation_name.trim().is_empty() {
        return Err(EVALUATION_NAME_EMPTY.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use pecr_contracts::canonical_json;
    use serde_json::json;

    use super::*;
    use crate::bundle::Claim;

    fn claim(status: ClaimStatus, ids: &[&str]) -> Claim {
        Claim {
            claim_id: String::new(),
            claim_text: "claim".to_owned(),
            status,
            evidence_unit_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    fn claim_map(claims: Vec<Claim>, coverage: f64) -> ClaimMap {
        ClaimMap {
            claim_map_id: "cm".to_owned(),
            terminal_mode: TerminalMode::InsufficientEvidence,
            claims,
            coverage_threshold: 0.95,
            coverage_observed: coverage,
            notes: None,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    /// The JSON text a score is written as.
    fn written(value: f64) -> String {
        canonical_json(&json!(value))
    }

    fn unknown_line() -> Vec<Claim> {
        vec![claim(ClaimStatus::Unknown, &[])]
    }

    #[test]
    fn spec_examples_come_out_exactly() {
        let cases = [
            (
                TerminalMode::InsufficientEvidence,
                claim_map(unknown_line(), 1.0),
                ids(&[]),
                86.8,
                "86.8",
            ),
            (
                TerminalMode::InsufficientEvidence,
                claim_map(unknown_line(), 1.0),
                ids(&["a"]),
                88.8,
                "88.8",
            ),
            (
                TerminalMode::InsufficientPermission,
                claim_map(unknown_line(), 1.0),
                ids(&[]),
                89.2,
                "89.2",
            ),
            (
                TerminalMode::SourceUnavailable,
                claim_map(unknown_line(), 0.75),
                ids(&[]),
                57.25,
                "57.25",
            ),
            (
                TerminalMode::Supported,
                claim_map(vec![claim(ClaimStatus::Supported, &["a"])], 1.0),
                ids(&["a"]),
                100.0,
                "100.0",
            ),
        ];
        for (mode, map, evidence, score, text) in cases {
            let computed = quality_score(mode, &map, &evidence);
            assert_eq!(computed, score, "{mode:?}");
            assert_eq!(written(computed), text);
        }
    }

    #[test]
    fn score_inputs_follow_the_formula() {
        // No claims at all behaves like no supported claims.
        let empty = claim_map(vec![], 1.0);
        assert_eq!(
            quality_score(TerminalMode::InsufficientEvidence, &empty, &[]),
            86.8
        );
        // Coverage is clamped: above 1 counts as 1, below 0 as 0.
        let high = claim_map(vec![], 1.5);
        assert_eq!(
            quality_score(TerminalMode::InsufficientEvidence, &high, &[]),
            86.8
        );
        let low = claim_map(vec![], -1.0);
        assert_eq!(
            quality_score(TerminalMode::InsufficientEvidence, &low, &[]),
            51.8
        );
        // E counts distinct ids: two copies of one id for two supported
        // claims give V = 1/2. P = 1/2 (one claim has no evidence).
        // 0.4 + 0.35 + 0.15·0.5 + 0.1·0.5 = 0.875.
        let map = claim_map(
            vec![
                claim(ClaimStatus::Supported, &["a"]),
                claim(ClaimStatus::Supported, &[]),
                claim(ClaimStatus::Assumption, &["b"]),
            ],
            1.0,
        );
        assert_eq!(
            quality_score(TerminalMode::Supported, &map, &ids(&["a", "a"])),
            87.5
        );
        // V is capped at 1 when E > S.
        let map = claim_map(vec![claim(ClaimStatus::Supported, &["a"])], 1.0);
        assert_eq!(
            quality_score(TerminalMode::Supported, &map, &ids(&["a", "b", "c"])),
            100.0
        );
    }

    #[test]
    fn score_halves_round_away_from_zero() {
        // S = 8, Se = 1, E = 8, INSUFFICIENT_EVIDENCE, C = 1:
        // 28.8 + 35 + 15/8 + 10 = 75.675 exactly → 75.68.
        let mut claims = vec![claim(ClaimStatus::Supported, &["a"])];
        claims.extend((0..7).map(|_| claim(ClaimStatus::Supported, &[])));
        let evidence = ids(&["a", "b", "c", "d", "e", "f", "g", "h"]);
        let map = claim_map(claims, 1.0);
        assert_eq!(
            quality_score(TerminalMode::InsufficientEvidence, &map, &evidence),
            75.68
        );
        // C = 0.123 (not exact in binary): 8 + 4.305 + 15 + 8 = 35.305 → 35.31.
        let map = claim_map(vec![], 0.123);
        assert_eq!(
            quality_score(TerminalMode::SourceUnavailable, &map, &[]),
            35.31
        );
        // C = 0.001: 8 + 0.035 + 23 = 31.035 → 31.04.
        let map = claim_map(vec![], 0.001);
        assert_eq!(
            quality_score(TerminalMode::SourceUnavailable, &map, &[]),
            31.04
        );
    }

    fn run(engine: EngineMode, mode: TerminalMode, score: f64, coverage: f64) -> ReplayRunScore {
        ReplayRunScore {
            run_id: format!("run-{score}"),
            trace_id: "trace".to_owned(),
            engine_mode: engine,
            terminal_mode: mode,
            quality_score: score,
            coverage_observed: coverage,
        }
    }

    #[test]
    fn scorecards_group_order_and_round() {
        use EngineMode::{Baseline, Rlm};
        use TerminalMode::{InsufficientEvidence, SourceUnavailable, Supported};
        let runs = [
            run(Rlm, SourceUnavailable, 57.25, 0.75),
            run(Baseline, Supported, 61.55, 1.0),
            run(Baseline, InsufficientEvidence, 61.56, 0.5),
            run(Baseline, SourceUnavailable, 100.0, 1.5),
        ];
        let cards = scorecards(&runs);
        assert_eq!(cards.len(), 2);
        assert_eq!(
            cards[0],
            RunQualityScorecard {
                engine_mode: Baseline,
                run_count: 3,
                // (61.55 + 61.56 + 100) / 3 = 74.37
                average_quality_score: 74.37,
                minimum_quality_score: 61.55,
                maximum_quality_score: 100.0,
                supported_rate: 0.3333,
                source_unavailable_rate: 0.3333,
                // (1 + 0.5 + 1 clamped) / 3 = 0.83333…
                average_coverage_observed: 0.8333,
            }
        );
        assert_eq!(
            cards[1],
            RunQualityScorecard {
                engine_mode: Rlm,
                run_count: 1,
                average_quality_score: 57.25,
                minimum_quality_score: 57.25,
                maximum_quality_score: 57.25,
                supported_rate: 0.0,
                source_unavailable_rate: 1.0,
                average_coverage_observed: 0.75,
            }
        );
    }

    #[test]
    fn scorecard_averages_round_exact_halves_up() {
        use EngineMode::Baseline;
        use TerminalMode::{SourceUnavailable, Supported};
        // 50.115 exactly; naive f64 gives 50.114999… and rounds down.
        let runs = [
            run(Baseline, Supported, 50.11, 0.00005),
            run(Baseline, SourceUnavailable, 50.12, 0.0),
        ];
        let naive = (50.11_f64 + 50.12) / 2.0;
        assert_eq!(
            (naive * 100.0).round() / 100.0,
            50.11,
            "float error: {naive}"
        );
        let card = &scorecards(&runs)[0];
        assert_eq!(card.average_quality_score, 50.12);
        assert_eq!(card.supported_rate, 0.5);
        assert_eq!(card.source_unavailable_rate, 0.5);
        // 0.000025 → 0.0000 at 4 decimals; 2/3 → 0.6667.
        assert_eq!(card.average_coverage_observed, 0.0);
        let thirds = [
            run(Baseline, Supported, 1.0, 1.0),
            run(Baseline, Supported, 1.0, 1.0),
            run(Baseline, SourceUnavailable, 1.0, 0.0),
        ];
        let card = &scorecards(&thirds)[0];
        assert_eq!(card.supported_rate, 0.6667);
        assert_eq!(card.average_coverage_observed, 0.6667);
        assert_eq!(written(card.supported_rate), "0.6667");
    }

    #[test]
    fn scorecards_with_only_rlm_or_nothing() {
        let runs = [
            run(EngineMode::Rlm, TerminalMode::Supported, 100.0, 1.0),
            run(
                EngineMode::Rlm,
                TerminalMode::InsufficientEvidence,
                86.8,
                1.0,
            ),
        ];
        let cards = scorecards(&runs);
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].engine_mode, EngineMode::Rlm);
        assert_eq!(cards[0].run_count, 2);
        assert_eq!(cards[0].average_quality_score, 93.4);
        assert_eq!(cards[0].supported_rate, 0.5);
        assert!(scorecards(&[]).is_empty());
    }

    #[test]
    fn scenario_37_baseline_supported_beats_rlm_source_unavailable() {
        let runs = [
            run(
                EngineMode::Rlm,
                TerminalMode::SourceUnavailable,
                57.25,
                0.75,
            ),
            run(EngineMode::Baseline, TerminalMode::Supported, 100.0, 1.0),
        ];
        let cards = scorecards(&runs);
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].engine_mode, EngineMode::Baseline);
        assert!(cards[0].average_quality_score > cards[1].average_quality_score);
    }

    #[test]
    fn overall_pass_rules() {
        let defaults = EvaluationThresholds::default();
        let empty = evaluate(&[], &[], defaults);
        assert!(empty.overall_pass, "empty selection, nothing missing");
        assert_eq!(empty.source_unavailable_rate, 0.0);
        assert!(empty.scorecards.is_empty());

        let missing = evaluate(&[], &ids(&["missing-run-id"]), defaults);
        assert!(!missing.overall_pass);

        let runs = [
            run(EngineMode::Baseline, TerminalMode::Supported, 99.9, 1.0),
            run(EngineMode::Rlm, TerminalMode::SourceUnavailable, 99.95, 0.0),
        ];
        let outcome = evaluate(&runs, &[], defaults);
        assert!(outcome.overall_pass);
        assert_eq!(outcome.source_unavailable_rate, 0.5);
        assert_eq!(outcome.scorecards.len(), 2);

        let at = |min_quality_score, max_source_unavailable_rate| EvaluationThresholds {
            min_quality_score,
            max_source_unavailable_rate,
        };
        assert!(
            evaluate(&runs, &[], at(99.9, 0.5)).overall_pass,
            "bounds inclusive"
        );
        assert!(
            !evaluate(&runs, &[], at(99.91, 0.5)).overall_pass,
            "one run below min"
        );
        assert!(
            !evaluate(&runs, &[], at(0.0, 0.49)).overall_pass,
            "rate above max"
        );
        assert!(!evaluate(&runs, &ids(&["x"]), at(0.0, 1.0)).overall_pass);

        // Scenario 38: an existing run plus a missing id, strict thresholds.
        let existing = [run(
            EngineMode::Baseline,
            TerminalMode::Supported,
            100.0,
            1.0,
        )];
        let strict = evaluate(&existing, &ids(&["missing-run-id"]), at(99.9, 0.0));
        assert!(!strict.overall_pass);
        assert!(evaluate(&existing, &[], at(99.9, 0.0)).overall_pass);
    }

    fn submission(name: &str, min: Option<f64>, max: Option<f64>) -> ReplayEvaluationSubmission {
        ReplayEvaluationSubmission {
            evaluation_name: name.to_owned(),
            replay_ids: vec![],
            engine_mode: None,
            min_quality_score: min,
            max_source_unavailable_rate: max,
        }
    }

    #[test]
    fn submissions_are_validated_in_contract_order() {
        let ok = |s: &ReplayEvaluationSubmission| validate_submission(s).is_ok();
        assert!(ok(&submission("smoke-eval", None, None)));
        assert!(ok(&submission(" e ", Some(0.0), Some(0.0))));
        assert!(ok(&submission("e", Some(100.0), Some(1.0))));

        let err = |s: &ReplayEvaluationSubmission| validate_submission(s).err();
        let min = Some(MIN_QUALITY_SCORE_OUT_OF_RANGE.to_owned());
        let max = Some(MAX_SOURCE_UNAVAILABLE_RATE_OUT_OF_RANGE.to_owned());
        assert_eq!(err(&submission("e", Some(101.0), None)), min);
        assert_eq!(err(&submission("e", Some(-0.01), None)), min);
        assert_eq!(err(&submission("e", Some(f64::NAN), None)), min);
        assert_eq!(err(&submission("e", None, Some(1.5))), max);
        assert_eq!(err(&submission("e", None, Some(-1.0))), max);
        assert_eq!(
            err(&submission("  ", None, None)),
            Some(EVALUATION_NAME_EMPTY.to_owned())
        );
        // Thresholds first (they are checked before authentication).
        assert_eq!(err(&submission("", Some(101.0), Some(1.5))), min);
        assert_eq!(err(&submission("", None, Some(1.5))), max);
        assert_eq!(validate_thresholds(&submission(" ", None, None)), Ok(()));
    }

    #[test]
    fn thresholds_default_to_zero_and_one() {
        let none = EvaluationThresholds::from_submission(&submission("e", None, None));
        assert_eq!(none, EvaluationThresholds::default());
        assert_eq!(none.min_quality_score, 0.0);
        assert_eq!(none.max_source_unavailable_rate, 1.0);
        let some = EvaluationThresholds::from_submission(&submission("e", Some(50.0), Some(0.2)));
        assert_eq!(some.min_quality_score, 50.0);
        assert_eq!(some.max_source_unavailable_rate, 0.2);
    }
}

//! `(pecr.v1.field_rules)` in the protos says what the servers enforce:
//! every bound, pattern and enum here is compared with the constant the
//! validation code uses, so neither can change alone.

use pecr_adapters::Operator;
use pecr_contracts::{budget, ids};
use pecr_edge::{FieldRules, field_rules};
use pecr_replay::scoring;

fn rules_of(field: &str) -> FieldRules {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    field_rules(&pool)
        .remove(field)
        .unwrap_or_else(|| panic!("{field} has no field_rules"))
}

fn range(field: &str) -> (Option<f64>, Option<f64>) {
    let rules = rules_of(field);
    (rules.minimum, rules.maximum)
}

fn as_f64(value: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    Some(value as f64)
}

#[test]
fn budget_bounds_are_the_contract_limits() {
    let cases = [
        (
            "max_operator_calls",
            0,
            u64::from(budget::MAX_OPERATOR_CALLS),
        ),
        ("max_bytes", 0, budget::MAX_BYTES),
        ("max_wallclock_ms", 0, budget::MAX_WALLCLOCK_MS),
        (
            "max_recursion_depth",
            0,
            u64::from(budget::MAX_RECURSION_DEPTH),
        ),
        ("max_parallelism", 1, u64::from(budget::MAX_PARALLELISM)),
    ];
    for (field, min, max) in cases {
        assert_eq!(
            range(&format!("pecr.v1.Budget.{field}")),
            (as_f64(min), as_f64(max)),
            "{field}"
        );
    }
}

#[test]
fn replay_verification_accepts_the_instants_rfc3339_can_write() {
    assert_eq!(
        range("pecr.v1.VerifyReplaysRequest.since_unix_ms"),
        (as_f64(0), as_f64(pecr_contracts::time::MAX_UNIX_MS))
    );
}

#[test]
fn evaluation_thresholds_are_the_scoring_ranges() {
    assert_eq!(
        range("pecr.v1.ReplayEvaluationSubmission.min_quality_score"),
        (Some(0.0), Some(scoring::QUALITY_SCORE_MAX))
    );
    assert_eq!(
        range("pecr.v1.ReplayEvaluationSubmission.max_source_unavailable_rate"),
        (Some(0.0), Some(scoring::SOURCE_UNAVAILABLE_RATE_MAX))
    );
    let replay_ids = rules_of("pecr.v1.ReplayEvaluationSubmission.replay_ids");
    assert_eq!(
        replay_ids.max_items.map(|n| n as usize),
        Some(scoring::MAX_REPLAY_IDS)
    );
}

#[test]
fn id_fields_follow_the_shared_id_rule() {
    let id = |max: usize| FieldRules {
        pattern: Some(ids::ID_PATTERN.to_owned()),
        min_length: Some(1),
        max_length: u32::try_from(max).ok(),
        ..FieldRules::default()
    };
    for field in [
        "pecr.v1.CallOperatorRequest.session_id",
        "pecr.v1.FinalizeRequest.session_id",
        "pecr.v1.ClaimMap.claim_map_id",
    ] {
        assert_eq!(rules_of(field), id(ids::ID_MAX_LEN), "{field}");
    }
    for field in [
        "pecr.v1.GetReplayRequest.run_id",
        "pecr.v1.GetEvaluationRequest.evaluation_id",
    ] {
        assert_eq!(rules_of(field), id(ids::STORE_ID_MAX_LEN), "{field}");
    }
    let replay_ids = rules_of("pecr.v1.ReplayEvaluationSubmission.replay_ids");
    assert_eq!(replay_ids.pattern.as_deref(), Some(ids::ID_PATTERN));
    assert_eq!(
        replay_ids.max_length.map(|n| n as usize),
        Some(ids::STORE_ID_MAX_LEN)
    );
}

#[test]
fn text_and_label_fields_follow_their_rules() {
    for field in [
        "pecr.v1.RunRequest.query",
        "pecr.v1.FinalizeRequest.response_text",
        "pecr.v1.ClaimMap.notes",
        "pecr.v1.Claim.claim_text",
    ] {
        assert_eq!(
            rules_of(field).pattern.as_deref(),
            Some(ids::TEXT_PATTERN),
            "{field}"
        );
    }
    for field in [
        "pecr.v1.SimulatePolicyRequest.action",
        "pecr.v1.ReplayEvaluationSubmission.evaluation_name",
    ] {
        let rules = rules_of(field);
        assert_eq!(
            rules.pattern.as_deref(),
            Some(ids::LABEL_PATTERN),
            "{field}"
        );
        assert_eq!(
            rules.max_length.map(|n| n as usize),
            Some(ids::LABEL_MAX_LEN),
            "{field}"
        );
    }
}

#[test]
fn enums_list_what_the_servers_accept() {
    let operators: Vec<String> = Operator::ALL
        .iter()
        .map(|op| op.name().to_owned())
        .collect();
    let mut documented = rules_of("pecr.v1.CallOperatorRequest.op_name").enum_values;
    let mut expected = operators;
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);
    let engines: Vec<String> = ["baseline", "rlm"]
        .iter()
        .map(|name| {
            name.parse::<pecr_replay::EngineMode>()
                .map(|mode| mode.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect();
    for field in [
        "pecr.v1.ListReplaysRequest.engine_mode",
        "pecr.v1.GetScorecardsRequest.engine_mode",
        "pecr.v1.ReplayEvaluationSubmission.engine_mode",
    ] {
        assert_eq!(rules_of(field).enum_values, engines, "{field}");
    }
    assert!("".parse::<pecr_replay::EngineMode>().is_err());
}

#[test]
fn the_patterns_mean_what_the_rules_check() {
    // The document's patterns, read literally, accept exactly what the
    // Rust rules accept on these samples.
    let id_chars = |text: &str| {
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    for sample in ["abc", "a.b_c-D9", "a b", "a/b", "é"] {
        assert_eq!(
            ids::check_id(sample).is_ok(),
            id_chars(sample),
            "{sample:?}"
        );
    }
    assert_eq!(ids::ID_PATTERN, "^[A-Za-z0-9._-]+$");
    assert_eq!(ids::TEXT_PATTERN, "^[^\\u0000]*$");
    assert_eq!(ids::LABEL_PATTERN, "^[^\\u0000-\\u001f\\u007f-\\u009f]+$");
}

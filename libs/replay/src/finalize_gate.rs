//! The finalize gate (spec 20 §7): every claim is checked against the
//! evidence emitted in the session, and the terminal mode follows.

use pecr_contracts::hashing::claim_id;
use pecr_contracts::is_sha256_hex;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1::{self, claim::Status};

/// The session facts the gate needs.
pub struct SessionUsage<'a> {
    /// Sorted, de-duplicated.
    pub emitted_evidence_ids: &'a [String],
    pub operator_calls_used: u64,
    pub max_operator_calls: u64,
    pub bytes_used: u64,
    pub max_bytes: u64,
}

/// Returns the gated claim map: threshold from config, claims trimmed,
/// sorted, re-identified, evidence-less SUPPORTED claims downgraded,
/// coverage and terminal mode computed. `claim_map_id` and `notes` are kept.
///
/// Coverage is the share of the claims that need evidence (every claim but
/// an ASSUMPTION) that are SUPPORTED by emitted evidence, so UNKNOWN claims
/// count against it; with no such claim it is 0.
pub fn gate(
    mut claim_map: v1::ClaimMap,
    usage: &SessionUsage<'_>,
    threshold: f64,
) -> PecrResult<v1::ClaimMap> {
    let mut supported = 0_u32;
    let mut eligible = 0_u32;
    for claim in &mut claim_map.claims {
        let text = claim.claim_text.trim();
        if text.is_empty() {
            return Err(PecrError::invalid_params(
                "claim.claim_text must be non-empty",
            ));
        }
        claim.claim_text = text.to_owned();
        claim.evidence_unit_ids.sort_unstable();
        claim.evidence_unit_ids.dedup();
        if claim.evidence_unit_ids.iter().any(|id| !is_sha256_hex(id)) {
            return Err(PecrError::invalid_params(
                "claim.evidence_unit_ids must be sha256 hex",
            ));
        }
        if claim
            .evidence_unit_ids
            .iter()
            .any(|id| usage.emitted_evidence_ids.binary_search(id).is_err())
        {
            return Err(PecrError::invalid_params(
                "claim references evidence not emitted in this trace",
            ));
        }
        let mut status = Status::try_from(claim.status).unwrap_or(Status::Unspecified);
        if status == Status::Unspecified {
            return Err(PecrError::invalid_params(
                "claim.status must be SUPPORTED, ASSUMPTION or UNKNOWN",
            ));
        }
        if status == Status::Supported {
            if claim.evidence_unit_ids.is_empty() {
                status = Status::Unknown;
            } else {
                supported += 1;
            }
        }
        if status != Status::Assumption {
            eligible += 1;
        }
        claim.status = status as i32;
        claim.claim_id = claim_id(
            &claim.claim_text,
            status.as_str_name(),
            &claim.evidence_unit_ids,
        );
    }
    // Every supported claim cites emitted evidence, so all of them are covered.
    let covered = supported;
    let coverage_observed = f64::from(covered) / f64::from(eligible.max(1));
    // max_bytes = 0 means unlimited, here as at operator time (decision 2).
    let budget_violation = usage.operator_calls_used > usage.max_operator_calls
        || (usage.max_bytes > 0 && usage.bytes_used > usage.max_bytes);
    let terminal_mode = if !budget_violation && supported > 0 && coverage_observed >= threshold {
        v1::TerminalMode::Supported
    } else {
        v1::TerminalMode::InsufficientEvidence
    };
    claim_map.coverage_threshold = threshold;
    claim_map.coverage_observed = coverage_observed;
    claim_map.terminal_mode = terminal_mode as i32;
    Ok(claim_map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_UNIT: &str = "f2a54285533a2e77a3262fa16318865222116f53ef798683c85009a1c37cdf3f";

    fn claim(text: &str, status: Status, ids: &[&str]) -> v1::Claim {
        v1::Claim {
            claim_id: String::new(),
            claim_text: text.into(),
            status: status as i32,
            evidence_unit_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    fn map(claims: Vec<v1::Claim>) -> v1::ClaimMap {
        v1::ClaimMap {
            claim_map_id: "cm".into(),
            terminal_mode: v1::TerminalMode::Supported as i32,
            claims,
            coverage_threshold: 0.0,
            coverage_observed: 0.5,
            notes: Some("kept".into()),
        }
    }

    fn usage(emitted: &[String], bytes_used: u64, max_bytes: u64) -> SessionUsage<'_> {
        SessionUsage {
            emitted_evidence_ids: emitted,
            operator_calls_used: 1,
            max_operator_calls: 10,
            bytes_used,
            max_bytes,
        }
    }

    #[test]
    fn scenario_12_citing_unemitted_evidence_is_refused() {
        let emitted: Vec<String> = vec![];
        let result = gate(
            map(vec![claim("x", Status::Supported, &[PUBLIC_UNIT])]),
            &usage(&emitted, 0, 1024),
            0.95,
        );
        assert_eq!(
            result.err().map(|e| (e.http_status, e.message)),
            Some((
                400,
                "claim references evidence not emitted in this trace".into()
            ))
        );
    }

    #[test]
    fn scenario_12_supported_without_evidence_is_downgraded() {
        let emitted: Vec<String> = vec![];
        let gated = gate(
            map(vec![claim("unsupported claim", Status::Supported, &[])]),
            &usage(&emitted, 0, 1024),
            0.95,
        )
        .expect("gated");
        assert_eq!(gated.claims[0].status, Status::Unknown as i32);
        assert_eq!(
            gated.claims[0].claim_id,
            "aeda7293c2ba8690560507997bade281b49dc52a6c17c5ef51bc255b52591ed7"
        );
        assert_eq!(gated.coverage_observed, 0.0);
        assert_eq!(
            gated.terminal_mode,
            v1::TerminalMode::InsufficientEvidence as i32
        );
        assert_eq!(
            (gated.claim_map_id.as_str(), gated.notes.as_deref()),
            ("cm", Some("kept"))
        );
    }

    #[test]
    fn scenario_12_supported_with_emitted_evidence() {
        let emitted = vec![PUBLIC_UNIT.to_owned()];
        let gated = gate(
            map(vec![claim(
                " public doc retrieved ",
                Status::Supported,
                &[PUBLIC_UNIT, PUBLIC_UNIT],
            )]),
            &usage(&emitted, 0, 1024),
            0.95,
        )
        .expect("gated");
        assert_eq!(gated.terminal_mode, v1::TerminalMode::Supported as i32);
        assert_eq!(gated.coverage_observed, 1.0);
        assert_eq!(gated.coverage_threshold, 0.95);
        assert_eq!(gated.claims[0].claim_text, "public doc retrieved");
        assert_eq!(
            gated.claims[0].evidence_unit_ids,
            vec![PUBLIC_UNIT.to_owned()]
        );
        assert_eq!(
            gated.claims[0].claim_id,
            "ad3099dcca04ed3e2f258c23006f2f566ff0c50f462167efdc566a4a3337b3a9"
        );
    }

    #[test]
    fn unknown_claims_count_against_coverage() {
        let emitted = vec![PUBLIC_UNIT.to_owned()];
        let mut claims = vec![claim(
            "public doc retrieved",
            Status::Supported,
            &[PUBLIC_UNIT],
        )];
        claims.extend((0..200).map(|n| claim(&format!("guess {n}"), Status::Unknown, &[])));
        let gated = gate(map(claims), &usage(&emitted, 0, 1024), 0.95).expect("gated");
        assert_eq!(gated.coverage_observed, 1.0 / 201.0);
        assert_eq!(
            gated.terminal_mode,
            v1::TerminalMode::InsufficientEvidence as i32
        );
        // Even a zero threshold needs a supported claim.
        let lenient = gate(
            map(vec![claim("guess", Status::Unknown, &[])]),
            &usage(&emitted, 0, 1024),
            0.0,
        )
        .expect("gated");
        assert_eq!(lenient.coverage_observed, 0.0);
        assert_eq!(
            lenient.terminal_mode,
            v1::TerminalMode::InsufficientEvidence as i32
        );
    }

    #[test]
    fn downgraded_claims_count_against_coverage_and_assumptions_do_not() {
        let emitted = vec![PUBLIC_UNIT.to_owned()];
        let supported = || claim("public doc retrieved", Status::Supported, &[PUBLIC_UNIT]);
        let downgraded = gate(
            map(vec![
                supported(),
                claim("no evidence", Status::Supported, &[]),
            ]),
            &usage(&emitted, 0, 1024),
            0.5,
        )
        .expect("gated");
        assert_eq!(downgraded.coverage_observed, 0.5);
        assert_eq!(downgraded.terminal_mode, v1::TerminalMode::Supported as i32);

        let assumptions = gate(
            map(vec![
                supported(),
                claim("the customer means the public one", Status::Assumption, &[]),
                claim("a second assumption", Status::Assumption, &[]),
            ]),
            &usage(&emitted, 0, 1024),
            0.95,
        )
        .expect("gated");
        assert_eq!(assumptions.coverage_observed, 1.0);
        assert_eq!(
            assumptions.terminal_mode,
            v1::TerminalMode::Supported as i32
        );

        let only_assumptions = gate(
            map(vec![claim("an assumption", Status::Assumption, &[])]),
            &usage(&emitted, 0, 1024),
            0.0,
        )
        .expect("gated");
        assert_eq!(only_assumptions.coverage_observed, 0.0);
        assert_eq!(
            only_assumptions.terminal_mode,
            v1::TerminalMode::InsufficientEvidence as i32
        );
    }

    #[test]
    fn byte_overrun_is_a_violation_but_zero_max_bytes_is_unlimited() {
        let emitted = vec![PUBLIC_UNIT.to_owned()];
        let claims = || {
            map(vec![claim(
                "public doc retrieved",
                Status::Supported,
                &[PUBLIC_UNIT],
            )])
        };
        let over = gate(claims(), &usage(&emitted, 2048, 1024), 0.95).expect("gated");
        assert_eq!(
            over.terminal_mode,
            v1::TerminalMode::InsufficientEvidence as i32
        );
        let unlimited = gate(claims(), &usage(&emitted, 5, 0), 0.95).expect("gated");
        assert_eq!(unlimited.terminal_mode, v1::TerminalMode::Supported as i32);
    }

    #[test]
    fn blank_text_and_bad_ids_are_400() {
        let emitted: Vec<String> = vec![];
        let blank = gate(
            map(vec![claim("  ", Status::Unknown, &[])]),
            &usage(&emitted, 0, 0),
            0.95,
        );
        assert_eq!(
            blank.err().map(|e| e.message),
            Some("claim.claim_text must be non-empty".into())
        );
        let bad = gate(
            map(vec![claim("x", Status::Assumption, &["ABC"])]),
            &usage(&emitted, 0, 0),
            0.95,
        );
        assert_eq!(
            bad.err().map(|e| e.message),
            Some("claim.evidence_unit_ids must be sha256 hex".into())
        );
    }
}

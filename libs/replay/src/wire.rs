//! Replay models ⇄ generated `pecr.v1` messages, for the two services that
//! pass a run between them: terminal modes, the gated claim map and the
//! run record.

use pecr_proto::v1;

use crate::bundle::{CitedEvidence, Claim, ClaimMap};
use crate::modes::{ClaimStatus, EngineMode, TerminalMode};
use crate::run_record::RunRecord;

/// A proto terminal mode as its contract value; None for UNSPECIFIED.
pub fn contract_mode(mode: i32) -> Option<TerminalMode> {
    match v1::TerminalMode::try_from(mode).ok()? {
        v1::TerminalMode::Supported => Some(TerminalMode::Supported),
        v1::TerminalMode::InsufficientEvidence => Some(TerminalMode::InsufficientEvidence),
        v1::TerminalMode::InsufficientPermission => Some(TerminalMode::InsufficientPermission),
        v1::TerminalMode::SourceUnavailable => Some(TerminalMode::SourceUnavailable),
        v1::TerminalMode::Unspecified => None,
    }
}

/// A contract terminal mode as its proto value.
pub fn proto_mode(mode: TerminalMode) -> v1::TerminalMode {
    match mode {
        TerminalMode::Supported => v1::TerminalMode::Supported,
        TerminalMode::InsufficientEvidence => v1::TerminalMode::InsufficientEvidence,
        TerminalMode::InsufficientPermission => v1::TerminalMode::InsufficientPermission,
        TerminalMode::SourceUnavailable => v1::TerminalMode::SourceUnavailable,
    }
}

fn status_from_proto(status: i32) -> ClaimStatus {
    match v1::claim::Status::try_from(status) {
        Ok(v1::claim::Status::Supported) => ClaimStatus::Supported,
        Ok(v1::claim::Status::Assumption) => ClaimStatus::Assumption,
        _ => ClaimStatus::Unknown,
    }
}

/// A contract claim status as its proto value.
pub fn proto_status(status: ClaimStatus) -> v1::claim::Status {
    match status {
        ClaimStatus::Supported => v1::claim::Status::Supported,
        ClaimStatus::Assumption => v1::claim::Status::Assumption,
        ClaimStatus::Unknown => v1::claim::Status::Unknown,
    }
}

/// A contract claim map as the proto message.
pub fn claim_map_to_proto(map: &ClaimMap) -> v1::ClaimMap {
    v1::ClaimMap {
        claim_map_id: map.claim_map_id.clone(),
        terminal_mode: proto_mode(map.terminal_mode) as i32,
        claims: map
            .claims
            .iter()
            .map(|claim| v1::Claim {
                claim_id: claim.claim_id.clone(),
                claim_text: claim.claim_text.clone(),
                status: proto_status(claim.status) as i32,
                evidence_unit_ids: claim.evidence_unit_ids.clone(),
            })
            .collect(),
        coverage_threshold: map.coverage_threshold,
        coverage_observed: map.coverage_observed,
        notes: map.notes.clone(),
    }
}

/// A claim map as the contract model; None when it has no terminal mode.
pub fn claim_map_from_proto(map: &v1::ClaimMap) -> Option<ClaimMap> {
    Some(ClaimMap {
        claim_map_id: map.claim_map_id.clone(),
        terminal_mode: contract_mode(map.terminal_mode)?,
        claims: map
            .claims
            .iter()
            .map(|claim| Claim {
                claim_id: claim.claim_id.clone(),
                claim_text: claim.claim_text.clone(),
                status: status_from_proto(claim.status),
                evidence_unit_ids: claim.evidence_unit_ids.clone(),
            })
            .collect(),
        coverage_threshold: map.coverage_threshold,
        coverage_observed: map.coverage_observed,
        notes: map.notes.clone(),
    })
}

/// A run record as the contract model; the reason when a field is invalid.
pub fn run_record_from_proto(run: v1::RunRecord) -> Result<RunRecord, &'static str> {
    Ok(RunRecord {
        engine_mode: run
            .engine_mode
            .parse::<EngineMode>()
            .map_err(|_| "run.engine_mode must be baseline or rlm")?,
        loop_terminal_mode: contract_mode(run.loop_terminal_mode)
            .ok_or("run.loop_terminal_mode is required")?,
        failure_mode: run.failure_mode.and_then(contract_mode),
        query: run.query,
        loop_response_text: run.loop_response_text,
        operator_calls_used: run.operator_calls_used,
        bytes_used: run.bytes_used,
        depth_used: run.depth_used,
        evidence_ref_count: run.evidence_ref_count,
        evidence_unit_ids: run.evidence_unit_ids,
        cited_evidence: run
            .cited_evidence
            .into_iter()
            .map(cited_from_proto)
            .collect(),
    })
}

/// A cited unit's identity, from the wire.
pub fn cited_from_proto(unit: v1::EvidenceUnitRef) -> CitedEvidence {
    CitedEvidence {
        evidence_unit_id: unit.evidence_unit_id,
        source_system: unit.source_system,
        object_id: unit.object_id,
        version_id: unit.version_id,
    }
}

/// A cited unit's identity, for the wire (no transforms: a bundle does not
/// record them).
pub fn cited_to_proto(unit: &CitedEvidence) -> v1::EvidenceUnitRef {
    v1::EvidenceUnitRef {
        evidence_unit_id: unit.evidence_unit_id.clone(),
        source_system: unit.source_system.clone(),
        object_id: unit.object_id.clone(),
        version_id: unit.version_id.clone(),
        transform_types: Vec::new(),
    }
}

impl From<RunRecord> for v1::RunRecord {
    fn from(run: RunRecord) -> Self {
        Self {
            query: run.query,
            engine_mode: run.engine_mode.as_str().to_owned(),
            loop_terminal_mode: proto_mode(run.loop_terminal_mode) as i32,
            loop_response_text: run.loop_response_text,
            operator_calls_used: run.operator_calls_used,
            bytes_used: run.bytes_used,
            depth_used: run.depth_used,
            evidence_ref_count: run.evidence_ref_count,
            evidence_unit_ids: run.evidence_unit_ids,
            failure_mode: run.failure_mode.map(|mode| proto_mode(mode) as i32),
            cited_evidence: run.cited_evidence.iter().map(cited_to_proto).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_mode_survives_the_round_trip() {
        for mode in TerminalMode::ALL {
            assert_eq!(contract_mode(proto_mode(mode) as i32), Some(mode));
        }
        assert_eq!(contract_mode(v1::TerminalMode::Unspecified as i32), None);
        assert_eq!(contract_mode(-1), None);
    }

    #[test]
    fn a_claim_map_survives_the_round_trip() {
        let map = ClaimMap {
            claim_map_id: "cm".into(),
            terminal_mode: TerminalMode::SourceUnavailable,
            claims: ClaimStatus::ALL
                .iter()
                .map(|status| Claim {
                    claim_id: format!("id {}", status.as_str()),
                    claim_text: status.as_str().to_owned(),
                    status: *status,
                    evidence_unit_ids: vec!["e1".into()],
                })
                .collect(),
            coverage_threshold: 0.95,
            coverage_observed: 1.0 / 3.0,
            notes: Some("n".into()),
        };
        assert_eq!(claim_map_from_proto(&claim_map_to_proto(&map)), Some(map));
    }

    #[test]
    fn a_run_record_survives_the_round_trip() {
        let record = RunRecord {
            query: "q".into(),
            engine_mode: EngineMode::Rlm,
            loop_terminal_mode: TerminalMode::InsufficientEvidence,
            loop_response_text: Some("loop".into()),
            operator_calls_used: 3,
            bytes_used: 120,
            depth_used: 2,
            evidence_ref_count: 1,
            evidence_unit_ids: vec!["e1".into()],
            failure_mode: Some(TerminalMode::SourceUnavailable),
            cited_evidence: Vec::new(),
        };
        let wire = v1::RunRecord::from(record.clone());
        assert_eq!(wire.engine_mode, "rlm");
        assert_eq!(run_record_from_proto(wire), Ok(record));

        let minimal = v1::RunRecord {
            engine_mode: "baseline".into(),
            loop_terminal_mode: v1::TerminalMode::Supported as i32,
            ..v1::RunRecord::default()
        };
        assert!(run_record_from_proto(minimal.clone()).is_ok());
        let bad_engine = v1::RunRecord {
            engine_mode: "BASELINE".into(),
            ..minimal.clone()
        };
        assert!(run_record_from_proto(bad_engine).is_err());
        let no_mode = v1::RunRecord {
            loop_terminal_mode: v1::TerminalMode::Unspecified as i32,
            ..minimal
        };
        assert!(run_record_from_proto(no_mode).is_err());
    }

    #[test]
    fn a_claim_map_needs_a_terminal_mode() {
        let map = v1::ClaimMap {
            claim_map_id: "cm".into(),
            terminal_mode: v1::TerminalMode::Supported as i32,
            claims: vec![v1::Claim {
                claim_id: "c1".into(),
                claim_text: "x".into(),
                status: v1::claim::Status::Assumption as i32,
                evidence_unit_ids: vec!["e1".into()],
            }],
            coverage_threshold: 0.95,
            coverage_observed: 1.0,
            notes: None,
        };
        let contract = claim_map_from_proto(&map).expect("has a mode");
        assert_eq!(contract.terminal_mode, TerminalMode::Supported);
        assert_eq!(contract.claims[0].status, ClaimStatus::Assumption);
        let unspecified = v1::ClaimMap {
            terminal_mode: v1::TerminalMode::Unspecified as i32,
            ..map
        };
        assert!(claim_map_from_proto(&unspecified).is_none());
    }
}

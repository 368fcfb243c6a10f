//! Conversions between generated messages and their `pecr-contracts`
//! models, written once for every service.

use pecr_contracts::budget::Budget;
use pecr_contracts::replay::{Claim, ClaimMap, ClaimStatus, EngineMode, TerminalMode};
use pecr_contracts::run_record::RunRecord;

use crate::v1;

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
    })
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
        }
    }
}

impl From<&v1::Budget> for Budget {
    fn from(budget: &v1::Budget) -> Self {
        Self {
            max_operator_calls: budget.max_operator_calls,
            max_bytes: budget.max_bytes,
            max_wallclock_ms: budget.max_wallclock_ms,
            max_recursion_depth: budget.max_recursion_depth,
            max_parallelism: budget.max_parallelism,
        }
    }
}

impl From<&Budget> for v1::Budget {
    fn from(budget: &Budget) -> Self {
        Self {
            max_operator_calls: budget.max_operator_calls,
            max_bytes: budget.max_bytes,
            max_wallclock_ms: budget.max_wallclock_ms,
            max_recursion_depth: budget.max_recursion_depth,
            max_parallelism: budget.max_parallelism,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_survives_the_round_trip_with_and_without_parallelism() {
        for parallelism in [None, Some(4)] {
            let budget = Budget {
                max_operator_calls: 10,
                max_bytes: 1_048_576,
                max_wallclock_ms: 10_000,
                max_recursion_depth: 5,
                max_parallelism: parallelism,
            };
            let wire = v1::Budget::from(&budget);
            assert_eq!(wire.max_parallelism, parallelism);
            assert_eq!(Budget::from(&wire), budget);
        }
    }
}

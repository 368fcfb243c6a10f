//! Replay models (`pecr-replay`) ⇄ generated protobuf messages.

use pecr_errors::PecrError;
use pecr_proto::v1;
use pecr_replay::{
    ClaimMap, EngineMode, ReplayBundle, ReplayBundleMetadata, ReplayEvaluationResult,
    ReplayEvaluationSubmission, ReplayRunScore, RunQualityScorecard, TerminalMode,
};

use crate::gateway_client::proto_mode;

fn mode_to_proto(mode: TerminalMode) -> i32 {
    proto_mode(mode) as i32
}

/// The gateway's final claim map as the contract model (for the bundle).
pub fn claim_map_from_proto(map: &v1::ClaimMap) -> Result<ClaimMap, PecrError> {
    pecr_replay::wire::claim_map_from_proto(map)
        .ok_or_else(|| PecrError::internal("claim map without terminal mode"))
}

pub fn metadata_to_proto(metadata: &ReplayBundleMetadata) -> v1::ReplayBundleMetadata {
    v1::ReplayBundleMetadata {
        schema_version: metadata.schema_version,
        run_id: metadata.run_id.clone(),
        trace_id: metadata.trace_id.clone(),
        request_id: metadata.request_id.clone(),
        principal_id_hash: metadata.principal_id_hash.clone(),
        engine_mode: metadata.engine_mode.as_str().to_owned(),
        recorded_at_unix_ms: metadata.recorded_at_unix_ms,
        terminal_mode: mode_to_proto(metadata.terminal_mode),
        quality_score: metadata.quality_score,
        bundle_hash: metadata.bundle_hash.clone(),
    }
}

pub fn bundle_to_proto(bundle: &ReplayBundle) -> v1::ReplayBundle {
    v1::ReplayBundle {
        metadata: Some(metadata_to_proto(&bundle.metadata)),
        query: bundle.query.clone(),
        budget: Some(v1::Budget::from(&bundle.budget)),
        session_id: bundle.session_id.clone(),
        policy_snapshot_id: bundle.policy_snapshot_id.clone(),
        loop_terminal_mode: mode_to_proto(bundle.loop_terminal_mode),
        loop_response_text: bundle.loop_response_text.clone(),
        response_text: bundle.response_text.clone(),
        claim_map: Some(pecr_replay::wire::claim_map_to_proto(&bundle.claim_map)),
        operator_calls_used: bundle.operator_calls_used,
        bytes_used: bundle.bytes_used,
        depth_used: bundle.depth_used,
        evidence_ref_count: bundle.evidence_ref_count,
        evidence_unit_ids: bundle.evidence_unit_ids.clone(),
        cited_evidence: bundle
            .cited_evidence
            .iter()
            .map(pecr_replay::wire::cited_to_proto)
            .collect(),
    }
}

/// An engine mode filter; anything but `baseline`/`rlm` is invalid.
pub fn engine_mode(raw: Option<&str>) -> Result<Option<EngineMode>, PecrError> {
    raw.map(|text| {
        text.parse::<EngineMode>()
            .map_err(|_| PecrError::invalid_params("engine_mode must be baseline or rlm"))
    })
    .transpose()
}

pub fn submission_from_proto(
    submission: &v1::ReplayEvaluationSubmission,
) -> Result<ReplayEvaluationSubmission, PecrError> {
    Ok(ReplayEvaluationSubmission {
        evaluation_name: submission.evaluation_name.clone(),
        replay_ids: submission.replay_ids.clone(),
        engine_mode: engine_mode(submission.engine_mode.as_deref())?,
        min_quality_score: submission.min_quality_score,
        max_source_unavailable_rate: submission.max_source_unavailable_rate,
    })
}

fn run_score_to_proto(score: &ReplayRunScore) -> v1::ReplayRunScore {
    v1::ReplayRunScore {
        run_id: score.run_id.clone(),
        trace_id: score.trace_id.clone(),
        engine_mode: score.engine_mode.as_str().to_owned(),
        terminal_mode: mode_to_proto(score.terminal_mode),
        quality_score: score.quality_score,
        coverage_observed: score.coverage_observed,
    }
}

pub fn scorecard_to_proto(card: &RunQualityScorecard) -> v1::RunQualityScorecard {
    v1::RunQualityScorecard {
        engine_mode: card.engine_mode.as_str().to_owned(),
        run_count: card.run_count,
        average_quality_score: card.average_quality_score,
        minimum_quality_score: card.minimum_quality_score,
        maximum_quality_score: card.maximum_quality_score,
        supported_rate: card.supported_rate,
        source_unavailable_rate: card.source_unavailable_rate,
        average_coverage_observed: card.average_coverage_observed,
    }
}

pub fn evaluation_to_proto(result: &ReplayEvaluationResult) -> v1::ReplayEvaluationResult {
    v1::ReplayEvaluationResult {
        evaluation_id: result.evaluation_id.clone(),
        evaluation_name: result.evaluation_name.clone(),
        principal_id_hash: result.principal_id_hash.clone(),
        created_at_unix_ms: result.created_at_unix_ms,
        replay_ids: result.replay_ids.clone(),
        missing_replay_ids: result.missing_replay_ids.clone(),
        run_results: result.run_results.iter().map(run_score_to_proto).collect(),
        scorecards: result.scorecards.iter().map(scorecard_to_proto).collect(),
        overall_pass: result.overall_pass,
    }
}

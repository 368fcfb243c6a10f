//! Replay evaluations (spec 30 §13.1): the caller's runs selected by id or
//! the newest ones, scored against the submission's thresholds, and stored.
//! Authentication, rate limits and the threshold ranges are checked by the
//! service before this runs.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use pecr_contracts::ids::new_ulid;
use pecr_errors::{PecrError, PecrResult};
use pecr_replay::scoring::{EvaluationThresholds, evaluate, validate_submission};
use pecr_replay::{
    EngineMode, ReplayBundle, ReplayEvaluationResult, ReplayEvaluationSubmission, ReplayRunScore,
};

use crate::replay_store::{PrincipalKey, ReplayStore};
use crate::validate;

/// Evaluates `submission` over `owner`'s runs; one evaluation reads at most
/// `list_limit` bundles.
pub async fn run(
    store: &ReplayStore,
    owner: &PrincipalKey,
    submission: &ReplayEvaluationSubmission,
    list_limit: u32,
) -> PecrResult<ReplayEvaluationResult> {
    validate_submission(submission).map_err(PecrError::invalid_params)?;
    // One evaluation reads no more bundles than one without ids would.
    if submission.replay_ids.len() > list_limit as usize {
        return Err(PecrError::invalid_params(format!(
            "replay_ids must list at most {list_limit} ids"
        )));
    }
    validate::submission(submission)?;
    let (selected, missing) = if submission.replay_ids.is_empty() {
        let newest = store
            .list_bundles(owner, submission.engine_mode, list_limit)
            .await?;
        (newest, Vec::new())
    } else {
        let found = store.load_bundles(owner, &submission.replay_ids).await?;
        select_runs(&submission.replay_ids, &found, submission.engine_mode)
    };
    let run_results: Vec<ReplayRunScore> =
        selected.iter().map(ReplayRunScore::from_bundle).collect();
    let outcome = evaluate(
        &run_results,
        &missing,
        EvaluationThresholds::from_submission(submission),
    );
    let result = ReplayEvaluationResult {
        evaluation_id: new_ulid(),
        evaluation_name: submission.evaluation_name.trim().to_owned(),
        principal_id_hash: owner.principal_id_hash.clone(),
        created_at_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64),
        replay_ids: run_results.iter().map(|run| run.run_id.clone()).collect(),
        missing_replay_ids: missing,
        run_results,
        scorecards: outcome.scorecards,
        overall_pass: outcome.overall_pass,
    };
    store.store_evaluation(owner, &result).await?;
    Ok(result)
}

/// Spec 30 §13.1 step 6 over bundles loaded at once: in the given order,
/// an id without a bundle is missing, a bundle of another engine mode is
/// left out, and a duplicate id is selected (or missing) each time it appears.
fn select_runs(
    replay_ids: &[String],
    found: &HashMap<String, ReplayBundle>,
    engine_mode: Option<EngineMode>,
) -> (Vec<ReplayBundle>, Vec<String>) {
    let mut selected = Vec::new();
    let mut missing = Vec::new();
    for run_id in replay_ids {
        match found.get(run_id) {
            Some(bundle) if engine_mode.is_none_or(|mode| mode == bundle.metadata.engine_mode) => {
                selected.push(bundle.clone());
            }
            Some(_) => {}
            None => missing.push(run_id.clone()),
        }
    }
    (selected, missing)
}

//! Entry checks of controller requests beyond the contract's own (budget,
//! thresholds, engine mode): text PostgreSQL cannot store and replay ids
//! outside the store-id rule are 400 `ERR_INVALID_PARAMS` naming the field,
//! before anything is run or stored. Run and evaluation ids in a path keep
//! the contract's 404 (spec 30 §12.4, §13.2), answered by the store.

use pecr_contracts::ids::{self, ShapeError};
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;
use pecr_replay::ReplayEvaluationSubmission;
use pecr_replay::scoring::MAX_REPLAY_IDS;

fn check(field: &str, rule: Result<(), ShapeError>) -> PecrResult<()> {
    rule.map_err(|reason| PecrError::invalid_params(format!("invalid {field}: {reason}")))
}

/// `since_unix_ms` within the contract's range.
pub fn verify_replays(request: &v1::VerifyReplaysRequest) -> PecrResult<()> {
    match request.since_unix_ms {
        Some(since) if since > pecr_contracts::time::MAX_UNIX_MS => Err(PecrError::invalid_params(
            "since_unix_ms must be at most 253402300799999 (the end of year 9999)",
        )),
        _ => Ok(()),
    }
}

pub fn run(request: &v1::RunRequest) -> PecrResult<()> {
    check("query", ids::check_text(&request.query))
}

/// After the contract's own checks: a blank name has its own message there.
pub fn submission(submission: &ReplayEvaluationSubmission) -> PecrResult<()> {
    check(
        "evaluation_name",
        ids::check_label(&submission.evaluation_name, ids::LABEL_MAX_LEN),
    )?;
    if submission.replay_ids.len() > MAX_REPLAY_IDS {
        return Err(PecrError::invalid_params(format!(
            "invalid replay_ids: at most {MAX_REPLAY_IDS} ids"
        )));
    }
    for id in &submission.replay_ids {
        check("replay_ids", ids::check_store_id(id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_accepts_instants_up_to_the_end_of_year_9999() {
        let request = |since| v1::VerifyReplaysRequest {
            since_unix_ms: since,
            ..Default::default()
        };
        assert!(verify_replays(&request(None)).is_ok());
        assert!(verify_replays(&request(Some(pecr_contracts::time::MAX_UNIX_MS))).is_ok());
        let error = verify_replays(&request(Some(1 << 63))).expect_err("out of range");
        assert_eq!(error.http_status, 400);
    }

    fn submission_of(name: &str, replay_ids: Vec<String>) -> ReplayEvaluationSubmission {
        ReplayEvaluationSubmission {
            evaluation_name: name.to_owned(),
            replay_ids,
            engine_mode: None,
            min_quality_score: None,
            max_source_unavailable_rate: None,
        }
    }

    fn message(result: PecrResult<()>) -> String {
        result.err().map(|err| err.message).unwrap_or_default()
    }

    #[test]
    fn queries_hold_no_nul() {
        let query = |text: &str| v1::RunRequest {
            query: text.into(),
            budget: None,
        };
        assert_eq!(run(&query("")), Ok(()));
        assert_eq!(run(&query("status?\n")), Ok(()));
        assert_eq!(
            message(run(&query("a\0"))),
            "invalid query: must not contain NUL characters"
        );
    }

    #[test]
    fn submissions_name_labels_and_store_ids() {
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV-01ARZ3NDEKTSV4RRFFQ69G5FAW".to_owned();
        assert_eq!(
            submission(&submission_of("smoke", vec![id.clone()])),
            Ok(())
        );
        assert_eq!(
            message(submission(&submission_of("smo\0ke", vec![]))),
            "invalid evaluation_name: must be 1..=256 characters without control characters"
        );
        assert_eq!(
            message(submission(&submission_of("smoke", vec![id, "a\0".into()]))),
            "invalid replay_ids: must be 1..=256 characters of [A-Za-z0-9._-]"
        );
        let many = vec!["a".to_owned(); MAX_REPLAY_IDS + 1];
        assert_eq!(
            message(submission(&submission_of("smoke", many))),
            "invalid replay_ids: at most 1000 ids"
        );
    }
}

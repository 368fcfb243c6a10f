//! Replay and evaluation, free of I/O: the replay bundle a run leaves behind
//! and its integrity hash, the run record it is assembled from, the quality
//! score, the scorecards and the evaluation verdict.
//!
//! Modules depend one way: `modes` ← `bundle` ← `evaluation` ← `scoring` ←
//! `run_record` ← `wire`, with `decimal` (rounding) beneath the scoring.
//! Canonical JSON, the hash recipes and ids come from `pecr-contracts`.

pub mod bundle;
pub mod decimal;
pub mod evaluation;
pub mod modes;
pub mod run_record;
pub mod scoring;
pub mod wire;

#[cfg(test)]
mod fixtures;

pub use bundle::{
    Claim, ClaimMap, REPLAY_SCHEMA_VERSION, ReplayBundle, ReplayBundleMetadata, ReplayError,
    new_run_id, run_id,
};
pub use evaluation::{
    ReplayEvaluationResult, ReplayEvaluationSubmission, ReplayRunScore, RunQualityScorecard,
};
pub use modes::{ClaimStatus, EngineMode, TerminalMode, UnknownEnumValue};
pub use run_record::{RunRecord, SessionFacts, reported_mode};

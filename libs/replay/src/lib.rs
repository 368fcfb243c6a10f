//! Replay and evaluation, free of I/O: the finalize gate that decides a
//! run's terminal mode, the replay bundle a run leaves behind and its
//! integrity hash, the run record it is assembled from, re-deciding a stored
//! bundle, the quality score, the scorecards and the evaluation verdict.
//!
//! Modules depend one way: `modes` ← `bundle` ← `evaluation` ← `scoring` ←
//! `run_record` ← `wire` ← `redecide`, with `decimal` (rounding) beneath the
//! scoring and `finalize_gate` (on the generated messages) beneath
//! `redecide`. The gate lives here rather than in the gateway so the
//! controller can re-run it on stored bundles without reaching gateway code.
//! Canonical JSON, the hash recipes and ids come from `pecr-contracts`.

pub mod bundle;
pub mod decimal;
pub mod evaluation;
pub mod finalize_gate;
pub mod modes;
pub mod redecide;
pub mod run_record;
pub mod scoring;
pub mod wire;

#[cfg(test)]
mod fixtures;

pub use bundle::{
    CitedEvidence, Claim, ClaimMap, REPLAY_SCHEMA_VERSION, ReplayBundle, ReplayBundleMetadata,
    ReplayError, new_run_id, run_id,
};
pub use evaluation::{
    ReplayEvaluationResult, ReplayEvaluationSubmission, ReplayRunScore, RunQualityScorecard,
};
pub use modes::{ClaimStatus, EngineMode, TerminalMode, UnknownEnumValue};
pub use redecide::{Redecision, redecide};
pub use run_record::{RunRecord, SessionFacts, reported_mode};

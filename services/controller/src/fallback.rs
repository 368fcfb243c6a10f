//! The controller's own fallback from the RLM engine (`PECR_CONTROLLER_
//! AUTO_FALLBACK`): after `PECR_CONTROLLER_AUTO_FALLBACK_AFTER` runs in a
//! row fail in the bridge, later runs use the baseline engine until the
//! process restarts. The failing runs still fail, with their own error:
//! the fallback changes what comes next, never what a caller was told.
//! Sticky, because a bridge that failed that often needs an operator, and
//! flapping between engines would make scorecards meaningless.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pecr_errors::{ErrorCode, PecrError};
use pecr_replay::EngineMode;

#[derive(Debug, Default)]
pub struct EngineFallback {
    /// Consecutive bridge failures that switch the engine; 0 = never.
    after: u32,
    consecutive: AtomicU32,
    active: AtomicBool,
}

impl EngineFallback {
    pub fn new(after: u32) -> Self {
        Self {
            after,
            ..Self::default()
        }
    }

    /// The engine a new run uses.
    pub fn engine(&self, configured: EngineMode) -> EngineMode {
        if configured == EngineMode::Rlm && self.active.load(Ordering::Acquire) {
            EngineMode::Baseline
        } else {
            configured
        }
    }

    /// Counts how an RLM run ended; true when this failure switched the
    /// engine (exactly once).
    pub fn record(&self, outcome: Result<(), &PecrError>) -> bool {
        if self.after == 0 {
            return false;
        }
        match outcome {
            Err(error) if is_bridge_failure(error.code) => {
                let failures = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                failures >= self.after && !self.active.swap(true, Ordering::AcqRel)
            }
            // Another failure (the gateway, a budget) says nothing of the bridge.
            Err(_) => false,
            Ok(()) => {
                self.consecutive.store(0, Ordering::Release);
                false
            }
        }
    }
}

fn is_bridge_failure(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::RlmBridgeFailed
            | ErrorCode::RlmBridgeInternal
            | ErrorCode::RlmBridgeProtocol
            | ErrorCode::RlmBridgeScriptNotFound
            | ErrorCode::RlmBridgeSpawnFailed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge_failed() -> PecrError {
        PecrError::new(
            ErrorCode::RlmBridgeFailed,
            "rlm bridge failed: reason=bridge_eof",
        )
    }

    #[test]
    fn consecutive_bridge_failures_switch_once_and_stay_switched() {
        let fallback = EngineFallback::new(3);
        let failed = bridge_failed();
        assert!(!fallback.record(Err(&failed)));
        assert!(!fallback.record(Err(&failed)));
        assert_eq!(fallback.engine(EngineMode::Rlm), EngineMode::Rlm);
        assert!(fallback.record(Err(&failed)));
        assert!(!fallback.record(Err(&failed)), "switched once");
        assert_eq!(fallback.engine(EngineMode::Rlm), EngineMode::Baseline);
        assert!(!fallback.record(Ok(())));
        assert_eq!(
            fallback.engine(EngineMode::Rlm),
            EngineMode::Baseline,
            "sticky"
        );
    }

    #[test]
    fn a_success_or_another_failure_does_not_count() {
        let fallback = EngineFallback::new(2);
        let failed = bridge_failed();
        let gateway = PecrError::new(ErrorCode::SourceUnavailable, "gateway unavailable");
        assert!(!fallback.record(Err(&failed)));
        assert!(!fallback.record(Ok(())));
        assert!(!fallback.record(Err(&failed)));
        assert!(!fallback.record(Err(&gateway)));
        assert_eq!(fallback.engine(EngineMode::Rlm), EngineMode::Rlm);
        assert!(fallback.record(Err(&failed)));
    }

    #[test]
    fn off_by_default() {
        let fallback = EngineFallback::default();
        for _ in 0..10 {
            assert!(!fallback.record(Err(&bridge_failed())));
        }
        assert_eq!(fallback.engine(EngineMode::Rlm), EngineMode::Rlm);
    }
}

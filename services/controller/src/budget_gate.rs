//! The one place that owns every budget gate of a run (spec 30 §8): calls,
//! bytes, wall clock, recursion depth and the width of concurrent dispatch.
//! Engines ask it before they act and tell it what they spent.
//!
//! Budgets are exact (decision 2): `max_bytes = 0` is unlimited, and
//! an exact-fit call budget is not a violation, because the fan-out checks
//! the call budget only when there is a call left to dispatch.

use std::time::{Duration, Instant};

use pecr_contracts::budget::Budget;

/// Remaining time reported for an unbounded wall clock (at least a year).
pub const UNBOUNDED: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why an engine loop ended (spec 30 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    PlanComplete,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    RlmDone,
    OperatorError,
    BudgetMaxOperatorCalls,
    BudgetMaxBytes,
    BudgetMaxWallclockMs,
    BudgetMaxRecursionDepth,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    BridgeEof,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    BridgeReadError,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    BridgeInvalidMessage,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    BridgeOperatorNotAllowlisted,
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    BridgeUnknownMessage,
}

impl StopReason {
    /// Every stop reason, in table order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub const ALL: [Self; 12] = [
        Self::PlanComplete,
        Self::RlmDone,
        Self::OperatorError,
        Self::BudgetMaxOperatorCalls,
        Self::BudgetMaxBytes,
        Self::BudgetMaxWallclockMs,
        Self::BudgetMaxRecursionDepth,
        Self::BridgeEof,
        Self::BridgeReadError,
        Self::BridgeInvalidMessage,
        Self::BridgeOperatorNotAllowlisted,
        Self::BridgeUnknownMessage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlanComplete => "plan_complete",
            Self::RlmDone => "rlm_done",
            Self::OperatorError => "operator_error",
            Self::BudgetMaxOperatorCalls => "budget_max_operator_calls",
            Self::BudgetMaxBytes => "budget_max_bytes",
            Self::BudgetMaxWallclockMs => "budget_max_wallclock_ms",
            Self::BudgetMaxRecursionDepth => "budget_max_recursion_depth",
            Self::BridgeEof => "bridge_eof",
            Self::BridgeReadError => "bridge_read_error",
            Self::BridgeInvalidMessage => "bridge_invalid_message",
            Self::BridgeOperatorNotAllowlisted => "bridge_operator_not_allowlisted",
            Self::BridgeUnknownMessage => "bridge_unknown_message",
        }
    }

    /// Budget stops count as violations in metrics.
    pub fn is_budget_violation(self) -> bool {
        matches!(
            self,
            Self::BudgetMaxOperatorCalls
                | Self::BudgetMaxBytes
                | Self::BudgetMaxWallclockMs
                | Self::BudgetMaxRecursionDepth
        )
    }

    /// Bridge stops fail the run instead of finalizing it.
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    pub fn is_bridge_failure(self) -> bool {
        matches!(
            self,
            Self::BridgeEof
                | Self::BridgeReadError
                | Self::BridgeInvalidMessage
                | Self::BridgeOperatorNotAllowlisted
                | Self::BridgeUnknownMessage
        )
    }
}

/// What a run has spent so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub operator_calls: u32,
    pub bytes: u64,
    pub depth: u32,
}

/// Budget accounting of one engine loop; the wall clock starts at `start`.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    budget: Budget,
    started: Instant,
    adaptive: bool,
    usage: Usage,
}

impl BudgetGate {
    pub fn start(budget: Budget, adaptive: bool) -> Self {
        Self::started_at(budget, adaptive, Instant::now())
    }

    pub fn started_at(budget: Budget, adaptive: bool, started: Instant) -> Self {
        Self {
            budget,
            started,
            adaptive,
            usage: Usage::default(),
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Wall clock left; [`UNBOUNDED`] when `max_wallclock_ms` is 0.
    pub fn remaining(&self) -> Duration {
        if self.budget.max_wallclock_ms == 0 {
            return UNBOUNDED;
        }
        Duration::from_millis(self.budget.max_wallclock_ms).saturating_sub(self.started.elapsed())
    }

    /// The remaining wall clock, or the wall-clock stop when none is left.
    pub fn check_wallclock(&self) -> Result<Duration, StopReason> {
        let remaining = self.remaining();
        if remaining.is_zero() {
            Err(StopReason::BudgetMaxWallclockMs)
        } else {
            Ok(remaining)
        }
    }

    /// Before a plan step (or bridge request at `depth_used`): N allows N steps.
    pub fn check_depth(&self, depth: u32) -> Result<(), StopReason> {
        if depth >= self.budget.max_recursion_depth {
            Err(StopReason::BudgetMaxRecursionDepth)
        } else {
            Ok(())
        }
    }

    /// Spends one depth unit (baseline: one per step).
    pub fn spend_depth(&mut self) {
        self.usage.depth = self.usage.depth.saturating_add(1);
    }

    /// Records that a request ran at `depth` (RLM): depth used is at least depth + 1.
    #[cfg_attr(not(feature = "rlm"), allow(dead_code))]
    pub fn reach_depth(&mut self, depth: u32) {
        self.usage.depth = self.usage.depth.max(depth.saturating_add(1));
    }

    /// Before dispatching one more call while `reserved` are in flight.
    pub fn check_call(&self, reserved: u32) -> Result<(), StopReason> {
        if self.usage.operator_calls.saturating_add(reserved) >= self.budget.max_operator_calls {
            Err(StopReason::BudgetMaxOperatorCalls)
        } else {
            Ok(())
        }
    }

    /// Counts one completed call (ok or failed) and its bytes.
    pub fn record_call(&mut self, bytes: u64) {
        self.usage.operator_calls = self.usage.operator_calls.saturating_add(1);
        self.usage.bytes = self.usage.bytes.saturating_add(bytes);
    }

    /// After a call: more bytes than `max_bytes` (0 = unlimited) stops the loop.
    pub fn check_bytes(&self) -> Result<(), StopReason> {
        if self.budget.max_bytes > 0 && self.usage.bytes > self.budget.max_bytes {
            Err(StopReason::BudgetMaxBytes)
        } else {
            Ok(())
        }
    }

    /// `max(1, max_parallelism or 1)`.
    pub fn base_parallelism(&self) -> usize {
        self.budget.max_parallelism.unwrap_or(1).max(1) as usize
    }

    /// How many calls may be in flight now (spec 30 §8.3).
    pub fn width(&self, reserved: u32) -> usize {
        let base = self.base_parallelism();
        if !self.adaptive {
            return base;
        }
        let committed = self.usage.operator_calls.saturating_add(reserved);
        let call_cap = self
            .budget
            .max_operator_calls
            .saturating_sub(committed)
            .max(1) as usize;
        let wall_cap = if self.budget.max_wallclock_ms == 0 {
            base
        } else {
            match self.remaining().as_millis() {
                0..100 => 1,
                100..500 => 2,
                500..2000 => 4,
                _ => base,
            }
        };
        base.min(call_cap).min(wall_cap).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(calls: u32, bytes: u64, wall: u64, depth: u32, par: Option<u32>) -> Budget {
        Budget {
            max_operator_calls: calls,
            max_bytes: bytes,
            max_wallclock_ms: wall,
            max_recursion_depth: depth,
            max_parallelism: par,
        }
    }

    fn gate_with(calls_used: u32, bytes: u64, wall: u64, adaptive: bool) -> BudgetGate {
        let mut gate = BudgetGate::start(budget(5, 1024, wall, 3, Some(4)), adaptive);
        gate.usage.operator_calls = calls_used;
        gate.usage.bytes = bytes;
        gate
    }

    #[test]
    fn scenario_11_gates() {
        let gate = gate_with(0, 0, 1000, false);
        assert_eq!(gate.width(0), 4);
        assert!(gate_with(4, 0, 1000, false).check_call(0).is_ok());
        assert_eq!(
            gate_with(5, 0, 1000, false).check_call(0),
            Err(StopReason::BudgetMaxOperatorCalls)
        );
        assert!(gate_with(3, 0, 1000, false).check_call(1).is_ok());
        assert!(gate_with(4, 0, 1000, false).check_call(1).is_err());
        assert!(gate.check_depth(2).is_ok());
        assert_eq!(
            gate.check_depth(3),
            Err(StopReason::BudgetMaxRecursionDepth)
        );
        assert!(gate_with(0, 1024, 1000, false).check_bytes().is_ok());
        assert_eq!(
            gate_with(0, 1025, 1000, false).check_bytes(),
            Err(StopReason::BudgetMaxBytes)
        );
    }

    #[test]
    fn scenario_12_adaptive_parallelism() {
        let long = gate_with(0, 0, 60_000, true);
        assert_eq!(long.width(0), 4);
        assert_eq!(gate_with(4, 0, 60_000, true).width(0), 1);
        assert_eq!(gate_with(3, 0, 60_000, true).width(1), 1);
        let short = gate_with(0, 0, 200, true);
        assert!(short.width(0) <= 2);
        assert_eq!(gate_with(0, 0, 0, true).width(0), 4, "unbounded keeps base");
    }

    #[test]
    fn scenario_13_wallclock() {
        let unbounded = gate_with(0, 0, 0, true);
        assert!(unbounded.remaining() >= Duration::from_secs(365 * 24 * 3600));
        let started = Instant::now()
            .checked_sub(Duration::from_millis(2000))
            .unwrap_or_else(Instant::now);
        let late = BudgetGate::started_at(budget(5, 0, 1000, 3, None), true, started);
        assert_eq!(
            late.check_wallclock(),
            Err(StopReason::BudgetMaxWallclockMs)
        );
    }

    #[test]
    fn zero_bytes_is_unlimited_and_depth_zero_allows_nothing() {
        let mut gate = BudgetGate::start(budget(5, 0, 0, 0, None), true);
        gate.record_call(1 << 30);
        assert!(gate.check_bytes().is_ok());
        assert!(gate.check_depth(0).is_err());
        assert_eq!(gate.base_parallelism(), 1);
    }

    #[test]
    fn stop_reason_table() {
        let names: std::collections::BTreeSet<_> = StopReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .collect();
        assert_eq!(names.len(), StopReason::ALL.len(), "names are distinct");
        let count = |pick: fn(StopReason) -> bool| {
            StopReason::ALL
                .iter()
                .filter(|reason| pick(**reason))
                .count()
        };
        assert_eq!(count(StopReason::is_budget_violation), 4);
        assert_eq!(count(StopReason::is_bridge_failure), 5);
        assert!(
            StopReason::ALL
                .iter()
                .all(|reason| !(reason.is_budget_violation() && reason.is_bridge_failure()))
        );
    }

    #[test]
    fn reach_depth_keeps_the_maximum() {
        let mut gate = BudgetGate::start(budget(5, 0, 0, 5, None), true);
        gate.reach_depth(3);
        gate.reach_depth(1);
        assert_eq!(gate.usage().depth, 4);
    }
}

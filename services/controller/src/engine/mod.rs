//! The context engines: the baseline plan runner and, with the `rlm`
//! feature, the RLM bridge. Both spend budget only through
//! [`BudgetGate`](crate::budget_gate::BudgetGate) and reach sources only
//! through the gateway session.

pub mod baseline;
#[cfg(feature = "rlm")]
pub mod rlm;

use pecr_replay::TerminalMode;

use crate::budget_gate::{StopReason, Usage};
use crate::evidence::EvidenceCollector;

/// The end of one engine loop.
#[derive(Debug, Clone)]
pub struct LoopResult {
    pub terminal_mode: TerminalMode,
    pub stop_reason: StopReason,
    /// The engine's own answer text (RLM `done`); None for the baseline.
    pub response_text: Option<String>,
    pub usage: Usage,
    pub evidence: EvidenceCollector,
}

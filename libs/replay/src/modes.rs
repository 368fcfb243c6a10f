//! The closed enums of the replay contract (spec 10 §1.8) and their
//! contract strings: how a run ended, which engine ran it, and how a claim
//! stands.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Final (or loop) outcome of a run, as its contract string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TerminalMode {
    Supported,
    InsufficientEvidence,
    InsufficientPermission,
    SourceUnavailable,
}

impl TerminalMode {
    pub const ALL: [Self; 4] = [
        Self::Supported,
        Self::InsufficientEvidence,
        Self::InsufficientPermission,
        Self::SourceUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Supported => "SUPPORTED",
            Self::InsufficientEvidence => "INSUFFICIENT_EVIDENCE",
            Self::InsufficientPermission => "INSUFFICIENT_PERMISSION",
            Self::SourceUnavailable => "SOURCE_UNAVAILABLE",
        }
    }
}

/// Engine that produced a run. Sorted, `baseline` comes before `rlm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineMode {
    Baseline,
    Rlm,
}

impl EngineMode {
    /// Every mode, in contract order.
    pub const ALL: [Self; 2] = [Self::Baseline, Self::Rlm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Rlm => "rlm",
        }
    }
}

/// Status of one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimStatus {
    Supported,
    Assumption,
    Unknown,
}

impl ClaimStatus {
    pub const ALL: [Self; 3] = [Self::Supported, Self::Assumption, Self::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Supported => "SUPPORTED",
            Self::Assumption => "ASSUMPTION",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// A string that is not one of an enum's contract values (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value")]
pub struct UnknownEnumValue {
    pub kind: &'static str,
}

macro_rules! from_str_via_as_str {
    ($ty:ty, $kind:literal) => {
        impl FromStr for $ty {
            type Err = UnknownEnumValue;

            /// Exact, case-sensitive match on the contract string.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or(UnknownEnumValue { kind: $kind })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

from_str_via_as_str!(TerminalMode, "terminal_mode");
from_str_via_as_str!(EngineMode, "engine_mode");
from_str_via_as_str!(ClaimStatus, "claim status");

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::to_value;

    #[test]
    fn engine_mode_serializes_lowercase_and_sorts_baseline_first() {
        assert_eq!(to_value(&EngineMode::Baseline), json!("baseline"));
        assert_eq!(to_value(&EngineMode::Rlm), json!("rlm"));
        assert!(EngineMode::Baseline < EngineMode::Rlm);
        assert_eq!("rlm".parse::<EngineMode>(), Ok(EngineMode::Rlm));
        assert!("BASELINE".parse::<EngineMode>().is_err());
        assert!(serde_json::from_value::<EngineMode>(json!("Baseline")).is_err());
        assert_eq!(EngineMode::Baseline.to_string(), "baseline");
    }

    #[test]
    fn enum_strings_match_the_contract() {
        for mode in TerminalMode::ALL {
            assert_eq!(to_value(&mode), json!(mode.as_str()));
            assert_eq!(mode.as_str().parse::<TerminalMode>(), Ok(mode));
        }
        for status in ClaimStatus::ALL {
            assert_eq!(to_value(&status), json!(status.as_str()));
            assert_eq!(status.as_str().parse::<ClaimStatus>(), Ok(status));
        }
        assert_eq!(
            to_value(&TerminalMode::InsufficientPermission),
            json!("INSUFFICIENT_PERMISSION")
        );
        assert!("supported".parse::<TerminalMode>().is_err());
    }
}

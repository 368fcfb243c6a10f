//! The Budget contract and its validation.

use serde::{Deserialize, Serialize};

pub const MAX_OPERATOR_CALLS: u32 = 10_000;
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
pub const MAX_WALLCLOCK_MS: u64 = 300_000;
pub const MAX_RECURSION_DEPTH: u32 = 20;
pub const MAX_PARALLELISM: u32 = 256;

/// Resource limits of a session or run. Unknown fields are rejected on decode;
/// field order is the declaration order the `budget_hash` recipe relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub max_operator_calls: u32,
    pub max_bytes: u64,
    pub max_wallclock_ms: u64,
    pub max_recursion_depth: u32,
    #[serde(default)]
    pub max_parallelism: Option<u32>,
}

/// Why a budget is out of range; the text is the contract's reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("max_operator_calls out of range")]
    OperatorCalls,
    #[error("max_bytes out of range")]
    Bytes,
    #[error("max_wallclock_ms out of range")]
    Wallclock,
    #[error("max_recursion_depth out of range")]
    RecursionDepth,
    #[error("max_parallelism out of range")]
    Parallelism,
}

impl Budget {
    /// Checks the hard limits in contract order and stops at the first failure.
    pub fn validate(&self) -> Result<(), BudgetError> {
        if self.max_operator_calls > MAX_OPERATOR_CALLS {
            return Err(BudgetError::OperatorCalls);
        }
        if self.max_bytes > MAX_BYTES {
            return Err(BudgetError::Bytes);
        }
        if self.max_wallclock_ms > MAX_WALLCLOCK_MS {
            return Err(BudgetError::Wallclock);
        }
        if self.max_recursion_depth > MAX_RECURSION_DEPTH {
            return Err(BudgetError::RecursionDepth);
        }
        if let Some(parallelism) = self.max_parallelism
            && !(1..=MAX_PARALLELISM).contains(&parallelism)
        {
            return Err(BudgetError::Parallelism);
        }
        Ok(())
    }

    /// Compact JSON in declaration order, `max_parallelism` null when absent:
    /// the form stored in the ledger and hashed by `budget_hash`.
    pub fn to_declaration_order_json(&self) -> String {
        format!(
            r#"{{"max_operator_calls":{},"max_bytes":{},"max_wallclock_ms":{},"max_recursion_depth":{},"max_parallelism":{}}}"#,
            self.max_operator_calls,
            self.max_bytes,
            self.max_wallclock_ms,
            self.max_recursion_depth,
            self.max_parallelism
                .map_or_else(|| "null".to_owned(), |p| p.to_string()),
        )
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

    #[test]
    fn unknown_fields_are_rejected() {
        let valid = serde_json::json!({
            "max_operator_calls": 10, "max_bytes": 1024,
            "max_wallclock_ms": 1000, "max_recursion_depth": 3
        });
        let decoded: Budget = serde_json::from_value(valid.clone()).expect("valid budget");
        assert_eq!(decoded, budget(10, 1024, 1000, 3, None));
        let mut extended = valid;
        if let Some(object) = extended.as_object_mut() {
            object.insert("oops".to_owned(), serde_json::Value::Null);
        }
        assert!(serde_json::from_value::<Budget>(extended).is_err());
    }

    #[test]
    fn boundaries_are_accepted() {
        assert_eq!(
            budget(10_000, 67_108_864, 0, 20, Some(256)).validate(),
            Ok(())
        );
        assert_eq!(budget(0, 0, 300_000, 0, Some(1)).validate(), Ok(()));
        assert_eq!(budget(0, 0, 0, 0, None).validate(), Ok(()));
    }

    #[test]
    fn each_limit_has_its_reason() {
        let ok = budget(10, 1024, 1000, 3, None);
        let cases = [
            (
                Budget {
                    max_operator_calls: 10_001,
                    ..ok
                },
                "max_operator_calls out of range",
            ),
            (
                Budget {
                    max_bytes: 67_108_865,
                    ..ok
                },
                "max_bytes out of range",
            ),
            (
                Budget {
                    max_wallclock_ms: 300_001,
                    ..ok
                },
                "max_wallclock_ms out of range",
            ),
            (
                Budget {
                    max_recursion_depth: 21,
                    ..ok
                },
                "max_recursion_depth out of range",
            ),
            (
                Budget {
                    max_parallelism: Some(0),
                    ..ok
                },
                "max_parallelism out of range",
            ),
            (
                Budget {
                    max_parallelism: Some(257),
                    ..ok
                },
                "max_parallelism out of range",
            ),
        ];
        for (bad, reason) in cases {
            assert_eq!(
                bad.validate().map_err(|e| e.to_string()),
                Err(reason.to_owned())
            );
        }
    }

    #[test]
    fn first_failure_wins() {
        let bad = budget(10_001, 67_108_865, 0, 0, None);
        assert_eq!(bad.validate(), Err(BudgetError::OperatorCalls));
    }

    #[test]
    fn decoding_is_strict() {
        let parse = |text: &str| serde_json::from_str::<Budget>(text);
        assert!(parse(r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"oops":1}"#).is_err());
        assert!(parse(r#"{"max_operator_calls":-1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#).is_err());
        assert!(parse(r#"{"max_operator_calls":1.5,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#).is_err());
        assert!(parse(r#"{"max_operator_calls":4294967296,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}"#).is_err());
        let null_parallelism = parse(
            r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"max_parallelism":null}"#,
        );
        assert_eq!(null_parallelism.ok().and_then(|b| b.max_parallelism), None);
    }

    #[test]
    fn serializes_in_declaration_order_with_null_parallelism() {
        assert_eq!(
            budget(10, 1_048_576, 1000, 3, None).to_declaration_order_json(),
            r#"{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":1000,"max_recursion_depth":3,"max_parallelism":null}"#
        );
        let with = budget(1, 2, 3, 4, Some(5));
        assert_eq!(
            serde_json::to_string(&with).ok(),
            Some(with.to_declaration_order_json())
        );
    }
}

//! Conversions between generated messages and their `pecr-contracts`
//! models, written once for every service.

use pecr_contracts::budget::Budget;

use crate::v1;

impl From<&v1::Budget> for Budget {
    fn from(budget: &v1::Budget) -> Self {
        Self {
            max_operator_calls: budget.max_operator_calls,
            max_bytes: budget.max_bytes,
            max_wallclock_ms: budget.max_wallclock_ms,
            max_recursion_depth: budget.max_recursion_depth,
            max_parallelism: budget.max_parallelism,
        }
    }
}

impl From<&Budget> for v1::Budget {
    fn from(budget: &Budget) -> Self {
        Self {
            max_operator_calls: budget.max_operator_calls,
            max_bytes: budget.max_bytes,
            max_wallclock_ms: budget.max_wallclock_ms,
            max_recursion_depth: budget.max_recursion_depth,
            max_parallelism: budget.max_parallelism,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_survives_the_round_trip_with_and_without_parallelism() {
        for parallelism in [None, Some(4)] {
            let budget = Budget {
                max_operator_calls: 10,
                max_bytes: 1_048_576,
                max_wallclock_ms: 10_000,
                max_recursion_depth: 5,
                max_parallelism: parallelism,
            };
            let wire = v1::Budget::from(&budget);
            assert_eq!(wire.max_parallelism, parallelism);
            assert_eq!(Budget::from(&wire), budget);
        }
    }
}

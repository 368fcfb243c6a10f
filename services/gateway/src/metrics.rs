//! The gateway's own metrics (spec 20 §12) with closed label sets:
//! operator names are the seven operators or `unknown`. Requests, latency
//! and terminal modes per route are the request stack's (`pecr-server`).

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

const OPERATOR_NAMES: &[&str] = &[
    "search",
    "list_versions",
    "fetch_span",
    "diff",
    "fetch_rows",
    "aggregate",
    "redact",
];

#[derive(Clone)]
pub struct GatewayMetrics {
    registry: Registry,
    operator_calls: IntCounterVec,
    cache_hits: IntCounterVec,
    budget_violations: IntCounter,
    session_refusals: IntCounterVec,
}

impl GatewayMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = pecr_server::new_registry("pecr-gateway");
        let operator_calls = IntCounterVec::new(
            Opts::new(
                "pecr_gateway_operator_calls_total",
                "Operator calls by operator and outcome",
            ),
            &["operator_name", "outcome"],
        )?;
        let cache_hits = IntCounterVec::new(
            Opts::new(
                "pecr_gateway_operator_cache_hits_total",
                "Operator result cache hits",
            ),
            &["operator_name"],
        )?;
        let budget_violations = IntCounter::new(
            "pecr_gateway_budget_violations_total",
            "Operator calls refused by the session budget",
        )?;
        let session_refusals = IntCounterVec::new(
            Opts::new(
                "pecr_gateway_session_refusals_total",
                "Callers refused by a session's credentials, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(operator_calls.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(budget_violations.clone()))?;
        registry.register(Box::new(session_refusals.clone()))?;
        Ok(Self {
            registry,
            operator_calls,
            cache_hits,
            budget_violations,
            session_refusals,
        })
    }

    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    pub fn operator_call(&self, op_name: &str, success: bool) {
        let outcome = if success { "success" } else { "error" };
        self.operator_calls
            .with_label_values(&[operator_label(op_name), outcome])
            .inc();
    }

    pub fn cache_hit(&self, op_name: &str) {
        self.cache_hits
            .with_label_values(&[operator_label(op_name)])
            .inc();
    }

    pub fn budget_violation(&self) {
        self.budget_violations.inc();
    }

    /// `reason` is one of the fixed refusal reasons of `session_access`.
    pub fn session_refused(&self, reason: &'static str) {
        self.session_refusals.with_label_values(&[reason]).inc();
    }
}

/// A closed label: the seven operators, everything else is `unknown`.
fn operator_label(op_name: &str) -> &'static str {
    OPERATOR_NAMES
        .iter()
        .find(|name| **name == op_name)
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_operator_names_share_one_label() {
        assert_eq!(operator_label("fetch_rows"), "fetch_rows");
        assert_eq!(operator_label("drop_database"), "unknown");
        assert_eq!(operator_label("<script>"), "unknown");
    }
}

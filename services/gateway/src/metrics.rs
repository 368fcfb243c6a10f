//! Gateway metrics (spec 20 §12) with closed label sets: routes are the four
//! REST routes, operator names the seven operators or `unknown`.

use std::time::Instant;

use pecr_errors::PecrError;
use pecr_proto::v1::TerminalMode;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

pub const ROUTE_SESSIONS: &str = "/v1/sessions";
pub const ROUTE_SIMULATE: &str = "/v1/policies/simulate";
pub const ROUTE_OPERATORS: &str = "/v1/operators";
pub const ROUTE_FINALIZE: &str = "/v1/finalize";
pub const ROUTE_OPERATOR_BATCHES: &str = "/v1/operator-batches";

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
    requests: IntCounterVec,
    durations: HistogramVec,
    terminal_modes: IntCounterVec,
    operator_calls: IntCounterVec,
    cache_hits: IntCounterVec,
    budget_violations: IntCounter,
    session_refusals: IntCounterVec,
}

impl GatewayMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = pecr_server::new_registry("pecr-gateway");
        let requests = IntCounterVec::new(
            Opts::new(
                "pecr_gateway_http_requests_total",
                "Gateway requests by route, method and HTTP status",
            ),
            &["route", "method", "status"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "pecr_gateway_http_request_duration_seconds",
                "Gateway request latency",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method", "outcome"],
        )?;
        let terminal_modes = IntCounterVec::new(
            Opts::new(
                "pecr_gateway_terminal_modes_total",
                "Terminal modes returned by operators and finalize",
            ),
            &["route", "terminal_mode"],
        )?;
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(terminal_modes.clone()))?;
        registry.register(Box::new(operator_calls.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(budget_violations.clone()))?;
        registry.register(Box::new(session_refusals.clone()))?;
        Ok(Self {
            registry,
            requests,
            durations,
            terminal_modes,
            operator_calls,
            cache_hits,
            budget_violations,
            session_refusals,
        })
    }

    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Records one finished request: status and latency always, the terminal
    /// mode for operator and finalize calls (the error's hint on failure).
    pub fn observe(
        &self,
        route: &'static str,
        started: Instant,
        outcome: Result<TerminalMode, &PecrError>,
    ) {
        let status = outcome
            .as_ref()
            .map_or_else(|error| error.http_status, |_| 200);
        let status_label = status.to_string();
        self.requests
            .with_label_values(&[route, "POST", &status_label])
            .inc();
        let class = if (200..400).contains(&status) {
            "success"
        } else {
            "error"
        };
        self.durations
            .with_label_values(&[route, "POST", class])
            .observe(started.elapsed().as_secs_f64());
        if route == ROUTE_OPERATORS || route == ROUTE_FINALIZE {
            let mode = match outcome {
                Ok(mode) => mode,
                Err(error) => error.hint,
            };
            self.terminal_modes
                .with_label_values(&[route, mode.as_str_name()])
                .inc();
        }
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

//! The controller's own metrics (spec 30 §14.1): engine loops, budget
//! stops, operator calls in flight. Requests, latency and terminal modes
//! per route (every outcome of every RPC) are the request stack's
//! (`pecr-server`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::budget_gate::StopReason;

#[derive(Clone)]
pub struct ControllerMetrics {
    registry: Registry,
    pub loop_iterations: IntCounter,
    budget_violations: IntCounter,
    stop_reasons: IntCounterVec,
    inflight_ops: IntGauge,
    pub operator_queue_wait: Histogram,
    fallback_active: IntGauge,
    fallbacks: IntCounter,
}

/// Decrements the in-flight gauge when the call ends, however it ends.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ControllerMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = pecr_server::new_registry("pecr-controller");
        let loop_iterations = IntCounter::new(
            "pecr_controller_loop_iterations_total",
            "Baseline plan steps that passed the depth gate",
        )?;
        let budget_violations = IntCounter::new(
            "pecr_controller_budget_violations_total",
            "Engine loops that ended on a budget stop",
        )?;
        let stop_reasons = IntCounterVec::new(
            Opts::new(
                "pecr_controller_budget_stop_reasons_total",
                "Engine loops by stop reason",
            ),
            &["reason"],
        )?;
        let inflight_ops = IntGauge::new(
            "pecr_controller_inflight_ops",
            "Operator calls currently executing",
        )?;
        let operator_queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "pecr_controller_operator_queue_wait_seconds",
                "Concurrent dispatch: time from admission to start of execution",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        )?;
        registry.register(Box::new(loop_iterations.clone()))?;
        registry.register(Box::new(budget_violations.clone()))?;
        registry.register(Box::new(stop_reasons.clone()))?;
        registry.register(Box::new(inflight_ops.clone()))?;
        let fallback_active = IntGauge::new(
            "pecr_controller_engine_fallback_active",
            "1 while runs use the baseline engine after repeated RLM bridge failures",
        )?;
        let fallbacks = IntCounter::new(
            "pecr_controller_engine_fallbacks_total",
            "Switches from the RLM engine to the baseline after repeated bridge failures",
        )?;
        registry.register(Box::new(operator_queue_wait.clone()))?;
        registry.register(Box::new(fallback_active.clone()))?;
        registry.register(Box::new(fallbacks.clone()))?;
        Ok(Self {
            registry,
            loop_iterations,
            budget_violations,
            stop_reasons,
            inflight_ops,
            operator_queue_wait,
            fallback_active,
            fallbacks,
        })
    }

    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Counts one call as executing until the returned guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.inflight_ops.inc();
        InFlight(self.inflight_ops.clone())
    }

    /// The engine fell back to the baseline.
    pub fn engine_fell_back(&self) {
        self.fallbacks.inc();
        self.fallback_active.set(1);
    }

    /// Once per finished engine loop.
    pub fn loop_finished(&self, reason: StopReason) {
        self.stop_reasons
            .with_label_values(&[reason.as_str()])
            .inc();
        if reason.is_budget_violation() {
            self.budget_violations.inc();
        }
    }
}

//! ledger-writer metrics, with a closed label set: `rpc` is one of the
//! LedgerService method names, `code` is `OK` or an `ERR_*` code.

use std::time::Instant;

use pecr_errors::PecrResult;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct LedgerMetrics {
    registry: Registry,
    rpcs: IntCounterVec,
    durations: HistogramVec,
}

impl LedgerMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = pecr_server::new_registry("pecr-ledger-writer");
        let rpcs = IntCounterVec::new(
            Opts::new(
                "pecr_ledger_rpcs_total",
                "LedgerService calls by method and result code",
            ),
            &["rpc", "code"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "pecr_ledger_rpc_duration_seconds",
                "LedgerService call latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["rpc"],
        )?;
        registry.register(Box::new(rpcs.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        Ok(Self {
            registry,
            rpcs,
            durations,
        })
    }

    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Records one finished call.
    pub fn observe<T>(&self, rpc: &'static str, started: Instant, result: &PecrResult<T>) {
        let code = match result {
            Ok(_) => "OK",
            Err(err) => err.code.as_str(),
        };
        self.rpcs.with_label_values(&[rpc, code]).inc();
        self.durations
            .with_label_values(&[rpc])
            .observe(started.elapsed().as_secs_f64());
    }
}

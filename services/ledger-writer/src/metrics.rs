//! ledger-writer metrics, with a closed label set: `rpc` is one of the
//! LedgerService method names, `code` is `OK` or an `ERR_*` code.

use std::time::Instant;

use pecr_errors::PecrResult;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

use crate::committer::CommitMetrics;

#[derive(Clone)]
pub struct LedgerMetrics {
    registry: Registry,
    rpcs: IntCounterVec,
    durations: HistogramVec,
    commits: CommitMetrics,
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
        let commits = CommitMetrics {
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "pecr_ledger_commit_batch_size",
                    "Writes per ledger transaction (retries alone count as batches of one)",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            )?,
            commits: IntCounter::new(
                "pecr_ledger_commits_total",
                "Ledger write transactions committed",
            )?,
            batch_retries: IntCounter::new(
                "pecr_ledger_commit_batch_retries_total",
                "Batches rolled back by a failing write and retried one write at a time",
            )?,
        };
        registry.register(Box::new(rpcs.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(commits.batch_size.clone()))?;
        registry.register(Box::new(commits.commits.clone()))?;
        registry.register(Box::new(commits.batch_retries.clone()))?;
        Ok(Self {
            registry,
            rpcs,
            durations,
            commits,
        })
    }

    /// The committer's share of the metrics.
    pub fn commit_metrics(&self) -> CommitMetrics {
        self.commits.clone()
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

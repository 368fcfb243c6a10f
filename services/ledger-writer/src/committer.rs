//! Group commit. Writes from every caller wait in one bounded queue; each
//! lane takes the first waiting write plus whatever else is already queued
//! (up to the batch limit) and commits them in one transaction, so batches
//! grow by themselves while the previous one commits, with no added delay.
//! Every caller is answered only after its transaction committed.
//!
//! A refusal the planner finds (unknown session, counter conflict, …) is
//! answered without disturbing the batch. Any other failure rolls the batch
//! back and runs each of its writes again in a transaction of its own, so
//! each caller gets exactly the answer it would get alone.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use pecr_errors::{PecrError, PecrResult};
use prometheus::{Histogram, IntCounter};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument;

use crate::store::batch::{self, Failure};
use crate::store::{Write, Written, connection};

/// How writes are committed.
#[derive(Debug, Clone, Copy)]
pub struct CommitSettings {
    /// Transactions in flight at once, each on its own pooled connection.
    pub lanes: usize,
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Bound on one transaction (callers are bounded separately).
    pub write_timeout: Duration,
}

/// The committer's metrics (registered by `metrics.rs`).
#[derive(Clone)]
pub struct CommitMetrics {
    pub batch_size: Histogram,
    pub commits: IntCounter,
    pub batch_retries: IntCounter,
}

/// A write and the caller waiting for it.
struct Job {
    write: Write,
    reply: oneshot::Sender<PecrResult<Written>>,
    /// The caller's `db` span; the batch's span links to it.
    span: tracing::Span,
}

/// The queue in front of the lanes. Lanes stop once every handle is gone.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the lanes on the current Tokio runtime.
    pub fn start(pool: Pool, settings: CommitSettings, metrics: CommitMetrics) -> Self {
        let lanes = settings.lanes.max(1);
        let (queue, receiver) = mpsc::channel(lanes * settings.max_batch.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for lane in 0..lanes {
            let lane_state = Lane {
                receiver: receiver.clone(),
                pool: pool.clone(),
                settings,
                metrics: metrics.clone(),
            };
            tokio::spawn(lane_state.supervise(lane));
        }
        Self { queue }
    }

    /// Queues `write` and waits for its transaction's outcome. The caller
    /// bounds the wait; a caller that gave up before its batch started is
    /// skipped, so nothing it abandoned is written afterwards.
    pub async fn submit(&self, write: Write) -> PecrResult<Written> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write,
            reply,
            span: tracing::Span::current(),
        };
        if self.queue.send(job).await.is_err() {
            tracing::warn!("the commit lanes are gone");
            return Err(PecrError::ledger_unavailable());
        }
        answer.await.unwrap_or_else(|_| {
            tracing::warn!("a commit lane dropped a write unanswered");
            Err(PecrError::ledger_unavailable())
        })
    }
}

struct Lane {
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    pool: Pool,
    settings: CommitSettings,
    metrics: CommitMetrics,
}

impl Lane {
    /// Runs the lane, restarting it should a batch panic (its callers then
    /// get `ERR_LEDGER_UNAVAILABLE`); ends when the queue closes.
    async fn supervise(self, lane: usize) {
        let lane_state = Arc::new(self);
        loop {
            let running = tokio::spawn(lane_state.clone().run());
            match running.await {
                Ok(()) => return,
                Err(err) if err.is_panic() => {
                    tracing::error!(lane, "a commit lane panicked; restarting it");
                }
                Err(_) => return,
            }
        }
    }

    async fn run(self: Arc<Self>) {
        while let Some(jobs) = self.next_batch().await {
            self.commit(jobs).await;
        }
    }

    /// The first queued write, then whatever else is already waiting.
    async fn next_batch(&self) -> Option<Vec<Job>> {
        let mut receiver = self.receiver.lock().await;
        let first = receiver.recv().await?;
        let mut jobs = vec![first];
        while jobs.len() < self.settings.max_batch {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        Some(jobs)
    }

    async fn commit(&self, mut jobs: Vec<Job>) {
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            return;
        }
        // Lock order (see `Write::order_key`); the sort is stable.
        jobs.sort_by(|a, b| a.write.order_key().cmp(&b.write.order_key()));
        match self.attempt(&jobs).await {
            Ok(answers) => {
                for (job, answer) in jobs.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(Failure::Statement(err)) if jobs.len() == 1 => {
                for job in jobs {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
            Err(Failure::Statement(_)) => {
                // Nothing of the batch was written: each write alone gets
                // its own answer and no write is half-applied.
                self.metrics.batch_retries.inc();
                for job in jobs {
                    if job.reply.is_closed() {
                        continue;
                    }
                    let answer = match self.attempt(std::slice::from_ref(&job)).await {
                        Ok(mut answers) => answers
                            .pop()
                            .unwrap_or_else(|| Err(PecrError::ledger_unavailable())),
                        Err(Failure::Statement(err) | Failure::Unavailable(err)) => Err(err),
                    };
                    let _ = job.reply.send(answer);
                }
            }
            Err(Failure::Unavailable(_)) => {
                for job in jobs {
                    let _ = job.reply.send(Err(PecrError::ledger_unavailable()));
                }
            }
        }
    }

    /// One transaction for `jobs`, bounded by the write timeout.
    async fn attempt(&self, jobs: &[Job]) -> Result<Vec<PecrResult<Written>>, Failure> {
        let span = tracing::info_span!(
            "db",
            otel.name = "commit_batch",
            otel.kind = "client",
            db.system = "postgresql",
            db.operation.name = "commit_batch",
            db.operation.batch.size = jobs.len(),
            outcome = tracing::field::Empty,
        );
        for job in jobs {
            span.follows_from(&job.span);
        }
        self.metrics.batch_size.observe(jobs.len() as f64);
        let writes: Vec<&Write> = jobs.iter().map(|job| &job.write).collect();
        let work = async {
            let mut client = connection(&self.pool).await.map_err(Failure::Unavailable)?;
            batch::commit(&mut client, &writes).await
        };
        let result =
            tokio::time::timeout(self.settings.write_timeout, work.instrument(span.clone()))
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        timeout_ms = self.settings.write_timeout.as_millis() as u64,
                        batch_size = jobs.len(),
                        "ledger batch timed out"
                    );
                    Err(Failure::Unavailable(PecrError::ledger_unavailable()))
                });
        if result.is_ok() {
            self.metrics.commits.inc();
        }
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        result
    }
}

//! Waiting for a condition instead of for time: a test that polls what a
//! service does passes as soon as it holds, and fails only after a
//! deadline far beyond any healthy run.

use std::future::Future;
use std::time::Duration;

/// Pause between two probes.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Polls `probe` every 50 ms until it returns `Some`, for at most `limit`;
/// panics with `what` when it never does.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {limit:?}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

//! Serialises the calls of one session inside this process. Across
//! replicas, ledger-writer's compare-and-set on the session counters
//! refuses the loser of a race.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError, PecrResult};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct SessionLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl SessionLocks {
    /// Waits for the session's lock, at most `timeout`.
    pub async fn acquire(
        &self,
        session_id: &str,
        timeout: Duration,
    ) -> PecrResult<OwnedMutexGuard<()>> {
        let lock = self.lock_for(session_id)?;
        tokio::time::timeout(timeout, lock.lock_owned())
            .await
            .map_err(|_| {
                PecrError::new(
                    ErrorCode::SourceTimeout,
                    "session lock acquisition timed out",
                )
                .with_http(503)
            })
    }

    fn lock_for(&self, session_id: &str) -> PecrResult<Arc<AsyncMutex<()>>> {
        let mut locks = self.locks.lock().map_err(|_| {
            PecrError::new(ErrorCode::DbUnavailable, "failed to acquire session lock")
        })?;
        if let Some(lock) = locks.get(session_id).and_then(Weak::upgrade) {
            return Ok(lock);
        }
        // Forget sessions nobody holds any more before adding one.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(AsyncMutex::new(()));
        locks.insert(session_id.to_owned(), Arc::downgrade(&lock));
        Ok(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_per_session() {
        let locks = SessionLocks::default();
        let held = locks
            .acquire("s1", Duration::from_millis(50))
            .await
            .expect("first");
        let err = locks
            .acquire("s1", Duration::from_millis(20))
            .await
            .err()
            .map(|e| (e.code, e.http_status));
        assert_eq!(err, Some((ErrorCode::SourceTimeout, 503)));
        assert!(
            locks.acquire("s2", Duration::from_millis(20)).await.is_ok(),
            "other sessions are independent"
        );
        drop(held);
        assert!(locks.acquire("s1", Duration::from_millis(20)).await.is_ok());
    }
}

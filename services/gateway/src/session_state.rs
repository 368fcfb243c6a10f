//! The last known state of open sessions, so an operator call or a finalize
//! needs no ledger read first. The state is a hint, never the authority:
//! every write carries the counters it was decided on, ledger-writer
//! refuses it when they moved (another replica spent budget meanwhile), and
//! the caller then reloads the session and decides again.

use std::sync::Arc;
use std::time::Duration;

use pecr_contracts::Budget;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

use crate::core::invalid_credentials;
use crate::ledger::Ledger;

/// How long an untouched session stays cached; runs use theirs within seconds.
const IDLE: Duration = Duration::from_secs(300);

pub struct SessionStates {
    cache: moka::future::Cache<String, Arc<v1::SessionRecord>>,
}

/// A ledger refusal that means "your copy of the session is out of date".
pub fn is_stale(error: &PecrError) -> bool {
    error.http_status == 409 && error.retryable
}

impl SessionStates {
    pub fn new(max_entries: u64) -> Self {
        Self {
            cache: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// The session as last seen, read from the ledger when not cached. It
    /// must still be open and carry a valid budget.
    pub async fn open(
        &self,
        ledger: &Ledger,
        session_id: &str,
    ) -> PecrResult<Arc<v1::SessionRecord>> {
        let session = match self.cache.get(session_id).await {
            Some(session) => session,
            None => {
                let session = ledger
                    .get_session(session_id)
                    .await?
                    .ok_or_else(invalid_credentials)?;
                self.remember(session).await
            }
        };
        if session.finalized {
            return Err(PecrError::invalid_params("session already finalized").with_http(409));
        }
        let budget = session.budget.as_ref().map(Budget::from);
        if budget.is_none_or(|b| b.validate().is_err()) {
            return Err(PecrError::internal("stored session budget is invalid"));
        }
        Ok(session)
    }

    /// Keeps the state a write returned; a finalized session is dropped, as
    /// nothing can be written to it any more.
    pub async fn remember(&self, session: v1::SessionRecord) -> Arc<v1::SessionRecord> {
        let session = Arc::new(session);
        if session.finalized {
            self.cache.invalidate(&session.session_id).await;
        } else {
            self.cache
                .insert(session.session_id.clone(), Arc::clone(&session))
                .await;
        }
        session
    }

    pub async fn forget(&self, session_id: &str) {
        self.cache.invalidate(session_id).await;
    }
}

//! The audit RPCs: a checkpoint on demand, and `verify` over a time range.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pecr_contracts::time::MAX_UNIX_MS;
use pecr_errors::{ErrorCode, PecrError, PecrResult};
use pecr_proto::v1;
use tokio::sync::Semaphore;

use crate::checkpoint::Checkpointer;
use crate::verify::{self, Progress, Scope, Stop, Trust};

#[derive(Clone)]
pub struct Audit {
    checkpointer: Checkpointer,
    /// The runtime connection URL: each check opens its own connection, so
    /// it holds no pooled one and no pool statement timeout cuts it short.
    db_url: String,
    trust: Trust,
    one_check: Arc<Semaphore>,
}

impl Audit {
    pub fn new(checkpointer: Checkpointer, db_url: String, trust: Trust) -> Self {
        Self {
            checkpointer,
            db_url,
            trust,
            one_check: Arc::new(Semaphore::new(1)),
        }
    }

    pub async fn create_checkpoint(&self) -> PecrResult<v1::CreateCheckpointResponse> {
        if let Some(checkpoint) = self.checkpointer.write().await? {
            return Ok(v1::CreateCheckpointResponse {
                created: true,
                checkpoint: Some(checkpoint),
            });
        }
        Ok(v1::CreateCheckpointResponse {
            created: false,
            checkpoint: self.checkpointer.newest().await?,
        })
    }

    pub async fn verify(
        &self,
        request: v1::VerifyLedgerRequest,
    ) -> PecrResult<v1::VerifyLedgerResponse> {
        let scope = scope(&request)?;
        let _running = self.one_check.try_acquire().map_err(|_| {
            PecrError::new(
                ErrorCode::Overloaded,
                "a ledger verification is already running",
            )
        })?;
        let counts = match verify::run(
            &self.db_url,
            scope,
            self.trust.clone(),
            &mut Progress::silent(),
        )
        .await
        {
            Ok(counts) => counts,
            Err(Stop::Broken(broken)) => {
                return Ok(v1::VerifyLedgerResponse {
                    verified: false,
                    counts: None,
                    broken: Some(v1::BrokenLedgerItem {
                        table: broken.table.to_owned(),
                        id: broken.id,
                        session_id: broken.session_id,
                        what: broken.what,
                    }),
                    signatures_checked_with: self.trust.describe(),
                });
            }
            Err(Stop::Database(err)) => {
                tracing::warn!(
                    sqlstate = err.code().map_or("", |code| code.code()),
                    "ledger verification could not read the ledger"
                );
                return Err(PecrError::ledger_unavailable());
            }
        };
        Ok(v1::VerifyLedgerResponse {
            verified: true,
            counts: Some(v1::LedgerCounts {
                events: counts.events,
                chained_events: counts.chained,
                unchained_events: counts.unchained,
                sessions: counts.sessions,
                evidence_units: counts.evidence_units,
                claim_maps: counts.claim_maps,
                checkpoints: counts.checkpoints,
                signed_checkpoints: counts.signed_checkpoints,
                unsigned_checkpoints: counts.unsigned_checkpoints,
            }),
            broken: None,
            signatures_checked_with: self.trust.describe(),
        })
    }
}

/// The range a request names: `until_unix_ms` 0 is now.
fn scope(request: &v1::VerifyLedgerRequest) -> PecrResult<Scope> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    let until = match request.until_unix_ms {
        0 => now.saturating_add(1),
        until => until,
    };
    for (name, value) in [
        ("since_unix_ms", request.since_unix_ms),
        ("until_unix_ms", until),
    ] {
        if value > MAX_UNIX_MS {
            return Err(PecrError::invalid_params(format!(
                "{name} must be at most {MAX_UNIX_MS}"
            )));
        }
    }
    if request.since_unix_ms >= until {
        return Err(PecrError::invalid_params(
            "since_unix_ms must be before until_unix_ms",
        ));
    }
    Ok(Scope::Created {
        since_unix_ms: request.since_unix_ms as i64,
        until_unix_ms: until as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(since: u64, until: u64) -> v1::VerifyLedgerRequest {
        v1::VerifyLedgerRequest {
            since_unix_ms: since,
            until_unix_ms: until,
        }
    }

    #[test]
    fn a_range_is_checked_before_anything_runs() {
        assert_eq!(
            scope(&request(5, 10)).expect("range"),
            Scope::Created {
                since_unix_ms: 5,
                until_unix_ms: 10
            }
        );
        assert!(matches!(
            scope(&request(0, 0)).expect("to now"),
            Scope::Created {
                since_unix_ms: 0,
                ..
            }
        ));
        for bad in [
            request(10, 10),
            request(11, 10),
            request(0, MAX_UNIX_MS + 1),
        ] {
            let err = scope(&bad).expect_err("refused");
            assert_eq!(err.code, ErrorCode::InvalidParams);
        }
    }
}

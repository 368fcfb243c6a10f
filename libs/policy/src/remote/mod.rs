//! The remote OPA client: retries with jittered backoff, then the circuit
//! breaker, around one HTTP exchange per attempt (spec 20 §4.3).
//!
//! Outcomes: timeout → 504 "policy engine timeout"; anything else → 503
//! "policy engine unavailable"; breaker open → 503 "policy engine circuit
//! breaker is open". A 2xx whose body is not a decision fails at once (no
//! retry, see `transport`) but counts as a failure for the breaker: an OPA
//! that answers garbage is broken too.

mod backoff;
mod breaker;
mod transport;

use std::time::Duration;

use bytes::Bytes;
use pecr_errors::PecrError;
use serde::Serialize;
use serde_json::Value;

use crate::config::RemoteOpaConfig;
use crate::decision::Decision;
use crate::error::{PolicyStartupError, breaker_open, policy_timeout, policy_unavailable};
use breaker::CircuitBreaker;
use transport::{AttemptError, OpaHttp};

pub(crate) struct RemoteOpa {
    http: OpaHttp,
    breaker: CircuitBreaker,
    attempts: u32,
    base_backoff_ms: u64,
}

#[derive(Serialize)]
struct DecisionRequest<'a> {
    input: &'a Value,
}

impl RemoteOpa {
    pub fn new(config: &RemoteOpaConfig) -> Result<Self, PolicyStartupError> {
        config.validate()?;
        Ok(Self {
            http: OpaHttp::new(&config.url, Duration::from_millis(config.timeout_ms))?,
            breaker: CircuitBreaker::new(
                config.breaker_failure_threshold,
                Duration::from_millis(config.breaker_open_ms),
            ),
            attempts: config.retry_max_attempts.saturating_add(1),
            base_backoff_ms: config.retry_base_backoff_ms,
        })
    }

    /// One decision: refused at once while the breaker is open, otherwise
    /// up to `attempts` exchanges; the whole call counts once for the breaker.
    pub async fn decide(&self, input: &Value) -> Result<Decision, PecrError> {
        // Serialized before asking the breaker: a bad input is our fault,
        // not OPA's, so it must not count against OPA.
        let body = serde_json::to_vec(&DecisionRequest { input }).map_err(|error| {
            tracing::warn!(%error, "policy input not serializable");
            policy_unavailable()
        })?;
        let permit = self.breaker.admit().ok_or_else(|| {
            tracing::debug!("policy decision refused: circuit breaker open");
            breaker_open()
        })?;
        match self.with_retries(Bytes::from(body)).await {
            Ok(decision) => {
                permit.success();
                Ok(decision)
            }
            Err(error) => {
                permit.failure();
                tracing::warn!(%error, attempts = self.attempts, "remote policy decision failed");
                Err(match error {
                    AttemptError::Timeout => policy_timeout(),
                    _ => policy_unavailable(),
                })
            }
        }
    }

    /// The last attempt's error decides the outcome.
    async fn with_retries(&self, body: Bytes) -> Result<Decision, AttemptError> {
        let mut attempt = 1;
        loop {
            match self.http.decide(body.clone()).await {
                Ok(decision) => return Ok(decision),
                Err(error) if error.retryable() && attempt < self.attempts => {
                    let delay = backoff::retry_delay(self.base_backoff_ms, attempt);
                    tracing::debug!(%error, attempt, delay_ms = delay.as_millis() as u64, "retrying policy decision");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub async fn ready(&self) -> bool {
        self.http.healthy().await
    }
}

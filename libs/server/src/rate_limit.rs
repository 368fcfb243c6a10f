//! Per-key sliding-window rate limits (spec 20 §9, spec 30 §4), process-local.
//!
//! Hits are stamped on tokio's clock: the system's monotonic clock unless a
//! test pauses it and moves the window on with `advance`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most this many keys are tracked; arbitrary keys go first on overflow.
const MAX_KEYS: usize = 16_384;

pub struct RateLimiter {
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// True when the attempt is allowed (and recorded). A limit of 0 is unlimited.
    pub fn allow(&self, key: &str, limit: u32) -> bool {
        self.allow_n(key, limit, 1)
    }

    /// Admits `n` hits at once, or none of them.
    pub fn allow_n(&self, key: &str, limit: u32, n: u32) -> bool {
        if limit == 0 {
            return true;
        }
        let now = Instant::now();
        let Ok(mut hits) = self.hits.lock() else {
            return false; // a poisoned limiter fails closed
        };
        let log = hits.entry(key.to_owned()).or_default();
        while log
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            log.pop_front();
        }
        if log.len() + n as usize > limit as usize {
            return false;
        }
        log.extend(std::iter::repeat_n(now, n as usize));
        if hits.len() > MAX_KEYS {
            let window = self.window;
            hits.retain(|_, log| {
                log.back()
                    .is_some_and(|at| now.duration_since(*at) < window)
            });
            while hits.len() > MAX_KEYS {
                let Some(victim) = hits.keys().find(|k| k.as_str() != key).cloned() else {
                    break;
                };
                hits.remove(&victim);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_5_limit_two_then_deny() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        assert!(limiter.allow("sessions:dev", 2));
        assert!(limiter.allow("sessions:dev", 2));
        assert!(!limiter.allow("sessions:dev", 2));
        assert!(limiter.allow("sessions:support", 2), "keys are independent");
    }

    #[tokio::test(start_paused = true)]
    async fn scenario_5_window_expiry() {
        let window = Duration::from_secs(60);
        let limiter = RateLimiter::new(window);
        assert!(limiter.allow("k", 2));
        tokio::time::advance(window / 2).await;
        assert!(limiter.allow("k", 2));
        assert!(!limiter.allow("k", 2));
        // One instant before the first hit leaves the window: still full.
        tokio::time::advance(window / 2 - Duration::from_millis(1)).await;
        assert!(!limiter.allow("k", 2));
        // The first hit has left; the second stays until its own minute ends.
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(limiter.allow("k", 2));
        assert!(!limiter.allow("k", 2));
        tokio::time::advance(window / 2).await;
        assert!(limiter.allow("k", 2), "the second hit has left too");
    }

    #[test]
    fn a_batch_is_admitted_whole_or_not_at_all() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        assert!(limiter.allow_n("operators:dev", 4, 3));
        assert!(
            !limiter.allow_n("operators:dev", 4, 2),
            "one left, two asked"
        );
        assert!(
            limiter.allow_n("operators:dev", 4, 1),
            "the refusal spent nothing"
        );
        assert!(!limiter.allow("operators:dev", 4));
    }

    #[test]
    fn zero_is_unlimited() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        assert!((0..1000).all(|_| limiter.allow("k", 0)));
    }
}

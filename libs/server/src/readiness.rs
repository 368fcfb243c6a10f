//! Readiness: named checks of real dependencies, run on every `/readyz`
//! call and by the loop that keeps gRPC health in step.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One dependency check. It should bound its own I/O; the readiness model
/// also cuts it off after the check timeout.
pub trait ReadinessCheck: Send + Sync {
    fn check(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

impl<F, Fut> ReadinessCheck for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn check(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(self())
    }
}

/// The named checks of one service.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Arc<dyn ReadinessCheck>)>,
    timeout: Option<Duration>,
}

/// The outcome of one readiness evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub checks: BTreeMap<String, bool>,
}

impl ReadinessReport {
    pub fn ready(&self) -> bool {
        self.checks.values().all(|ok| *ok)
    }

    /// `{"status":"ready"|"not_ready","checks":{...}}` with sorted keys.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": if self.ready() { "ready" } else { "not_ready" },
            "checks": self.checks,
        })
    }
}

impl Readiness {
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_check(
        mut self,
        name: impl Into<String>,
        check: impl ReadinessCheck + 'static,
    ) -> Self {
        self.checks.push((name.into(), Arc::new(check)));
        self
    }

    /// A check that passes while the gRPC service `service` behind `channel`
    /// reports SERVING on its health endpoint.
    pub fn with_upstream(
        self,
        name: impl Into<String>,
        channel: tonic::transport::Channel,
        service: &'static str,
    ) -> Self {
        const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
        self.with_check(name, move || {
            crate::probe_health(channel.clone(), service, PROBE_TIMEOUT)
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs every check concurrently; a check that times out counts as failed.
    pub async fn evaluate(&self) -> ReadinessReport {
        let timeout = self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT);
        let mut tasks = tokio::task::JoinSet::new();
        for (name, check) in &self.checks {
            let (name, check) = (name.clone(), Arc::clone(check));
            tasks.spawn(async move {
                let ok = tokio::time::timeout(timeout, check.check())
                    .await
                    .unwrap_or(false);
                (name, ok)
            });
        }
        let mut checks = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((name, ok)) = joined {
                checks.insert(name, ok);
            }
        }
        // A check whose task died reports as failed rather than vanishing.
        for (name, _) in &self.checks {
            checks.entry(name.clone()).or_insert(false);
        }
        ReadinessReport { checks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_checks_must_pass() {
        let readiness = Readiness::new()
            .with_check("up", || async { true })
            .with_check("down", || async { false });
        let report = readiness.evaluate().await;
        assert!(!report.ready());
        assert_eq!(
            report.to_json().to_string(),
            r#"{"checks":{"down":false,"up":true},"status":"not_ready"}"#
        );
    }

    #[tokio::test]
    async fn a_hanging_check_times_out_as_failed() {
        let readiness = Readiness::new()
            .with_timeout(Duration::from_millis(20))
            .with_check("hangs", std::future::pending::<bool>);
        let report = readiness.evaluate().await;
        assert_eq!(report.checks.get("hangs"), Some(&false));
    }

    #[tokio::test]
    async fn no_checks_means_ready() {
        assert!(Readiness::new().evaluate().await.ready());
    }
}

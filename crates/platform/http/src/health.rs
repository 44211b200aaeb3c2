//! `/health/live` and `/health/ready`.
//!
//! Liveness says the process answers. Readiness runs every dependency check at once, each
//! bounded by a timeout (so it answers within a second whatever is down), and answers 503 when a critical one fails, naming it; a failing
//! non-critical check (Redis, another service) only marks the service `degraded`. Readiness
//! also turns 503 as soon as shutdown starts, so load balancers stop sending new requests
//! while in-flight ones finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One dependency of a service.
pub trait ReadinessCheck: Send + Sync {
    /// Shown in the readiness report, e.g. `database`, `redis`, `upstream:hospital`.
    fn name(&self) -> String;
    /// Whether the service is unready when this check fails.
    fn critical(&self) -> bool {
        true
    }
    /// `Err` carries a short reason fit for an operator (no secrets, no patient data).
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// How long readiness waits for a check: readiness answers within a second (Kubernetes'
/// default probe timeout) even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    Degraded,
    Unavailable,
    ShuttingDown,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub name: String,
    pub status: String,
    pub critical: bool,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    pub service: String,
    pub status: ReadyStatus,
    pub checks: Vec<CheckReport>,
}

/// The health of one service. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    service: &'static str,
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    draining: Arc<AtomicBool>,
}

impl Health {
    pub fn new(service: &'static str, checks: Vec<Arc<dyn ReadinessCheck>>) -> Health {
        Health { service, checks: Arc::new(checks), draining: Arc::new(AtomicBool::new(false)) }
    }

    /// Marks the service as shutting down: readiness answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub async fn report(&self) -> ReadinessReport {
        self.report_of(false).await
    }

    /// The report of the critical checks only: what readiness depends on. The periodic
    /// readiness gauges use it, so they cost no call to Redis or to other services (whose
    /// calls would also count in their circuit breakers).
    pub async fn report_critical(&self) -> ReadinessReport {
        self.report_of(true).await
    }

    async fn report_of(&self, critical_only: bool) -> ReadinessReport {
        let runs = self.checks.iter().filter(|check| !critical_only || check.critical()).map(|check| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
            };
            CheckReport {
                name: check.name(),
                status: if outcome.is_ok() { "up" } else { "down" }.to_owned(),
                critical: check.critical(),
                latency_ms: (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
                error: outcome.err(),
            }
        });
        let checks = futures::future::join_all(runs).await;
        let status = if self.draining.load(Ordering::SeqCst) {
            ReadyStatus::ShuttingDown
        } else if checks.iter().any(|c| c.critical && c.error.is_some()) {
            ReadyStatus::Unavailable
        } else if checks.iter().any(|c| c.error.is_some()) {
            ReadyStatus::Degraded
        } else {
            ReadyStatus::Ready
        };
        ReadinessReport { service: self.service.to_owned(), status, checks }
    }

    pub async fn ready_response(&self) -> Response {
        let report = self.report().await;
        let code = match report.status {
            ReadyStatus::Ready | ReadyStatus::Degraded => StatusCode::OK,
            ReadyStatus::Unavailable | ReadyStatus::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        if code != StatusCode::OK {
            let failed: Vec<&str> =
                report.checks.iter().filter(|c| c.error.is_some()).map(|c| c.name.as_str()).collect();
            tracing::warn!(service = self.service, failed = ?failed, status = ?report.status, "not ready");
        }
        (code, Json(report)).into_response()
    }

    pub fn live_response(&self) -> Response {
        Json(serde_json::json!({ "service": self.service, "status": "live" })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        name: &'static str,
        critical: bool,
        ok: bool,
    }

    impl ReadinessCheck for Fixed {
        fn name(&self) -> String {
            self.name.to_owned()
        }
        fn critical(&self) -> bool {
            self.critical
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            let ok = self.ok;
            Box::pin(async move { if ok { Ok(()) } else { Err("refused".to_owned()) } })
        }
    }

    fn health(checks: &[(&'static str, bool, bool)]) -> Health {
        let checks = checks
            .iter()
            .map(|&(name, critical, ok)| Arc::new(Fixed { name, critical, ok }) as Arc<dyn ReadinessCheck>)
            .collect();
        Health::new("hospital", checks)
    }

    #[tokio::test]
    async fn status_follows_the_checks() {
        let table = [
            (vec![("database", true, true), ("redis", false, true)], ReadyStatus::Ready),
            (vec![("database", true, true), ("redis", false, false)], ReadyStatus::Degraded),
            (vec![("database", true, false), ("redis", false, true)], ReadyStatus::Unavailable),
            (vec![], ReadyStatus::Ready),
        ];
        for (checks, expected) in table {
            let report = health(&checks).report().await;
            assert_eq!(report.status, expected, "{checks:?}");
        }
        let report = health(&[("database", true, false)]).report().await;
        assert_eq!(report.checks[0].name, "database");
        assert_eq!(report.checks[0].error.as_deref(), Some("refused"));
    }

    #[tokio::test]
    async fn draining_makes_the_service_unready() {
        let h = health(&[("database", true, true)]);
        let critical = health(&[("database", true, true), ("redis", false, false)]).report_critical().await;
        assert_eq!((critical.status, critical.checks.len()), (ReadyStatus::Ready, 1), "only what readiness needs");
        h.start_draining();
        assert_eq!(h.report().await.status, ReadyStatus::ShuttingDown);
        assert_eq!(h.ready_response().await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

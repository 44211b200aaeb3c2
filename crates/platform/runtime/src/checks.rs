//! Readiness checks the runtime adds to every service, and the periodic upkeep task.

use std::time::Duration;

use futures::future::BoxFuture;
use medcov_config::ServiceName;
use medcov_http::{Metrics, ReadinessCheck};
use medcov_store::Database;
use tokio_util::sync::CancellationToken;

use crate::redis::RedisHandle;

/// The service's own database: critical.
pub struct DatabaseCheck(pub Database);

impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> String {
        format!("database:{}", self.0.backend().as_str())
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

/// Redis: not critical, since MedCov works (slower) without it.
pub struct RedisCheck(pub RedisHandle);

impl ReadinessCheck for RedisCheck {
    fn name(&self) -> String {
        "redis".to_owned()
    }

    fn critical(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.0.ping())
    }
}

const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Every few seconds: drain histogram samples and publish pool gauges.
pub async fn upkeep(name: ServiceName, metrics: Metrics, database: Option<Database>, stop: CancellationToken) {
    metrics.describe_gauge("db_pool_connections", "Connections in the service's database pool, by state.");
    let mut ticker = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        metrics.run_upkeep();
        if let Some(database) = &database {
            let (size, idle) = database.pool_stats();
            let idle = idle as f64;
            metrics.gauge("db_pool_connections", &[("state", "idle")]).set(idle);
            metrics.gauge("db_pool_connections", &[("state", "in_use")]).set(f64::from(size) - idle);
        }
    }
    tracing::debug!(service = %name, "upkeep stopped");
}

//! Readiness checks the runtime adds to every service, and the periodic upkeep task.

use std::time::Duration;

use futures::future::BoxFuture;
use medcov_config::ServiceName;
use medcov_http::health::ReadyStatus;
use medcov_http::{Health, Metrics, ReadinessCheck};
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
        Box::pin(async move {
            // A server that refuses connections makes the pool retry until its acquire
            // timeout: answer sooner, while it is down, and at once when it is back.
            match tokio::time::timeout(PING_TIMEOUT, self.0.ping()).await {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no connection within {} ms", PING_TIMEOUT.as_millis())),
            }
        })
    }
}

/// How long the database check waits for a round trip.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

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

/// A consumer of another service's stream: not critical (requests are served without it), but
/// one that has not consumed for [`CONSUMER_GRACE`] shows, naming the bus's error: the service
/// is then `degraded`, and `events_consumer_up` is 0.
pub(crate) struct ConsumerCheck(pub crate::context::Consuming);

/// How long a consumer may fail (a blip of the bus, a group being created again) before
/// readiness says so.
const CONSUMER_GRACE: Duration = Duration::from_secs(3);

impl ReadinessCheck for ConsumerCheck {
    fn name(&self) -> String {
        format!("consumer:{}/{}", self.0.stream, self.0.group)
    }

    fn critical(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let outcome = match self.0.health.not_consuming() {
            Some((failing, error)) if failing >= CONSUMER_GRACE => {
                Err(format!("not consuming for {} s: {error}", failing.as_secs()))
            }
            _ => Ok(()),
        };
        Box::pin(async move { outcome })
    }
}

const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Old Idempotency-Key records are deleted every this many upkeep ticks (ten minutes).
const PURGE_EVERY_TICKS: u64 = 120;

/// How long past its deadline a saga counts as overdue: the ticker moves a due saga within
/// a tick, so one still due a minute later is stuck.
const OVERDUE_AFTER: time::Duration = time::Duration::seconds(60);

/// What [`upkeep`] reports on besides health.
pub struct Watched {
    pub database: Option<Database>,
    pub redis: Option<RedisHandle>,
    pub cache: std::sync::Arc<dyn medcov_cache::Cache>,
}

/// Every few seconds: drain histogram samples, publish readiness and pool gauges, the sagas stuck past
/// their deadline, whether the cache's tag versions are tracked, and how span exports went;
/// every ten minutes, delete the Idempotency-Key records past their day.
pub async fn upkeep(name: ServiceName, metrics: Metrics, health: Health, watched: Watched, stop: CancellationToken) {
    let Watched { database, redis, cache } = watched;
    if cache.tracked().is_some() {
        metrics.describe_gauge(
            "cache_versions_tracked",
            "1 while Redis keeps this process told of every change of the cache's tag versions (lookups share a PING), 0 while they are read from Redis (an MGET each): before the first lookup, while Redis is away, on a Redis Cluster.",
        );
    }
    if redis.is_some() {
        metrics.describe_gauge(
            "redis_available",
            "1 while commands go to Redis, 0 while it is unreachable and its users fall back (commands fail at once).",
        );
        metrics.describe_counter(
            "redis_unavailable_total",
            "How often Redis was found unreachable (its breaker opened) since the process started.",
        );
    }
    metrics.describe_gauge("db_pool_connections", "Connections in the service's database pool, by state.");
    metrics.describe_gauge(
        "health_ready",
        "1 while the service is ready (or degraded), 0 while it is not: a critical dependency down, or shutting down.",
    );
    metrics.describe_gauge("health_check_up", "1 while a critical readiness check passes, 0 while it fails, by check.");
    metrics.describe_counter(
        "telemetry_span_exports_total",
        "Batches of this service's spans sent to the trace collector, by outcome (ok, failed).",
    );
    for outcome in ["ok", "failed"] {
        metrics.ensure_counter("telemetry_span_exports_total", &[("outcome", outcome)]);
    }
    if database.is_some() {
        metrics.describe_gauge(
            "sagas_overdue",
            "Sagas of this service more than a minute past their deadline: the ticker is not moving them.",
        );
        metrics.ensure_gauge("sagas_overdue", &[]);
    }
    // SQLite's one writer: how much of the time its lock is held, and who waits for it.
    let mut writer =
        database.as_ref().and_then(|db| db.writer_use()).map(|used| (std::time::Instant::now(), used.held));
    if writer.is_some() {
        metrics.describe_gauge(
            "db_write_lock_busy_ratio",
            "Share of the last few seconds during which this service's write transactions held its SQLite database's one write lock (1: every write waits its turn).",
        );
        metrics.describe_gauge(
            "db_write_lock_waiting",
            "Write transactions of this service waiting for their turn at its SQLite database's write lock.",
        );
    }
    let mut ticker = tokio::time::interval(UPKEEP_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        ticks += 1;
        metrics.run_upkeep();
        if let Some(redis) = &redis {
            let status = redis.status();
            metrics.gauge("redis_available", &[]).set(if status.available { 1.0 } else { 0.0 });
            metrics.counter("redis_unavailable_total", &[]).absolute(status.trips);
        }
        if let Some(tracked) = cache.tracked() {
            metrics.gauge("cache_versions_tracked", &[]).set(if tracked { 1.0 } else { 0.0 });
        }
        let report = health.report_critical().await;
        let ready = matches!(report.status, ReadyStatus::Ready | ReadyStatus::Degraded);
        metrics.gauge("health_ready", &[]).set(if ready { 1.0 } else { 0.0 });
        for check in &report.checks {
            let up = if check.error.is_none() { 1.0 } else { 0.0 };
            metrics.gauge("health_check_up", &[("check", check.name.as_str())]).set(up);
        }
        let exports = medcov_telemetry::export::exports(name.as_str());
        metrics.counter("telemetry_span_exports_total", &[("outcome", "ok")]).absolute(exports.ok);
        metrics.counter("telemetry_span_exports_total", &[("outcome", "failed")]).absolute(exports.failed);
        if let Some(database) = &database {
            let (size, idle) = database.pool_stats();
            let idle = idle as f64;
            metrics.gauge("db_pool_connections", &[("state", "idle")]).set(idle);
            metrics.gauge("db_pool_connections", &[("state", "in_use")]).set(f64::from(size) - idle);
            if let (Some((since, held_before)), Some(used)) = (writer, database.writer_use()) {
                let now = std::time::Instant::now();
                let elapsed = now.saturating_duration_since(since).as_secs_f64();
                if elapsed > 0.0 {
                    let busy = used.held.saturating_sub(held_before).as_secs_f64() / elapsed;
                    // A long transaction is counted when it ends: clamp what it adds at once.
                    metrics.gauge("db_write_lock_busy_ratio", &[]).set(busy.min(1.0));
                }
                metrics.gauge("db_write_lock_waiting", &[]).set(used.waiting as f64);
                writer = Some((now, used.held));
            }
            let before = time::OffsetDateTime::now_utc() - OVERDUE_AFTER;
            if let Ok(overdue) = medcov_bus::saga::due(database, before, 1000).await {
                metrics.gauge("sagas_overdue", &[]).set(overdue.len() as f64);
            }
            // Idempotency-Key records answer repeats for a day; then they go.
            if ticks % PURGE_EVERY_TICKS == 1 {
                match medcov_store::keyed::purge(database).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(service = %name, purged, "old Idempotency-Key records deleted"),
                    Err(error) => tracing::debug!(service = %name, %error, "Idempotency-Key records not purged"),
                }
            }
        }
    }
    tracing::debug!(service = %name, "upkeep stopped");
}

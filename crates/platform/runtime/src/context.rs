//! What a service is given when it is built.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use medcov_config::{Config, ServiceName};
use medcov_http::Metrics;
use medcov_mesh::{Mesh, Upstream};
use medcov_store::Database;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::redis::RedisHandle;

/// The consumers a service runs, for readiness and [`Running::settle`](crate::Running::settle).
pub(crate) type Consumers = Arc<Mutex<Vec<Consuming>>>;

/// One consumer: the stream it reads, its group, and whether it is consuming.
#[derive(Clone)]
pub(crate) struct Consuming {
    pub stream: &'static str,
    pub group: &'static str,
    pub health: Arc<medcov_bus::consumer::ConsumerHealth>,
}

#[derive(Clone)]
pub struct ServiceContext {
    pub name: ServiceName,
    pub config: Arc<Config>,
    /// The service's own database; `None` only for the gateway.
    pub database: Option<Database>,
    /// Redis, when configured.
    pub redis: Option<RedisHandle>,
    /// The event bus (Redis Streams with Redis, the SQLite bus otherwise).
    pub bus: Arc<dyn medcov_bus::Bus>,
    /// The service's metrics registry.
    pub metrics: Metrics,
    /// Cancelled when the service stops; background tasks watch it.
    pub shutdown: CancellationToken,
    /// Background tasks spawned here are awaited on shutdown.
    pub tasks: TaskTracker,
    pub(crate) upstreams: Arc<BTreeMap<ServiceName, Upstream>>,
    /// The process's mesh: registry, pools, breakers and the policy in force.
    pub mesh: Arc<Mesh>,
    pub(crate) cache: Arc<dyn medcov_cache::Cache>,
    /// The process's revocation list (kept in sync with the auth service by the runtime),
    /// checked by every verifier.
    pub revocations: Arc<medcov_security::Revocations>,
    pub(crate) consumers: Consumers,
}

impl ServiceContext {
    /// How to reach another service: its router when it was started earlier in this process,
    /// HTTP to `services.<name>.url` otherwise.
    pub fn upstream(&self, name: ServiceName) -> Upstream {
        match self.upstreams.get(&name) {
            Some(upstream) => upstream.clone().counted_in(&self.metrics),
            None => unreachable!("every service has an upstream entry"),
        }
    }

    /// The process's cache (Redis when configured, in process otherwise), counting this
    /// service's reads in `cache_requests_total{result}`: hit, miss (loaded) or coalesced
    /// (served by a concurrent reader's load). In a keyed request, invalidations wait for its
    /// commit, which the Idempotency-Key middleware makes after the handler
    /// ([`medcov_store::keyed::after_commit`]).
    pub fn cache(&self) -> Arc<dyn medcov_cache::Cache> {
        self.metrics.describe_counter("cache_requests_total", "Cache reads by result: hit, miss or coalesced.");
        let counter = |result| self.metrics.counter("cache_requests_total", &[("result", result)]);
        let counters =
            medcov_cache::Counters { hit: counter("hit"), miss: counter("miss"), coalesced: counter("coalesced") };
        let counted: Arc<dyn medcov_cache::Cache> = Arc::new(medcov_cache::Counted::new(self.cache.clone(), counters));
        Arc::new(AfterCommit(counted))
    }

    /// Loads the key set `set` into the cache in the background when `cache.warm` lists
    /// `<service>.<set>`; `job` returns how many keys it loaded. Logs the start, the end and
    /// the time it took.
    pub fn warm(
        &self,
        set: &'static str,
        job: impl std::future::Future<Output = Result<usize, String>> + Send + 'static,
    ) {
        let name = format!("{}.{set}", self.name);
        if !self.config.cache.warm.contains(&name) {
            return;
        }
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            let started = std::time::Instant::now();
            tracing::info!(set = %name, "warming the cache");
            tokio::select! {
                () = stop.cancelled() => tracing::info!(set = %name, "cache warming stopped by shutdown"),
                outcome = job => match outcome {
                    Ok(keys) => tracing::info!(set = %name, keys, ms = started.elapsed().as_millis() as u64, "cache warmed"),
                    Err(error) => tracing::warn!(set = %name, %error, "cache warming failed; the keys load on first use"),
                },
            }
        });
    }

    /// A token verifier that reads the auth service's keys (in process when auth runs here).
    /// Put it on the router as an `Extension` so handlers can take a `Principal`.
    pub fn verifier(&self) -> Arc<medcov_security::Verifier> {
        let keys = medcov_security::verify::UpstreamKeys(self.upstream(ServiceName::Auth));
        let issuer = &self.config.auth.issuer;
        Arc::new(
            medcov_security::Verifier::new(Arc::new(keys), issuer, issuer).with_revocations(self.revocations.clone()),
        )
    }

    /// Runs a consumer of `stream` in consumer group `group` until the service stops, with the
    /// `[events]` retry settings, counting outcomes in `events_consumed_total` and saying in
    /// `events_consumer_up` (and readiness) whether it consumes. The service's spec declares
    /// the stream in `consumes`, and the group is the service's name.
    pub fn consume(&self, stream: &'static str, group: &'static str, handler: Arc<dyn medcov_bus::consumer::Handler>) {
        use medcov_bus::consumer::{ConsumerConfig, ConsumerMetrics};
        let events = &self.config.events;
        let config = ConsumerConfig {
            max_deliveries: events.max_deliveries,
            retry_base: std::time::Duration::from_millis(events.retry_base_ms),
            retry_max: std::time::Duration::from_millis(events.retry_max_ms),
            // Dead letters are kept in the service's database: a bus that loses its data loses none.
            store: self.database.clone(),
            ..ConsumerConfig::new(stream, group)
        };
        self.metrics
            .describe_counter("events_consumed_total", "Events handled by this service's consumers, by outcome.");
        let counter = |outcome| {
            self.metrics.counter("events_consumed_total", &[("stream", stream), ("group", group), ("outcome", outcome)])
        };
        self.metrics.describe_gauge(
            "events_consumer_up",
            "1 while this service's consumer of a stream consumes (its group exists and the bus answers), 0 while it fails.",
        );
        let up = self.metrics.gauge("events_consumer_up", &[("stream", stream), ("group", group)]);
        up.set(0.0);
        let health = Arc::new(medcov_bus::consumer::ConsumerHealth::default());
        let counters = ConsumerMetrics {
            handled: counter("ok"),
            retried: counter("retry"),
            dead: counter("dead"),
            up,
            health: health.clone(),
        };
        self.consumers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Consuming {
            stream,
            group,
            health,
        });
        self.tasks.spawn(medcov_bus::consumer::run(self.bus.clone(), config, handler, counters, self.shutdown.clone()));
    }

    /// The database, for services that have one.
    pub fn require_database(&self) -> anyhow::Result<Database> {
        self.database.clone().ok_or_else(|| anyhow::anyhow!("the {} service has no database configured", self.name))
    }
}

/// A cache whose invalidations wait for the commit of the keyed request making them: made
/// before it, a concurrent reader could load and cache what is about to change.
struct AfterCommit(Arc<dyn medcov_cache::Cache>);

impl medcov_cache::Cache for AfterCommit {
    fn common(&self) -> &medcov_cache::Common {
        self.0.common()
    }

    fn versions<'a>(&'a self, tags: &'a [String]) -> futures::future::BoxFuture<'a, Vec<u64>> {
        self.0.versions(tags)
    }

    fn get<'a>(&'a self, key: &'a str, versions: &'a [u64]) -> futures::future::BoxFuture<'a, Option<bytes::Bytes>> {
        self.0.get(key, versions)
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        versions: &'a [u64],
        value: bytes::Bytes,
        ttl: std::time::Duration,
    ) -> futures::future::BoxFuture<'a, ()> {
        self.0.put(key, versions, value, ttl)
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> futures::future::BoxFuture<'a, ()> {
        let (cache, tags) = (self.0.clone(), tags.to_vec());
        Box::pin(medcov_store::keyed::after_commit(async move { cache.invalidate(&tags).await }))
    }

    fn tracked(&self) -> Option<bool> {
        self.0.tracked()
    }
}

//! The service mesh: how one MedCov service calls another that runs in other processes, so
//! that a slow or dead instance does not take the platform down.
//!
//! - [`registry`]: instances register themselves and heartbeat (Redis with expiry, or in
//!   process); callers read the list.
//! - [`pool`]: an upstream's instances, active health verdicts, passive outlier ejection,
//!   and the breakers, bulkheads, rate limits and retry budgets of its routes.
//! - [`balance`]: round robin, smooth weighted round robin, least connections, power of two
//!   choices.
//! - [`breaker`]: the circuit breaker (Resilience4j semantics, injectable clock), and
//!   [`layer`]: the same as a tower layer for any client stack.
//! - [`policy`]: the policy file that sets all of it per upstream and route, validated and
//!   reloadable.
//! - [`upstream`]: the call itself, in process or remote through all of the above.
//! - [`clock`]: the time the mesh reads.
//!
//! [`Mesh`] ties them together for a process: one pool per upstream, refreshed from the
//! registry, health-checked in the background, and the policy in force.

#![forbid(unsafe_code)]

pub mod balance;
pub mod breaker;
pub mod clock;
pub mod layer;
pub mod policy;
pub mod pool;
pub mod registry;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use policy::{MeshPolicy, PolicyError, PolicyHandle};
pub use pool::Pool;
pub use registry::{Instance, MemoryRegistry, RedisRegistry, Registry};
pub use upstream::{Remote, Upstream, UpstreamCheck};

use crate::clock::SharedClock;

/// How often the background work runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Reading the registry into the pools.
    pub refresh: Duration,
    /// Looking for a changed policy file.
    pub policy_watch: Duration,
}

/// The mesh of one process.
pub struct Mesh {
    clock: SharedClock,
    policy: PolicyHandle,
    registry: Arc<dyn Registry>,
    client: reqwest::Client,
    pools: Mutex<BTreeMap<String, Arc<Pool>>>,
    keys_shared: bool,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("policy", &self.policy.path()).finish_non_exhaustive()
    }
}

/// What the admin endpoint shows of one upstream.
#[derive(Debug, Serialize)]
pub struct UpstreamView {
    pub name: String,
    pub balancer: balance::BalancerKind,
    pub instances: Vec<pool::EndpointView>,
    pub breakers: Vec<BreakerView>,
}

#[derive(Debug, Serialize)]
pub struct BreakerView {
    /// `upstream` or `upstream.route`.
    pub id: String,
    #[serde(flatten)]
    pub snapshot: breaker::Snapshot,
}

impl Mesh {
    pub fn new(policy: PolicyHandle, registry: Arc<dyn Registry>, client: reqwest::Client, clock: SharedClock) -> Mesh {
        Mesh { clock, policy, registry, client, pools: Mutex::new(BTreeMap::new()), keys_shared: false }
    }

    /// Whether every instance of a service sees the same Idempotency-Keys (MedCov keeps them in
    /// each service's database, which its instances share): only then is a POST with a key
    /// retried on another instance.
    pub fn with_shared_keys(mut self, shared: bool) -> Mesh {
        self.keys_shared = shared;
        self
    }

    pub fn keys_shared(&self) -> bool {
        self.keys_shared
    }

    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    /// The pool of `service`, made on first use with `configured` as the address to use while
    /// the registry knows no instance.
    pub fn pool(&self, service: &str, configured: &[url::Url]) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pools
            .entry(service.to_owned())
            .or_insert_with(|| {
                let fallback = configured.iter().map(|url| Instance::new(service, url.clone())).collect();
                let balancer = self.policy.current().upstream(service).balancer;
                Arc::new(Pool::new(service, fallback, balancer, self.clock.clone()))
            })
            .clone()
    }

    /// Drops the pool of `service`: it runs in this process and is called directly, so its
    /// instances need no refreshing or health checks.
    pub fn forget(&self, service: &str) {
        self.pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(service);
    }

    /// Reads the registry into every pool. An unreachable registry leaves the pools as they
    /// are: the last list known is better than none.
    pub async fn refresh(&self) {
        for pool in self.pools() {
            match self.registry.instances(pool.service()).await {
                Ok(instances) => pool.set_instances(instances),
                Err(error) => {
                    tracing::debug!(upstream = pool.service(), %error, "registry not read; keeping the instances known")
                }
            }
        }
    }

    /// One round of active health checks of every instance of every pool, at once.
    pub async fn check_health(&self) {
        let policy = self.policy.current();
        let mut checks = Vec::new();
        for pool in self.pools() {
            let settings = policy.upstream(pool.service()).health.clone();
            for endpoint in pool.endpoints() {
                let pool = pool.clone();
                let settings = settings.clone();
                let client = self.client.clone();
                checks.push(async move {
                    let passed = match upstream::join_url(&endpoint.instance.address, &settings.path) {
                        Ok(url) => client
                            .get(url)
                            .timeout(Duration::from_millis(settings.timeout_ms))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success()),
                        Err(_) => false,
                    };
                    if let Some(healthy) =
                        pool.checked(&endpoint, passed, settings.healthy_threshold, settings.unhealthy_threshold)
                    {
                        let verdict = if healthy { "healthy" } else { "unhealthy" };
                        tracing::warn!(
                            upstream = pool.service(),
                            instance = endpoint.id(),
                            verdict,
                            "health check verdict changed"
                        );
                    }
                });
            }
        }
        futures::future::join_all(checks).await;
    }

    /// Reads the policy file again; an invalid one is refused and the policy in force stays.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        match self.policy.reload() {
            Ok(changed) => {
                if changed {
                    let policy = self.policy.current();
                    for pool in self.pools() {
                        pool.apply(policy.upstream(pool.service()));
                    }
                    tracing::info!(file = ?self.policy.path(), "mesh policy reloaded");
                }
                Ok(changed)
            }
            Err(error) => {
                tracing::error!(%error, "mesh policy not reloaded; the policy in force stays");
                Err(error)
            }
        }
    }

    /// Runs the background work until `stop`: registry refresh, health checks at the
    /// shortest interval any upstream asks for, and watching the policy file.
    pub async fn run(self: Arc<Self>, intervals: Intervals, stop: CancellationToken) {
        let refresh = {
            let mesh = self.clone();
            let stop = stop.clone();
            async move {
                loop {
                    mesh.refresh().await;
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(intervals.refresh) => {}
                    }
                }
            }
        };
        let health = {
            let mesh = self.clone();
            let stop = stop.clone();
            async move {
                loop {
                    let interval = {
                        let policy = mesh.policy.current();
                        let pools = mesh.pools();
                        pools.iter().map(|p| policy.upstream(p.service()).health.interval_ms).min().unwrap_or(1_000)
                    };
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(interval)) => {}
                    }
                    mesh.check_health().await;
                }
            }
        };
        let watch = {
            let mesh = self.clone();
            async move {
                let Some(path) = mesh.policy.path().map(|p| p.to_path_buf()) else { return };
                let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let mut seen = modified(&path);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(intervals.policy_watch) => {}
                    }
                    let now = modified(&path);
                    if now != seen {
                        seen = now;
                        let _ = mesh.reload();
                    }
                }
            }
        };
        tokio::join!(refresh, health, watch);
    }

    /// Every upstream the process has called, its instances and its breakers.
    pub fn view(&self) -> Vec<UpstreamView> {
        let policy = self.policy.current();
        self.pools()
            .iter()
            .map(|pool| UpstreamView {
                name: pool.service().to_owned(),
                balancer: policy.upstream(pool.service()).balancer,
                instances: pool.view(),
                breakers: pool
                    .breakers()
                    .into_iter()
                    .map(|(id, breaker)| BreakerView { id, snapshot: breaker.snapshot() })
                    .collect(),
            })
            .collect()
    }

    /// The breaker `id` (`upstream` or `upstream.route`), made when no call has needed it yet.
    pub fn breaker(&self, id: &str) -> Option<Arc<breaker::CircuitBreaker>> {
        let (service, route) = match id.split_once('.') {
            Some((service, route)) => (service, Some(route)),
            None => (id, None),
        };
        let pool = self.pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(service).cloned()?;
        let policy = self.policy.current();
        let settings = match route {
            None => policy.upstream(service),
            Some(route) => &policy.upstreams.get(service)?.routes.iter().find(|r| r.name == route)?.policy,
        };
        Some(pool.breaker(id, &settings.breaker))
    }
}

//! Where the instances of each service are.
//!
//! Every running instance registers itself (service, address, weight, zone, version) and
//! renews the registration on a heartbeat; a registration lapses by itself when its
//! heartbeats stop, so a dead instance leaves without anyone removing it.
//!
//! - [`RedisRegistry`]: shared by every process. One key per instance with an expiry, and a
//!   set per service naming them (names whose key has lapsed are dropped from the set as they
//!   are found).
//! - [`MemoryRegistry`]: in process (embedded mode, one process), with the same expiry.
//!
//! Callers that find no registered instance fall back to the configured address (see
//! [`crate::Mesh`]), so a deployment without Redis is static configuration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

/// One running instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique among the service's instances (the address, unless told otherwise).
    pub id: String,
    pub service: String,
    /// Its base URL, e.g. `http://10.0.0.7:3002/`.
    pub address: url::Url,
    /// Its share of the traffic under weighted round robin.
    pub weight: u32,
    pub zone: String,
    pub version: String,
    /// Unique to one run of the process (empty for a configured address): an instance
    /// restarted at the same address is a new one, and starts without its predecessor's
    /// ejection.
    #[serde(default)]
    pub incarnation: String,
}

impl Instance {
    pub fn new(service: &str, address: url::Url) -> Instance {
        Instance {
            id: address.as_str().to_owned(),
            service: service.to_owned(),
            address,
            weight: 1,
            zone: String::new(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            incarnation: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the service registry is unavailable: {0}")]
pub struct RegistryError(pub String);

pub trait Registry: Send + Sync {
    /// Registers `instance`, or renews its registration, for `ttl`.
    fn register<'a>(&'a self, instance: &'a Instance, ttl: Duration) -> BoxFuture<'a, Result<(), RegistryError>>;
    /// Removes it at once (a clean shutdown).
    fn deregister<'a>(&'a self, service: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), RegistryError>>;
    /// The live instances of `service`, ordered by id.
    fn instances<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Vec<Instance>, RegistryError>>;
}

/// In process.
pub struct MemoryRegistry {
    clock: SharedClock,
    entries: Mutex<HashMap<(String, String), (Instance, Duration)>>,
}

impl MemoryRegistry {
    pub fn new(clock: SharedClock) -> MemoryRegistry {
        MemoryRegistry { clock, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instance, Duration)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Registry for MemoryRegistry {
    fn register<'a>(&'a self, instance: &'a Instance, ttl: Duration) -> BoxFuture<'a, Result<(), RegistryError>> {
        let until = self.clock.now() + ttl;
        self.lock().insert((instance.service.clone(), instance.id.clone()), (instance.clone(), until));
        Box::pin(async { Ok(()) })
    }

    fn deregister<'a>(&'a self, service: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.lock().remove(&(service.to_owned(), id.to_owned()));
        Box::pin(async { Ok(()) })
    }

    fn instances<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Vec<Instance>, RegistryError>> {
        let now = self.clock.now();
        let mut entries = self.lock();
        entries.retain(|_, (_, until)| *until > now);
        let mut out: Vec<Instance> =
            entries.iter().filter(|((s, _), _)| s == service).map(|(_, (instance, _))| instance.clone()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Box::pin(async { Ok(out) })
    }
}

/// In Redis: `<prefix>:mesh:{<service>}` is the set of instance ids, and
/// `<prefix>:mesh:{<service>}:<id>` holds each instance as JSON with an expiry. The service's
/// name is the hash tag, so on a Redis Cluster a service's keys share a slot: registering
/// (`MULTI`) and listing (`MGET`) stay single-slot.
#[derive(Clone)]
pub struct RedisRegistry {
    connection: medcov_redis::RedisConnection,
    prefix: String,
}

impl RedisRegistry {
    pub fn new(connection: medcov_redis::RedisConnection, prefix: &str) -> RedisRegistry {
        RedisRegistry { connection, prefix: prefix.to_owned() }
    }

    fn set_key(&self, service: &str) -> String {
        format!("{}:mesh:{}", self.prefix, medcov_redis::hash_tag(service))
    }

    fn instance_key(&self, service: &str, id: &str) -> String {
        format!("{}:{id}", self.set_key(service))
    }
}

fn unavailable(error: redis::RedisError) -> RegistryError {
    RegistryError(error.to_string())
}

impl Registry for RedisRegistry {
    fn register<'a>(&'a self, instance: &'a Instance, ttl: Duration) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let json = serde_json::to_string(instance).map_err(|e| RegistryError(e.to_string()))?;
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut connection = self.connection.clone();
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(self.instance_key(&instance.service, &instance.id))
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .ignore()
                .cmd("SADD")
                .arg(self.set_key(&instance.service))
                .arg(&instance.id)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
                .map_err(unavailable)
        })
    }

    fn deregister<'a>(&'a self, service: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(self.instance_key(service, id))
                .ignore()
                .cmd("SREM")
                .arg(self.set_key(service))
                .arg(id)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
                .map_err(unavailable)
        })
    }

    fn instances<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Vec<Instance>, RegistryError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.set_key(service))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            ids.sort();
            let keys: Vec<String> = ids.iter().map(|id| self.instance_key(service, id)).collect();
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut connection).await.map_err(unavailable)?;
            let mut out = Vec::new();
            let mut lapsed = Vec::new();
            for (id, value) in ids.iter().zip(values) {
                match value.and_then(|json| serde_json::from_str::<Instance>(&json).ok()) {
                    Some(instance) => out.push(instance),
                    None => lapsed.push(id.clone()),
                }
            }
            if !lapsed.is_empty() {
                // Best effort: an instance that registers again in between re-adds itself on
                // its next heartbeat.
                let _: Result<(), _> =
                    redis::cmd("SREM").arg(self.set_key(service)).arg(&lapsed).query_async(&mut connection).await;
            }
            Ok(out)
        })
    }
}

//! The Redis handle shared by a process's services: one server or a Redis Cluster
//! (`medcov-redis`).
//!
//! It connects lazily and reconnects by itself: Redis being down at start-up or later makes
//! MedCov slower (caches miss, limits fall back to the process), never unable to start. Every
//! key goes through [`RedisHandle::key`], so deployments and tests can share one server.

use medcov_config::{RedisConfig, RedisUrl};
use medcov_redis::{RedisClient, RedisConnection};

#[derive(Clone)]
pub struct RedisHandle {
    client: RedisClient,
    connection: RedisConnection,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisHandle({}, prefix {})", self.url, self.prefix)
    }
}

impl RedisHandle {
    /// The handle `redis` sets up, when `redis.url` is set.
    pub fn from_config(redis: &RedisConfig) -> anyhow::Result<Option<RedisHandle>> {
        match &redis.url {
            Some(url) => Ok(Some(RedisHandle::new(url, redis.is_cluster(), &redis.key_prefix)?)),
            None => Ok(None),
        }
    }

    /// `url` is one server, or a cluster when it names several nodes or `cluster` is set.
    pub fn new(url: &RedisUrl, cluster: bool, prefix: &str) -> anyhow::Result<RedisHandle> {
        let client = RedisClient::open(url, cluster)
            .map_err(|e| anyhow::anyhow!("invalid setting `redis.url` ({}): {e}", url.redacted()))?;
        let connection =
            client.connection().map_err(|e| anyhow::anyhow!("cannot set up Redis at {}: {e}", url.redacted()))?;
        Ok(RedisHandle { client, connection, prefix: prefix.to_owned(), url: url.redacted() })
    }

    /// A multiplexed connection for short commands. Blocking commands (XREADGROUP BLOCK)
    /// need a dedicated connection of their own.
    pub fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    /// The client, for dedicated connections (blocking reads).
    pub fn client(&self) -> RedisClient {
        self.client.clone()
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:<part>:<part>...`
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection();
        redis::cmd("PING").query_async::<String>(&mut connection).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

//! The Redis handle shared by a process's services: one server or a Redis Cluster
//! (`medcov-redis`).
//!
//! It connects lazily and reconnects by itself: Redis being down at start-up or later never
//! stops MedCov, and costs it no time: after `redis.connect_timeout_ms` or
//! `redis.command_timeout_ms` Redis counts as unreachable, every command fails at once (the
//! client's breaker) and its users fall back (rate limits and the cache in the process)
//! until a background probe reaches it again. Every key goes through [`RedisHandle::key`], so
//! deployments and tests can share one server.

use medcov_config::{RedisConfig, RedisUrl};
use medcov_redis::{RedisClient, RedisConnection, Timeouts};

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
            Some(url) => {
                let timeouts = Timeouts {
                    connect: std::time::Duration::from_millis(redis.connect_timeout_ms),
                    response: std::time::Duration::from_millis(redis.command_timeout_ms),
                    ..Timeouts::default()
                };
                Ok(Some(RedisHandle::with_timeouts(url, redis.is_cluster(), &redis.key_prefix, timeouts)?))
            }
            None => Ok(None),
        }
    }

    /// `url` is one server, or a cluster when it names several nodes or `cluster` is set.
    pub fn new(url: &RedisUrl, cluster: bool, prefix: &str) -> anyhow::Result<RedisHandle> {
        RedisHandle::with_timeouts(url, cluster, prefix, Timeouts::default())
    }

    pub fn with_timeouts(
        url: &RedisUrl,
        cluster: bool,
        prefix: &str,
        timeouts: Timeouts,
    ) -> anyhow::Result<RedisHandle> {
        let client = RedisClient::with_timeouts(url, cluster, timeouts)
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

    /// Whether commands go to Redis now (false while its breaker is open), and how often it
    /// opened.
    pub fn status(&self) -> medcov_redis::Status {
        self.client.status()
    }

    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection();
        match redis::cmd("PING").query_async::<String>(&mut connection).await {
            Ok(_) => Ok(()),
            Err(error) if medcov_redis::failing_fast(&error) => Err(format!(
                "unreachable, failing fast while it is probed: {}",
                self.status().last_error.unwrap_or_else(|| error.to_string())
            )),
            Err(error) => Err(error.to_string()),
        }
    }
}

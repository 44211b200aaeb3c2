//! The Redis handle shared by a process's services.
//!
//! It connects lazily and reconnects by itself: Redis being down at start-up or later makes
//! MedCov slower (caches miss, limits fall back to the process), never unable to start. Every
//! key goes through [`RedisHandle::key`], so deployments and tests can share one server.

use std::time::Duration;

use medcov_config::RedisUrl;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisHandle({}, prefix {})", self.url, self.prefix)
    }
}

impl RedisHandle {
    pub fn new(url: &RedisUrl, prefix: &str) -> anyhow::Result<RedisHandle> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("invalid setting `redis.url` ({}): {e}", url.redacted()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| anyhow::anyhow!("cannot set up Redis at {}: {e}", url.redacted()))?;
        Ok(RedisHandle { client, connection, prefix: prefix.to_owned(), url: url.redacted() })
    }

    /// A multiplexed connection for short commands. Blocking commands (XREADGROUP BLOCK)
    /// need a dedicated connection of their own.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The client, for dedicated connections (blocking reads).
    pub fn client(&self) -> redis::Client {
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

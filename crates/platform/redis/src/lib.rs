//! The Redis connection the platform crates share: one server, or a Redis Cluster.
//!
//! `redis.url` names one server (`redis://cache:6379/0`) or the seed nodes of a cluster
//! (`redis://a:6379,redis://b:6379`, or one seed with `redis.cluster = true`). [`RedisClient`]
//! opens either, and [`RedisConnection`] is what every command goes through: the same type for
//! both, so the bus, the cache, the rate limiter, the idempotency store and the registry have
//! one code path. The shared connection connects on first use and reconnects by itself:
//! Redis being down at start-up makes MedCov slower, never unable to start.
//!
//! # Keys on a cluster
//!
//! A cluster answers a command, a `MULTI`/`EXEC` or a script only when every key it touches is
//! in one hash slot. A key's slot is taken from its hash tag, the part between the first `{`
//! and the next `}` (the whole key without one). So every key used together with another
//! carries the same tag ([`hash_tag`]), and `redis.key_prefix` may hold no braces:
//!
//! | keys (under `<prefix>:`) | used together by | tag |
//! |---|---|---|
//! | `events:{<stream>}`, `events:{<stream>}:dead:<group>`, `events:{<stream>}:discarded` | dead-lettering, retry and discard (`MULTI`) | the stream |
//! | `cache:{tags}:<tag>` | reading and bumping the versions of several tags (scripts) | one for all tags |
//! | `cache:entry:<key>` | nothing: one key a command | none |
//! | `mesh:{<service>}`, `mesh:{<service>}:<id>` | registration (`MULTI`), listing (`MGET`) | the service |
//! | `ratelimit:<key>`, `idempotency:<key>` | nothing: one key a script | none |
//!
//! Streams spread over the cluster by stream, registrations by service, cache entries and
//! limits by key; the tag versions of the cache share one slot (a few small keys).

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use medcov_config::RedisUrl;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// `{<tag>}`: the hash tag that puts keys in one cluster slot (harmless on one server).
pub fn hash_tag(tag: &str) -> String {
    format!("{{{tag}}}")
}

/// How long the shared connection waits, and how often it tries again.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
    /// Further tries of a command whose connection failed.
    pub retries: usize,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(2), response: Duration::from_secs(2), retries: 2 }
    }
}

/// Opens connections to one server or to a cluster.
#[derive(Clone)]
pub struct RedisClient {
    kind: ClientKind,
    timeouts: Timeouts,
}

#[derive(Clone)]
enum ClientKind {
    Server(redis::Client),
    Cluster(Box<ClusterClient>),
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_cluster() { "RedisClient(cluster)" } else { "RedisClient(server)" })
    }
}

impl RedisClient {
    /// A client for `url`: a cluster when it names several nodes or `cluster` is set.
    /// Nothing is connected yet.
    pub fn open(url: &RedisUrl, cluster: bool) -> RedisResult<RedisClient> {
        RedisClient::with_timeouts(url, cluster, Timeouts::default())
    }

    pub fn with_timeouts(url: &RedisUrl, cluster: bool, timeouts: Timeouts) -> RedisResult<RedisClient> {
        let kind = if cluster || url.is_cluster() {
            let seeds: Vec<&str> = url.nodes().iter().map(|n| n.as_str()).collect();
            let client = ClusterClient::builder(seeds)
                .connection_timeout(timeouts.connect)
                .response_timeout(timeouts.response)
                .retries(u32::try_from(timeouts.retries).unwrap_or(u32::MAX))
                .build()?;
            ClientKind::Cluster(Box::new(client))
        } else {
            ClientKind::Server(redis::Client::open(url.expose())?)
        };
        Ok(RedisClient { kind, timeouts })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, ClientKind::Cluster(_))
    }

    /// A multiplexed connection for short commands, shared by whoever clones it. It connects
    /// on first use and reconnects after a failure. Blocking commands (`XREADGROUP ... BLOCK`)
    /// would stall everyone sharing it: they take a [`RedisClient::dedicated`] one.
    pub fn connection(&self) -> RedisResult<RedisConnection> {
        match &self.kind {
            ClientKind::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeouts.connect))
                    .set_response_timeout(Some(self.timeouts.response))
                    .set_number_of_retries(self.timeouts.retries)
                    .set_max_delay(Duration::from_secs(2));
                Ok(ConnectionManager::new_lazy_with_config(client.clone(), config)?.into())
            }
            ClientKind::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.timeouts.connect)
                    .set_response_timeout(self.timeouts.response);
                Ok(RedisConnection(Inner::Cluster(Arc::new(LazyCluster {
                    connect: Some((client.as_ref().clone(), config)),
                    connection: OnceCell::new(),
                }))))
            }
        }
    }

    /// A connection of its own, connected now, whose answers may take up to `response_timeout`:
    /// for blocking commands.
    pub async fn dedicated(&self, response_timeout: Duration) -> RedisResult<RedisConnection> {
        match &self.kind {
            ClientKind::Server(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeouts.connect))
                    .set_response_timeout(Some(response_timeout));
                Ok(client.get_multiplexed_async_connection_with_config(&config).await?.into())
            }
            ClientKind::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.timeouts.connect)
                    .set_response_timeout(response_timeout);
                Ok(client.get_async_connection_with_config(config).await?.into())
            }
        }
    }
}

/// A connection to one server or to a cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub struct RedisConnection(Inner);

#[derive(Clone)]
enum Inner {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(Arc<LazyCluster>),
}

/// A cluster connection made on first use. The cluster client follows the cluster by itself
/// once connected (slot moves, failovers, reconnections); until a first connection succeeds,
/// every use tries again.
struct LazyCluster {
    /// How to connect; `None` for a connection handed over already made.
    connect: Option<(ClusterClient, ClusterConfig)>,
    connection: OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let Some((client, config)) = &self.connect else {
            return Err(redis::RedisError::from((redis::ErrorKind::Client, "no cluster connection")));
        };
        let connection =
            self.connection.get_or_try_init(|| client.get_async_connection_with_config(config.clone())).await?;
        Ok(connection.clone())
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(connection: ConnectionManager) -> Self {
        RedisConnection(Inner::Manager(connection))
    }
}

impl From<MultiplexedConnection> for RedisConnection {
    fn from(connection: MultiplexedConnection) -> Self {
        RedisConnection(Inner::Multiplexed(connection))
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(connection: ClusterConnection) -> Self {
        RedisConnection(Inner::Cluster(Arc::new(LazyCluster {
            connect: None,
            connection: OnceCell::new_with(Some(connection)),
        })))
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Manager(_) | Inner::Multiplexed(_) => "RedisConnection(server)",
            Inner::Cluster(_) => "RedisConnection(cluster)",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Inner::Manager(connection) => connection.req_packed_command(cmd),
            Inner::Multiplexed(connection) => connection.req_packed_command(cmd),
            Inner::Cluster(lazy) => Box::pin(async move {
                let mut connection = lazy.get().await?;
                connection.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Inner::Manager(connection) => connection.req_packed_commands(pipeline, offset, count),
            Inner::Multiplexed(connection) => connection.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(lazy) => Box::pin(async move {
                let mut connection = lazy.get().await?;
                connection.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Inner::Manager(connection) => connection.get_db(),
            Inner::Multiplexed(connection) => connection.get_db(),
            Inner::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unused_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_cluster_that_is_not_there_fails_commands_not_start_up() {
        let url: RedisUrl =
            format!("redis://127.0.0.1:{},redis://127.0.0.1:{}", unused_port(), unused_port()).parse().unwrap();
        let timeouts =
            Timeouts { connect: Duration::from_millis(200), response: Duration::from_millis(200), retries: 0 };
        let client = RedisClient::with_timeouts(&url, false, timeouts).expect("a client, unconnected");
        assert!(client.is_cluster());
        let mut connection = client.connection().expect("a lazy connection");
        let started = std::time::Instant::now();
        let ping = redis::cmd("PING").query_async::<String>(&mut connection).await;
        assert!(ping.is_err(), "{ping:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "failed within the timeouts: {:?}", started.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_seed_with_the_cluster_setting_finds_every_master() {
        let seeds = tokio::task::spawn_blocking(medcov_testkit::redis_cluster::cluster_url).await.unwrap();
        let first: RedisUrl = seeds.split(',').next().unwrap().parse().unwrap();
        let client = RedisClient::open(&first, true).expect("client");
        let mut connection = client.connection().expect("connection");
        let pong: String = redis::cmd("PING").query_async(&mut connection).await.expect("every master answers");
        assert_eq!(pong, "PONG");
        // Keys of every slot are reachable from the one seed: the client follows the slot map.
        let prefix = format!("medcov-redis-test-{}", std::process::id());
        for n in 0..30 {
            let key = format!("{prefix}:{n}");
            let _: () =
                redis::cmd("SET").arg(&key).arg(n).arg("EX").arg(60).query_async(&mut connection).await.unwrap();
            let back: i64 = redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
            assert_eq!(back, n);
            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut connection).await.unwrap();
        }
        // Keys sharing a hash tag go together in one transaction; without one, the cluster refuses.
        let tag = hash_tag(&prefix);
        let together: RedisResult<()> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(format!("{tag}:a"))
            .arg(1)
            .ignore()
            .cmd("SET")
            .arg(format!("{tag}:b"))
            .arg(2)
            .ignore()
            .query_async(&mut connection)
            .await;
        together.expect("one slot");
        let _: () = redis::cmd("DEL")
            .arg(format!("{tag}:a"))
            .arg(format!("{tag}:b"))
            .query_async(&mut connection)
            .await
            .unwrap();
        // Tags `a` and `b` hash to slots 15495 and 3300.
        let apart: RedisResult<()> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(format!("{prefix}:{}", hash_tag("a")))
            .arg(1)
            .ignore()
            .cmd("SET")
            .arg(format!("{prefix}:{}", hash_tag("b")))
            .arg(2)
            .ignore()
            .query_async(&mut connection)
            .await;
        assert!(apart.is_err(), "keys in two slots cannot share a transaction");
        let blocking = client.dedicated(Duration::from_secs(5)).await.expect("a dedicated connection");
        assert_eq!(blocking.get_db(), 0);
    }
}

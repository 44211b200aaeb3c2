//! The Redis connection the platform crates share: one server, or a Redis Cluster.
//!
//! `redis.url` names one server (`redis://cache:6379/0`) or the seed nodes of a cluster
//! (`redis://a:6379,redis://b:6379`, or one seed with `redis.cluster = true`). [`RedisClient`]
//! opens either, and [`RedisConnection`] is what every command goes through: the same type for
//! both, so the bus, the cache, the rate limiter and the registry have
//! one code path. The shared connection connects on first use and reconnects by itself:
//! Redis being down at start-up makes MedCov slower, never unable to start.
//!
//! # Failing fast
//!
//! Redis is never critical: every user has an in-process fallback (the rate limiter, the
//! cache, the Idempotency-Keys), or carries on without it (the registry; the relay's outbox
//! waits). So an outage must cost no time. Every connection of a client shares
//! one breaker: the first command that finds Redis unreachable (refused, dropped, timed out
//! after the short `connect` and `response` timeouts) opens it, and from then on every command
//! fails at once with an error [`failing_fast`] recognises, without touching the network,
//! while a background task probes Redis every `probe_every` on a new connection. The first
//! probe that gets a `PONG` closes the breaker and hands its connection over. A command's own
//! errors (a wrong type, `NOGROUP`, a script error) are answers, not outages: they leave the
//! breaker closed.
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
//! | `ratelimit:<key>` | nothing: one key a script | none |
//!
//! Streams spread over the cluster by stream, registrations by service, cache entries and
//! limits by key; the tag versions of the cache share one slot (a few small keys).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use medcov_config::RedisUrl;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use tokio::sync::OnceCell;

/// `{<tag>}`: the hash tag that puts keys in one cluster slot (harmless on one server).
pub fn hash_tag(tag: &str) -> String {
    format!("{{{tag}}}")
}

/// How long a connection waits, how often it tries again, and how often an unreachable Redis
/// is probed.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
    /// Further tries of a command whose connection failed (a cluster's own redirections and
    /// reconnections; one server gets none: the breaker answers instead).
    pub retries: usize,
    /// While Redis is unreachable, how often a background task tries it again.
    pub probe_every: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(250),
            response: Duration::from_millis(500),
            retries: 1,
            probe_every: Duration::from_millis(200),
        }
    }
}

/// The detail of the error a command gets while the breaker is open.
const OPEN: &str = "Redis is unreachable; commands fail at once until a probe reaches it again";

/// Whether `error` is the breaker's own answer (Redis known to be unreachable), rather than
/// a failure met just now. Users log the first and stay quiet on these.
pub fn failing_fast(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Io && error.detail() == Some(OPEN)
}

/// Whether `error` says Redis (or the way to it) is unavailable, rather than answering.
pub fn is_outage(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(ServerErrorKind::ClusterDown)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
                | ErrorKind::Server(ServerErrorKind::BusyLoading)
        )
}

/// Opens connections to one server or to a cluster. Clones share the connection and the
/// breaker.
#[derive(Clone)]
pub struct RedisClient {
    shared: Arc<Shared>,
}

struct Shared {
    kind: ClientKind,
    timeouts: Timeouts,
    /// The shared connection for short commands.
    link: Link,
    /// Open: Redis is known unreachable, commands fail at once.
    open: AtomicBool,
    /// A probe task runs.
    probing: AtomicBool,
    /// How often the breaker opened.
    trips: AtomicU64,
    /// What opened it last.
    last_error: Mutex<Option<String>>,
}

enum ClientKind {
    Server(redis::Client),
    Cluster(Box<ClusterClient>),
}

enum Link {
    /// One server: a multiplexed connection, made on first use and replaced by the probe.
    Server { current: RwLock<Option<MultiplexedConnection>>, connecting: tokio::sync::Mutex<()> },
    /// A cluster connection made on first use. The cluster client follows the cluster by
    /// itself once connected (slot moves, failovers, reconnections); until a first connection
    /// succeeds, every use tries again.
    Cluster { config: ClusterConfig, connection: OnceCell<ClusterConnection> },
}

/// What the breaker knows, for readiness and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Commands go to Redis (false: they fail at once while a probe tries it).
    pub available: bool,
    /// How often the breaker opened since start.
    pub trips: u64,
    /// The failure that opened it last.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_cluster() { "RedisClient(cluster)" } else { "RedisClient(server)" })
    }
}

fn server_config(timeouts: &Timeouts, response: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new().set_connection_timeout(Some(timeouts.connect)).set_response_timeout(Some(response))
}

impl RedisClient {
    /// A client for `url`: a cluster when it names several nodes or `cluster` is set.
    /// Nothing is connected yet.
    pub fn open(url: &RedisUrl, cluster: bool) -> RedisResult<RedisClient> {
        RedisClient::with_timeouts(url, cluster, Timeouts::default())
    }

    pub fn with_timeouts(url: &RedisUrl, cluster: bool, timeouts: Timeouts) -> RedisResult<RedisClient> {
        let (kind, link) = if cluster || url.is_cluster() {
            let seeds: Vec<&str> = url.nodes().iter().map(|n| n.as_str()).collect();
            let client = ClusterClient::builder(seeds)
                .connection_timeout(timeouts.connect)
                .response_timeout(timeouts.response)
                // Each try waits `response` (a dedicated connection's own, longer, for its
                // blocking reads: the overall cap would be fixed to the shorter one here).
                .overall_response_timeout(None)
                .retries(u32::try_from(timeouts.retries).unwrap_or(u32::MAX))
                .build()?;
            let config =
                ClusterConfig::new().set_connection_timeout(timeouts.connect).set_response_timeout(timeouts.response);
            (ClientKind::Cluster(Box::new(client)), Link::Cluster { config, connection: OnceCell::new() })
        } else {
            let link = Link::Server { current: RwLock::new(None), connecting: tokio::sync::Mutex::new(()) };
            (ClientKind::Server(redis::Client::open(url.expose())?), link)
        };
        let shared = Shared {
            kind,
            timeouts,
            link,
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            trips: AtomicU64::new(0),
            last_error: Mutex::new(None),
        };
        Ok(RedisClient { shared: Arc::new(shared) })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.shared.kind, ClientKind::Cluster(_))
    }

    /// The multiplexed connection for short commands, shared by every clone of the client. It
    /// connects on first use and reconnects through the breaker. Blocking commands
    /// (`XREADGROUP ... BLOCK`) would stall everyone sharing it: they take a
    /// [`RedisClient::dedicated`] one.
    pub fn connection(&self) -> RedisResult<RedisConnection> {
        Ok(RedisConnection { shared: self.shared.clone(), own: None })
    }

    /// A connection of its own, connected now, whose answers may take up to `response_timeout`:
    /// for blocking commands. It shares the client's breaker: while that is open it is not
    /// even tried.
    pub async fn dedicated(&self, response_timeout: Duration) -> RedisResult<RedisConnection> {
        self.shared.check()?;
        let made = match &self.shared.kind {
            ClientKind::Server(client) => client
                .get_multiplexed_async_connection_with_config(&server_config(&self.shared.timeouts, response_timeout))
                .await
                .map(Own::Server),
            ClientKind::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.shared.timeouts.connect)
                    .set_response_timeout(response_timeout);
                client.get_async_connection_with_config(config).await.map(Own::Cluster)
            }
        };
        match made {
            Ok(own) => Ok(RedisConnection { shared: self.shared.clone(), own: Some(own) }),
            Err(error) => Err(self.shared.failed(error)),
        }
    }

    /// How often the breaker opened: a connection made before the last opening is probably
    /// dead (Redis restarted, or the network dropped it), so pools of dedicated connections
    /// drop those from an older generation instead of finding out with a failed command.
    pub fn generation(&self) -> u64 {
        self.shared.trips.load(Ordering::Acquire)
    }

    /// Whether commands go to Redis now, how often the breaker opened, and why last.
    pub fn status(&self) -> Status {
        Status {
            available: !self.shared.open.load(Ordering::Acquire),
            trips: self.shared.trips.load(Ordering::Relaxed),
            last_error: self.shared.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

impl Shared {
    /// Fails at once while the breaker is open.
    fn check(&self) -> RedisResult<()> {
        if self.open.load(Ordering::Acquire) {
            Err(RedisError::from((ErrorKind::Io, "unavailable", OPEN.to_owned())))
        } else {
            Ok(())
        }
    }

    /// Looks at a failed command: an outage opens the breaker (and starts the probe).
    fn failed(self: &Arc<Self>, error: RedisError) -> RedisError {
        if is_outage(&error) && !failing_fast(&error) {
            self.trip(&error);
        }
        error
    }

    fn trip(self: &Arc<Self>, error: &RedisError) {
        if let Link::Server { current, .. } = &self.link {
            *current.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        if !self.open.swap(true, Ordering::AcqRel) {
            self.trips.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(%error, "Redis is unreachable: its users fall back at once (rate limits and the cache in process) while it is probed in the background");
        }
        if !self.probing.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(self);
            let every = self.timeouts.probe_every;
            tokio::spawn(probe(weak, every));
        }
    }

    /// The shared connection to one server, connecting when there is none.
    async fn server(self: &Arc<Self>) -> RedisResult<MultiplexedConnection> {
        let (ClientKind::Server(client), Link::Server { current, connecting }) = (&self.kind, &self.link) else {
            return Err(RedisError::from((ErrorKind::Client, "not a single server")));
        };
        let known = current.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(connection) = known {
            return Ok(connection);
        }
        // One connects; the others wait for it rather than opening their own.
        let _one = connecting.lock().await;
        self.check()?;
        let known = current.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(connection) = known {
            return Ok(connection);
        }
        let config = server_config(&self.timeouts, self.timeouts.response);
        let connection = client.get_multiplexed_async_connection_with_config(&config).await?;
        *current.write().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    async fn cluster(&self) -> RedisResult<ClusterConnection> {
        let (ClientKind::Cluster(client), Link::Cluster { config, connection }) = (&self.kind, &self.link) else {
            return Err(RedisError::from((ErrorKind::Client, "not a cluster")));
        };
        let connection = connection.get_or_try_init(|| client.get_async_connection_with_config(config.clone())).await?;
        Ok(connection.clone())
    }

    /// One try: a new connection (one server) or the cluster connection, and a `PING`.
    async fn reach(self: &Arc<Self>) -> RedisResult<()> {
        match &self.kind {
            ClientKind::Server(client) => {
                let config = server_config(&self.timeouts, self.timeouts.response);
                let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
                redis::cmd("PING").query_async::<String>(&mut connection).await?;
                if let Link::Server { current, .. } = &self.link {
                    *current.write().unwrap_or_else(|p| p.into_inner()) = Some(connection);
                }
                Ok(())
            }
            ClientKind::Cluster(_) => {
                let mut connection = self.cluster().await?;
                redis::cmd("PING").query_async::<String>(&mut connection).await.map(|_| ())
            }
        }
    }
}

/// Tries Redis every `every` until it answers, then closes the breaker. Ends when the client
/// is gone.
async fn probe(shared: Weak<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else { return };
        match shared.reach().await {
            Ok(()) => {
                shared.probing.store(false, Ordering::Release);
                shared.open.store(false, Ordering::Release);
                tracing::info!("Redis answers again: its users go back to it");
                return;
            }
            Err(error) => {
                *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
            }
        }
    }
}

/// What Redis pushed about the keys a [`RedisConnection::track`] connection watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// These keys changed, expired or were evicted.
    Keys(Vec<String>),
    /// Every key may have changed (the database was flushed).
    All,
    /// The connection is gone: changes made from now on are not pushed.
    Lost,
}

impl Pushed {
    fn of(push: redis::PushInfo) -> Option<Pushed> {
        match push.kind {
            redis::PushKind::Disconnection => Some(Pushed::Lost),
            redis::PushKind::Invalidate => match push.data.into_iter().next() {
                Some(Value::Array(keys)) => Some(Pushed::Keys(
                    keys.into_iter()
                        .filter_map(|key| match key {
                            Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                            Value::SimpleString(text) => Some(text),
                            _ => None,
                        })
                        .collect(),
                )),
                _ => Some(Pushed::All),
            },
            _ => None,
        }
    }
}

/// A connection to one server or to a cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub struct RedisConnection {
    shared: Arc<Shared>,
    /// A dedicated connection; `None` for the client's shared one.
    own: Option<Own>,
}

#[derive(Clone)]
enum Own {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.shared.kind {
            ClientKind::Server(_) => "RedisConnection(server)",
            ClientKind::Cluster(_) => "RedisConnection(cluster)",
        })
    }
}

impl RedisConnection {
    async fn command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        self.shared.check()?;
        let outcome = match &mut self.own {
            Some(Own::Server(connection)) => connection.req_packed_command(cmd).await,
            Some(Own::Cluster(connection)) => connection.req_packed_command(cmd).await,
            None => match &self.shared.kind {
                ClientKind::Server(_) => match self.shared.server().await {
                    Ok(mut connection) => connection.req_packed_command(cmd).await,
                    Err(error) => Err(error),
                },
                ClientKind::Cluster(_) => match self.shared.cluster().await {
                    Ok(mut connection) => connection.req_packed_command(cmd).await,
                    Err(error) => Err(error),
                },
            },
        };
        outcome.map_err(|error| self.shared.failed(error))
    }

    async fn commands(&mut self, pipeline: &Pipeline, offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.shared.check()?;
        let outcome = match &mut self.own {
            Some(Own::Server(connection)) => connection.req_packed_commands(pipeline, offset, count).await,
            Some(Own::Cluster(connection)) => connection.req_packed_commands(pipeline, offset, count).await,
            None => match &self.shared.kind {
                ClientKind::Server(_) => match self.shared.server().await {
                    Ok(mut connection) => connection.req_packed_commands(pipeline, offset, count).await,
                    Err(error) => Err(error),
                },
                ClientKind::Cluster(_) => match self.shared.cluster().await {
                    Ok(mut connection) => connection.req_packed_commands(pipeline, offset, count).await,
                    Err(error) => Err(error),
                },
            },
        };
        outcome.map_err(|error| self.shared.failed(error))
    }
}

impl RedisConnection {
    /// A connection of its own to which Redis pushes every change of a key under `prefix`
    /// (client-side caching in broadcasting mode: `CLIENT TRACKING ON BCAST PREFIX`, over
    /// RESP3), connected now. `on` is called on the connection's own task, in the order Redis
    /// sent the pushes and before the answer to any later command on this connection, so a
    /// `PING` answered on it means every change made before the `PING` has been seen. It is told
    /// [`Pushed::Lost`] when the connection ends. `None` on a cluster, where changes are not
    /// tracked (the keys of one prefix may live on several nodes).
    pub async fn track<F>(&self, prefix: &str, on: F) -> RedisResult<Option<RedisConnection>>
    where
        F: Fn(Pushed) + Send + Sync + 'static,
    {
        self.shared.check()?;
        let ClientKind::Server(client) = &self.shared.kind else {
            return Ok(None);
        };
        let info = client.get_connection_info().clone();
        let settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        let resp3 = redis::Client::open(info.set_redis_settings(settings))?;
        let config = server_config(&self.shared.timeouts, self.shared.timeouts.response).set_push_sender(
            move |push: redis::PushInfo| -> Result<(), std::convert::Infallible> {
                if let Some(pushed) = Pushed::of(push) {
                    on(pushed);
                }
                Ok(())
            },
        );
        let made = async {
            let mut connection = resp3.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(prefix)
                .query_async::<()>(&mut connection)
                .await?;
            Ok(connection)
        };
        match made.await {
            Ok(connection) => {
                Ok(Some(RedisConnection { shared: self.shared.clone(), own: Some(Own::Server(connection)) }))
            }
            Err(error) => Err(self.shared.failed(error)),
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.commands(pipeline, offset, count))
    }

    fn get_db(&self) -> i64 {
        match &self.own {
            Some(Own::Server(connection)) => connection.get_db(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ping(connection: &mut RedisConnection) -> RedisResult<String> {
        redis::cmd("PING").query_async::<String>(connection).await
    }

    fn unused_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_cluster_that_is_not_there_fails_commands_not_start_up() {
        let url: RedisUrl =
            format!("redis://127.0.0.1:{},redis://127.0.0.1:{}", unused_port(), unused_port()).parse().unwrap();
        let timeouts = Timeouts {
            connect: Duration::from_millis(200),
            response: Duration::from_millis(200),
            retries: 0,
            ..Timeouts::default()
        };
        let client = RedisClient::with_timeouts(&url, false, timeouts).expect("a client, unconnected");
        assert!(client.is_cluster());
        let mut connection = client.connection().expect("a lazy connection");
        let started = std::time::Instant::now();
        let ping = redis::cmd("PING").query_async::<String>(&mut connection).await;
        assert!(ping.is_err(), "{ping:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "failed within the timeouts: {:?}", started.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_opens_the_breaker_commands_fail_at_once_and_a_probe_closes_it() {
        let mut server = tokio::task::spawn_blocking(medcov_testkit::private_redis::PrivateRedis::start).await.unwrap();
        let url: RedisUrl = server.url().parse().unwrap();
        let client = RedisClient::open(&url, false).expect("client");
        let mut connection = client.connection().expect("connection");
        assert_eq!(ping(&mut connection).await.expect("up"), "PONG");
        assert_eq!(client.status().trips, 0);

        server.kill();
        // The first command meets the outage and opens the breaker.
        let first = ping(&mut connection).await.expect_err("down");
        assert!(is_outage(&first) && !failing_fast(&first), "{first:?}");
        let status = client.status();
        assert!(!status.available && status.trips == 1, "{status:?}");
        // Every later one fails without touching the network, a dedicated connection too.
        for _ in 0..200 {
            let started = std::time::Instant::now();
            let error = ping(&mut connection).await.expect_err("still down");
            assert!(failing_fast(&error), "{error:?}");
            assert!(started.elapsed() < Duration::from_millis(5), "{:?}", started.elapsed());
        }
        let dedicated = client.dedicated(Duration::from_secs(1)).await.expect_err("not even tried");
        assert!(failing_fast(&dedicated), "{dedicated:?}");

        // Back (empty): the probe finds it and commands go to it again.
        let server = tokio::task::spawn_blocking(move || {
            server.start_again();
            server
        })
        .await
        .unwrap();
        medcov_testkit::until("the probe to reach Redis again", Duration::from_secs(5), async || {
            client.status().available
        })
        .await;
        assert_eq!(ping(&mut connection).await.expect("up again"), "PONG");
        let mut blocking = client.dedicated(Duration::from_secs(1)).await.expect("a dedicated connection");
        assert_eq!(ping(&mut blocking).await.expect("up"), "PONG");
        assert_eq!(client.status().trips, 1);
        drop(server);
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

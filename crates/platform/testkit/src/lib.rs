//! Test environments: every test gets its own, so tests run in parallel without meeting.
//!
//! - [`TestEnv::embedded`]: SQLite files in a temporary folder, no Redis.
//! - [`TestEnv::distributed`]: a fresh PostgreSQL database (dropped afterwards) and a unique
//!   Redis key prefix (its keys deleted afterwards) on the local servers.
//!
//! - [`TestEnv::redis_cluster`]: as distributed, with Redis a three-master Redis Cluster on
//!   loopback ports ([`redis_cluster`]: started by the first test that needs it, then reused).
//!
//! All give a [`Config`] with every port set to 0. If PostgreSQL or Redis is unreachable, a
//! distributed test fails with a message saying how to start it: it is never skipped.
//!
//! [`private_postgres`] starts a PostgreSQL cluster of a test's own on a free port, which the
//! test may stop and start again (to inject an outage; the shared servers are never stopped).
//!
//! [`private_redis`] is a Redis server of one test's own, on a free port, to stop and start again
//! (empty or with its data) while MedCov runs against it.
//!
//! [`tools`] finds the command-line tools some tests run (validators, a browser).
//!
//! [`wait`] waits for a real condition with a deadline ([`eventually`], [`until`]), for what a
//! settle barrier cannot see (a TTL running out, a process coming up).
//!
//! [`backend_suite!`] turns a list of `async fn(TestEnv)` tests into one test per backend:
//! the contract-suite pattern every backend trait reuses; [`redis_cluster_suite!`] adds the
//! same tests on a Redis Cluster for what keeps its state in Redis.

#![forbid(unsafe_code)]

pub mod private_postgres;
pub mod private_redis;
pub mod redis_cluster;
pub mod tools;
pub mod wait;

pub use wait::{PATIENCE, eventually, until};

use std::time::Duration;

use medcov_config::{Config, ServiceName};
use sqlx::migrate::MigrateDatabase;

/// PostgreSQL server for tests (any database on it; tests create their own).
pub const POSTGRES_ENV: &str = "MEDCOV_TEST_POSTGRES_URL";
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Redis server for tests.
pub const REDIS_ENV: &str = "MEDCOV_TEST_REDIS_URL";
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// Which backends a test environment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// SQLite under a temporary folder; no Redis.
    Embedded,
    /// PostgreSQL and Redis on the local servers.
    Distributed,
    /// PostgreSQL on the local server, Redis a Redis Cluster ([`redis_cluster`]).
    RedisCluster,
}

/// One test's environment; dropping it removes what it created.
pub struct TestEnv {
    pub backend: TestBackend,
    pub config: Config,
    dir: tempfile::TempDir,
    postgres: Option<PostgresDatabase>,
    redis: Option<RedisPrefix>,
}

impl TestEnv {
    pub async fn new(backend: TestBackend) -> TestEnv {
        match backend {
            TestBackend::Embedded => TestEnv::embedded().await,
            TestBackend::Distributed => TestEnv::distributed().await,
            TestBackend::RedisCluster => TestEnv::redis_cluster().await,
        }
    }

    pub async fn embedded() -> TestEnv {
        let dir = tempfile::tempdir().expect("cannot create a temporary folder");
        let config = base_config(dir.path());
        TestEnv { backend: TestBackend::Embedded, config, dir, postgres: None, redis: None }
    }

    pub async fn distributed() -> TestEnv {
        let dir = tempfile::tempdir().expect("cannot create a temporary folder");
        let mut config = base_config(dir.path());
        let postgres = PostgresDatabase::create().await;
        let redis = RedisPrefix::create().await;
        config.database.url = postgres.url.parse().expect("a valid PostgreSQL URL");
        config.redis.url = Some(redis.url.parse().expect("a valid Redis URL"));
        config.redis.key_prefix = redis.prefix.clone();
        // On PostgreSQL the signing keys' encryption key must come from outside the database.
        config.auth.key_encryption_key = medcov_config::Secret::new(random_kek());
        TestEnv { backend: TestBackend::Distributed, config, dir, postgres: Some(postgres), redis: Some(redis) }
    }

    /// As [`TestEnv::distributed`] (whatever else that sets up), with Redis the test cluster.
    pub async fn redis_cluster() -> TestEnv {
        let mut env = TestEnv::distributed().await;
        let url = tokio::task::spawn_blocking(redis_cluster::cluster_url).await.expect("the cluster starts");
        let redis = RedisPrefix { url, prefix: format!("medcov-test-{}", unique_suffix()), cluster: true };
        env.config.redis.url = Some(redis.url.parse().expect("valid Redis URLs"));
        env.config.redis.key_prefix = redis.prefix.clone();
        env.redis = Some(redis);
        env.backend = TestBackend::RedisCluster;
        env
    }

    /// The temporary data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The test's own PostgreSQL database URL, when distributed.
    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|p| p.url.as_str())
    }

    /// The test's own Redis key prefix, when distributed or on a cluster.
    pub fn redis_prefix(&self) -> Option<&str> {
        self.redis.as_ref().map(|r| r.prefix.as_str())
    }
}

fn base_config(dir: &std::path::Path) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    for name in ServiceName::ALL {
        config.services.get_mut(name).port = Some(0);
    }
    config.gateway.internal_port = 0;
    config.http.shutdown_grace_ms = 5_000;
    // Every test client comes from 127.0.0.1: generous limits keep suites from tripping over
    // each other's sign-ins. Rate-limit tests set their own.
    config.gateway.rate_limits.auth = medcov_config::QuotaConfig { per_minute: 6_000, burst: 1_000 };
    config.gateway.rate_limits.sign_in = medcov_config::QuotaConfig { per_minute: 6_000, burst: 1_000 };
    config.gateway.rate_limits.api = medcov_config::QuotaConfig { per_minute: 60_000, burst: 10_000 };
    config
}

/// A key-encryption key for the auth service: base64 of 32 random bytes.
pub fn random_kek() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

fn unique_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A database created for one test and dropped with it.
struct PostgresDatabase {
    url: String,
    name: String,
    admin_url: String,
}

impl PostgresDatabase {
    async fn create() -> PostgresDatabase {
        let admin_url = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let name = format!("medcov_test_{}", unique_suffix());
        let mut url =
            url::Url::parse(&admin_url).unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin_url} is not a URL: {e}"));
        url.set_path(&name);
        let url = url.to_string();
        let created = tokio::time::timeout(Duration::from_secs(10), sqlx::Postgres::create_database(&url)).await;
        match created {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{}", postgres_help(&admin_url, &e.to_string())),
            Err(_) => panic!("{}", postgres_help(&admin_url, "no answer within 10 s")),
        }
        PostgresDatabase { url, name, admin_url }
    }
}

fn postgres_help(url: &str, error: &str) -> String {
    format!(
        "PostgreSQL is needed for this test and is not reachable at {url} ({error}).\n\
         Start it (on Debian: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
         or `bash .ci/run`, which installs and starts it), or point {POSTGRES_ENV} at a server \
         where this user may create databases."
    )
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut connection)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
}

/// A key prefix for one test; its keys are deleted with it.
struct RedisPrefix {
    url: String,
    prefix: String,
    /// `url` names the seed nodes of a cluster.
    cluster: bool,
}

impl RedisPrefix {
    async fn create() -> RedisPrefix {
        let url = std::env::var(REDIS_ENV).unwrap_or_else(|_| DEFAULT_REDIS.to_owned());
        let help = |error: &str| {
            format!(
                "Redis is needed for this test and is not reachable at {url} ({error}).\n\
                 Start it (`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`, \
                 or `bash .ci/run`, which installs and starts it), or point {REDIS_ENV} at a server."
            )
        };
        let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("{}", help(&e.to_string())));
        let ping = tokio::time::timeout(Duration::from_secs(5), async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut connection).await
        })
        .await;
        match ping {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{}", help(&e.to_string())),
            Err(_) => panic!("{}", help("no answer within 5 s")),
        }
        RedisPrefix { url, prefix: format!("medcov-test-{}", unique_suffix()), cluster: false }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let url = self.url.clone();
        if self.cluster {
            let prefix = self.prefix.clone();
            let _ = std::thread::spawn(move || redis_cluster::delete_prefix(&url, &prefix)).join();
            return;
        }
        let pattern = format!("{}:*", self.prefix);
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let client = redis::Client::open(url.as_str())?;
            let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut connection)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut connection)?;
            }
            Ok(())
        })
        .join();
    }
}

/// Runs each listed `async fn(TestEnv)` once per backend, as tests named
/// `embedded::<name>` and `distributed::<name>`.
///
/// ```text
/// async fn readiness_names_the_database(env: TestEnv) { ... }
/// medcov_testkit::backend_suite!(readiness_names_the_database);
/// ```
#[macro_export]
macro_rules! backend_suite {
    ($($test:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::TestEnv::new($crate::TestBackend::Embedded).await).await;
                }
            )+
        }
        mod distributed {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::TestEnv::new($crate::TestBackend::Distributed).await).await;
                }
            )+
        }
    };
}

/// Runs each listed `async fn(TestEnv)` on a Redis Cluster too, as tests named
/// `redis_cluster::<name>`: for the suites of what keeps its state in Redis (bus, cache,
/// rate limits, registry, idempotency keys), beside [`backend_suite!`].
#[macro_export]
macro_rules! redis_cluster_suite {
    ($($test:ident),+ $(,)?) => {
        mod redis_cluster {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::TestEnv::new($crate::TestBackend::RedisCluster).await).await;
                }
            )+
        }
    };
}

//! Test environments: every test gets its own, so tests run in parallel without meeting.
//!
//! - [`TestEnv::embedded`]: SQLite files in a temporary folder, no Redis.
//! - [`TestEnv::distributed`]: a fresh PostgreSQL database (dropped afterwards) and a unique
//!   Redis key prefix (its keys deleted afterwards) on the local servers.
//!
//! Both give a [`Config`] with every port set to 0. If PostgreSQL or Redis is unreachable, a
//! distributed test fails with a message saying how to start it: it is never skipped.
//!
//! [`tools`] finds the command-line tools some tests run (validators, a browser).
//!
//! [`wait`] waits for a real condition with a deadline ([`eventually`], [`until`]), for what a
//! settle barrier cannot see (a TTL running out, a process coming up).
//!
//! [`backend_suite!`] turns a list of `async fn(TestEnv)` tests into one test per backend:
//! the contract-suite pattern every backend trait reuses.

#![forbid(unsafe_code)]

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
        TestEnv { backend: TestBackend::Distributed, config, dir, postgres: Some(postgres), redis: Some(redis) }
    }

    /// The temporary data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The test's own PostgreSQL database URL, when distributed.
    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|p| p.url.as_str())
    }

    /// The test's own Redis key prefix, when distributed.
    pub fn redis_prefix(&self) -> Option<&str> {
        self.redis.as_ref().map(|r| r.prefix.as_str())
    }
}

fn base_config(dir: &std::path::Path) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    for name in ServiceName::ALL {
        config.services.get_mut(name).port = Some(0);
    }
    config.http.shutdown_grace_ms = 5_000;
    // Every test client comes from 127.0.0.1: generous limits keep suites from tripping over
    // each other's sign-ins. Rate-limit tests set their own.
    config.gateway.rate_limits.auth = medcov_config::QuotaConfig { per_minute: 6_000, burst: 1_000 };
    config.gateway.rate_limits.api = medcov_config::QuotaConfig { per_minute: 60_000, burst: 10_000 };
    config
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
        RedisPrefix { url, prefix: format!("medcov-test-{}", unique_suffix()) }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let url = self.url.clone();
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

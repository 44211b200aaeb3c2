//! Where MedCov services keep their records: a pool per service, on SQLite (the embedded
//! default) or PostgreSQL, chosen by the URL scheme at start-up.
//!
//! - SQLite: one file per service under the data folder, created on first run; WAL, a busy
//!   timeout, and `BEGIN IMMEDIATE` ([`Database::begin_write`]) for every transaction that
//!   writes, since a deferred transaction that upgrades to a write fails at once with
//!   SQLITE_BUSY.
//! - PostgreSQL: one schema per service (named after it) in the configured database, which is
//!   created when missing; each connection's `search_path` is that schema, so a service cannot
//!   see another's tables by accident.
//!
//! # How store code is written
//!
//! SQL lives in plain `async fn`s over a connection pool or a transaction of one backend, in a
//! folder (`store/sql/`) that each backend module mounts with its own `type Db`
//! ([`sqlite`], [`postgres`]): the portable SQL is written once (`$1` placeholders work in
//! both) and compiled once per backend; what differs (row locks, say) is a constant or a
//! function in the backend's own module. A store's public functions take a [`Database`] or a
//! [`Tx`] (a transaction of either backend) and choose the backend once, with [`dispatch!`].
//! The service layer opens the transaction, loads, decides with the domain rules and persists
//! through those functions, then commits.
//!
//! Reads take the backend's `&Pool` ([`pool::Pool`]) and run on it (or on
//! [`pool::Pool::acquire`]'s connection, for several statements together): in a keyed request
//! that has committed, that is its still open transaction, so a handler reading back what it
//! wrote sees it before the Idempotency-Key record and its answer are committed with it.
//!
//! - [`StoreError`]: the one error of every store: unavailable (503), a duplicate key, a stored
//!   value this code cannot read (naming its table and column), or another database error.
//! - [`outbox`]: typed domain events written in the caller's transaction.
//! - [`inbox`]: events a consumer handled, recorded with their effect.
//! - [`pool`]: the pool as the SQL sees it; in a keyed request, its reads run in the request's
//!   kept transaction.
//! - [`keyed`]: Idempotency-Key records, written in the transaction of the effect they answer
//!   for (the Idempotency-Key middleware drives it; the service layer does not see it).
//! - Platform tables (`medcov_meta`, `outbox`, `inbox`, `sagas`, `saga_transitions`,
//!   `idempotency_records`, `dead_letters`, `dead_letter_discards`) have one migration set here, applied to each service's schema before the service's own.

#![forbid(unsafe_code)]

mod error;
pub mod inbox;
pub mod keyed;
pub mod outbox;
pub mod pool;
pub mod postgres;
pub mod sqlite;

pub use error::{StoreError, decode};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use medcov_config::{DatabaseUrl, ServiceName};
use sqlx::Connection;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Why a service's database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the {service} database at {url} is unreachable: {source}")]
    Unreachable { service: ServiceName, url: String, source: sqlx::Error },
    #[error("cannot prepare the data file {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("migrating the {service} database failed: {source}")]
    Migrate { service: ServiceName, source: sqlx::migrate::MigrateError },
    #[error("the database configured for {service} belongs to the {owner} service; give each service its own database")]
    Foreign { service: ServiceName, owner: String },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl OpenError {
    /// Whether the database answered too slowly rather than refused: every connection of the
    /// pool was busy past the acquire timeout (a loaded machine, a server still starting).
    /// Start-up tries again for a while; anything else stops it at once.
    pub fn is_busy(&self) -> bool {
        let timed_out = |e: &sqlx::Error| matches!(e, sqlx::Error::PoolTimedOut);
        match self {
            OpenError::Unreachable { source, .. } | OpenError::Sqlx(source) => timed_out(source),
            OpenError::Migrate { source: sqlx::migrate::MigrateError::Execute(source), .. } => timed_out(source),
            _ => false,
        }
    }
}

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A service's migrations, one set per backend (`migrations/postgres`, `migrations/sqlite`).
/// They hold the service's own tables only: the platform's are in [`platform_migrations`].
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

/// The platform's tables in every service's schema (`medcov_meta`, `outbox`, `inbox`, `sagas`,
/// `saga_transitions`, `idempotency_records`, `dead_letters`, `dead_letter_discards`), recorded in their own history table so their versions never meet a
/// service's.
pub fn platform_migrations() -> Migrations {
    Migrations { postgres: &PLATFORM_POSTGRES, sqlite: &PLATFORM_SQLITE }
}

/// Where the platform's migrations are recorded, beside each service's `_sqlx_migrations`.
pub const PLATFORM_HISTORY: &str = "_medcov_platform_migrations";

static PLATFORM_POSTGRES: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("migrations/postgres");
    migrator.dangerous_set_table_name(PLATFORM_HISTORY);
    migrator
});
static PLATFORM_SQLITE: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("migrations/sqlite");
    migrator.dangerous_set_table_name(PLATFORM_HISTORY);
    migrator
});

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub data_dir: PathBuf,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl PoolOptions {
    pub fn from_config(config: &medcov_config::Config) -> PoolOptions {
        PoolOptions {
            data_dir: config.data_dir.clone(),
            max_connections: config.database.max_connections,
            acquire_timeout: config.database.acquire_timeout(),
        }
    }
}

/// A service's connection pool. Statements on it in a keyed request run in the request's kept
/// transaction while it holds one ([`pool`]).
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(sqlite::Pool),
    Postgres(postgres::Pool),
}

impl Database {
    /// Opens the pool for `service`, creating the SQLite file, or the PostgreSQL database and
    /// the service's schema, when missing.
    pub async fn connect(
        service: ServiceName,
        url: &DatabaseUrl,
        options: &PoolOptions,
    ) -> Result<Database, OpenError> {
        match url {
            DatabaseUrl::Embedded => {
                let path = options.data_dir.join(format!("{service}.db"));
                connect_sqlite(&path, options).await
            }
            DatabaseUrl::SqliteFile(path) => connect_sqlite(path, options).await,
            DatabaseUrl::Postgres(url) => connect_postgres(service, url, options).await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Database::Sqlite(pool) => pool.inner().acquire().await?.ping().await,
            Database::Postgres(pool) => pool.inner().acquire().await?.ping().await,
        }
    }

    /// Prepares the database for `service`: applies the platform's migrations (its own tables,
    /// [`platform_migrations`]), claims the database for `service` in `medcov_meta` (refusing one that
    /// names another service), then applies the service's migrations for this backend.
    pub async fn migrate(&self, service: ServiceName, migrations: &Migrations) -> Result<(), OpenError> {
        let migrate = |source| OpenError::Migrate { service, source };
        let platform = platform_migrations();
        match self {
            Database::Sqlite(pool) => platform.sqlite.run(pool.inner()).await.map_err(migrate)?,
            Database::Postgres(pool) => platform.postgres.run(pool.inner()).await.map_err(migrate)?,
        }
        const CLAIM: &str = "INSERT INTO medcov_meta (key, value) VALUES ('service', $1) ON CONFLICT (key) DO NOTHING";
        match self {
            Database::Sqlite(pool) => sqlx::query(CLAIM).bind(service.as_str()).execute(pool).await.map(drop)?,
            Database::Postgres(pool) => sqlx::query(CLAIM).bind(service.as_str()).execute(pool).await.map(drop)?,
        }
        self.check_owner(service).await?;
        match self {
            Database::Sqlite(pool) => migrations.sqlite.run(pool.inner()).await.map_err(migrate)?,
            Database::Postgres(pool) => migrations.postgres.run(pool.inner()).await.map_err(migrate)?,
        }
        Ok(())
    }

    /// Refuses a database whose `medcov_meta` names another service.
    pub async fn check_owner(&self, service: ServiceName) -> Result<(), OpenError> {
        const QUERY: &str = "SELECT value FROM medcov_meta WHERE key = 'service'";
        let owner: Option<String> = match self {
            Database::Sqlite(pool) => sqlx::query_scalar(QUERY).fetch_optional(pool).await?,
            Database::Postgres(pool) => sqlx::query_scalar(QUERY).fetch_optional(pool).await?,
        };
        match owner {
            Some(owner) if owner != service.as_str() => Err(OpenError::Foreign { service, owner }),
            _ => Ok(()),
        }
    }

    /// The pool's size and idle connections, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self {
            Database::Sqlite(pool) => (pool.inner().size(), pool.inner().num_idle()),
            Database::Postgres(pool) => (pool.inner().size(), pool.inner().num_idle()),
        }
    }

    /// How this process used the database's write lock: SQLite's one writer (`None` on
    /// PostgreSQL, whose writers do not take turns, and for an in-memory database).
    pub fn writer_use(&self) -> Option<sqlite::WriterUse> {
        match self {
            Database::Sqlite(pool) => sqlite::writer_use(pool.inner()),
            Database::Postgres(_) => None,
        }
    }

    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.inner().close().await,
            Database::Postgres(pool) => pool.inner().close().await,
        }
    }
}

impl Database {
    /// Starts a transaction that will write: `BEGIN IMMEDIATE` on SQLite (it holds the write
    /// lock from its first statement), a plain `BEGIN` on PostgreSQL (whose row locks and
    /// constraints do the rest).
    ///
    /// In a keyed request ([`keyed`]) it also takes the Idempotency-Key's lock, and fails with
    /// [`StoreError::Answered`] when a request under the key committed meanwhile.
    pub async fn begin_write(&self) -> Result<Tx, StoreError> {
        let keyed = keyed::current();
        if let Some(keyed) = &keyed {
            keyed.flush(false).await?;
        }
        let mut tx = match self {
            Database::Sqlite(pool) => Tx::Sqlite(sqlite::begin_write(pool.inner()).await?),
            Database::Postgres(pool) => Tx::Postgres(pool.inner().begin().await?),
        };
        if let Some(keyed) = &keyed {
            keyed.claim(&mut tx).await?;
        }
        Ok(tx)
    }

    /// Starts a transaction that only reads (a consistent view of several reads).
    ///
    /// In a keyed request that committed (in name) already, what it wrote is committed for real
    /// first, with a record whose answer follows once known, so that this transaction sees it
    /// ([`keyed`]): the last resort, which the Idempotency-Key middleware counts (a crash before
    /// the answer is stored leaves a record without one). Reads on the pool do not need it.
    pub async fn begin_read(&self) -> Result<Tx, StoreError> {
        if let Some(keyed) = keyed::current() {
            keyed.flush(true).await?;
        }
        Ok(match self {
            Database::Sqlite(pool) => Tx::Sqlite(sqlite::begin_read(pool.inner()).await?),
            Database::Postgres(pool) => Tx::Postgres(pool.inner().begin().await?),
        })
    }

    /// The pool of the backend in use, for [`dispatch!`].
    pub fn split(&self) -> Split<&sqlite::Pool, &postgres::Pool> {
        match self {
            Database::Sqlite(pool) => Split::Sqlite(pool),
            Database::Postgres(pool) => Split::Postgres(pool),
        }
    }
}

/// An open transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(sqlite::Tx),
    Postgres(postgres::Tx),
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    /// Commits. In a keyed request ([`keyed`]) the commit waits for the request's answer, which
    /// the Idempotency-Key middleware writes in this transaction before committing it.
    pub async fn commit(self) -> Result<(), StoreError> {
        match keyed::current() {
            Some(keyed) => keyed.keep(self).await,
            None => self.commit_now().await,
        }
    }

    pub(crate) async fn commit_now(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Runs one statement of this transaction's own (a savepoint's, say) on either backend.
    async fn run(&mut self, statement: &'static str) -> Result<(), StoreError> {
        use sqlx::Executor;
        match self {
            Tx::Sqlite(tx) => (&mut **tx).execute(statement).await.map(drop)?,
            Tx::Postgres(tx) => (&mut **tx).execute(statement).await.map(drop)?,
        }
        Ok(())
    }

    /// Makes the write transactions that take one of `keys` wait for one another until each
    /// ends, so a check and the write it guards (no patient like this one yet, then the
    /// insert) cannot interleave with another transaction's. On PostgreSQL transaction-level
    /// advisory locks on the keys' 64-bit hashes (two keys of one hash merely wait for each
    /// other), taken in one statement in the order of their hashes, so two transactions that
    /// share keys never wait for each other in a circle; on SQLite nothing, as a write
    /// transaction already holds the whole database.
    pub async fn lock_keys(&mut self, keys: &[String]) -> Result<(), StoreError> {
        if let Tx::Postgres(tx) = self
            && !keys.is_empty()
        {
            sqlx::query(
                "SELECT count(pg_advisory_xact_lock(hash)) FROM \
                 (SELECT DISTINCT hashtextextended(key, 0) AS hash FROM unnest($1::text[]) AS key ORDER BY hash) AS keys",
            )
            .bind(keys)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Marks where one part of a transaction shared by several (a consumer's batch of events)
    /// begins: [`Tx::release`] keeps what the part wrote, [`Tx::rollback_part`] undoes it
    /// alone. One part at a time.
    pub async fn begin_part(&mut self) -> Result<(), StoreError> {
        self.run("SAVEPOINT medcov_part").await
    }

    /// Keeps what the part begun by [`Tx::begin_part`] wrote (committed with the transaction).
    pub async fn release_part(&mut self) -> Result<(), StoreError> {
        self.run("RELEASE SAVEPOINT medcov_part").await
    }

    /// Undoes what the part begun by [`Tx::begin_part`] wrote, and nothing before it; the
    /// transaction goes on (on PostgreSQL too, after a failed statement).
    pub async fn rollback_part(&mut self) -> Result<(), StoreError> {
        self.run("ROLLBACK TO SAVEPOINT medcov_part").await?;
        self.run("RELEASE SAVEPOINT medcov_part").await
    }

    /// The transaction of the backend in use, for [`dispatch!`].
    pub fn split(&mut self) -> Split<&mut sqlite::Tx, &mut postgres::Tx> {
        match self {
            Tx::Sqlite(tx) => Split::Sqlite(tx),
            Tx::Postgres(tx) => Split::Postgres(tx),
        }
    }
}

/// Writes whose only answer is success or failure (inserts of new rows, say), gathered to be
/// sent together: on SQLite in one round trip for all of them, while the write lock is held
/// (see [`sqlite::Writes`]); on PostgreSQL one after another. Nothing is sent before
/// [`Writes::run`], so a read in the transaction before it does not see them; a statement
/// that fails fails the run, and the transaction with it. Gathered with the `gather…`
/// functions of the stores ([`outbox::gather`], say), which [`dispatch!`] reaches with
/// `dispatch!(gather writes, module::function(…))`.
pub enum Writes {
    Sqlite(sqlite::Writes),
    Postgres(postgres::Writes),
}

impl Tx {
    /// Writes to gather for this transaction, on its backend.
    pub fn writes(&self) -> Writes {
        match self {
            Tx::Sqlite(_) => Writes::Sqlite(sqlite::Writes::default()),
            Tx::Postgres(_) => Writes::Postgres(postgres::Writes::default()),
        }
    }
}

impl Writes {
    /// Runs the writes in `tx`, which they were gathered for ([`Tx::writes`]); the rows they
    /// changed, in all.
    pub async fn run(self, tx: &mut Tx) -> Result<u64, StoreError> {
        Ok(match (self, tx) {
            (Writes::Sqlite(writes), Tx::Sqlite(tx)) => writes.run(tx).await?,
            (Writes::Postgres(writes), Tx::Postgres(tx)) => writes.run(tx).await?,
            _ => {
                return Err(StoreError::Database(sqlx::Error::Protocol(
                    "writes gathered for one backend were run on the other".into(),
                )));
            }
        })
    }

    /// The writes of the backend in use, for [`dispatch!`].
    pub fn split(&mut self) -> Split<&mut sqlite::Writes, &mut postgres::Writes> {
        match self {
            Writes::Sqlite(writes) => Split::Sqlite(writes),
            Writes::Postgres(writes) => Split::Postgres(writes),
        }
    }
}

/// One of two things, by backend: what [`Database::split`] and [`Tx::split`] hand to
/// [`dispatch!`].
pub enum Split<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// Calls the function of the same name in the caller's `sqlite` or `postgres` module (the
/// store's backend modules, which mount the same SQL with their own `Db`), with the pool or
/// transaction of the backend in use as its first argument, and awaits it. On a pool, in a
/// keyed request that committed (in name), the statement runs in that request's transaction
/// ([`pool`]).
///
/// ```text
/// pub async fn invoice(db: &Database, id: Uuid) -> Result<Option<Invoice>, StoreError> {
///     dispatch!(db, invoices::by_id(id))
/// }
/// pub async fn insert_invoice(tx: &mut Tx, invoice: &Invoice) -> Result<(), StoreError> {
///     dispatch!(tx, invoices::insert(invoice))
/// }
/// ```
///
/// expands to `match db.split() { Split::Sqlite(on) => sqlite::invoices::by_id(on, id).await,
/// Split::Postgres(on) => postgres::invoices::by_id(on, id).await }`.
///
/// `dispatch!(gather writes, invoices::gather_insert(invoice))` does the same with [`Writes`], to
/// a function that only adds statements to them, and does not await.
#[macro_export]
macro_rules! dispatch {
    (gather $on:expr, $($function:ident)::+ ( $($argument:expr),* $(,)? )) => {
        match ($on).split() {
            $crate::Split::Sqlite(on) => sqlite::$($function)::+(on, $($argument),*),
            $crate::Split::Postgres(on) => postgres::$($function)::+(on, $($argument),*),
        }
    };
    ($on:expr, $($function:ident)::+ ( $($argument:expr),* $(,)? )) => {
        match ($on).split() {
            $crate::Split::Sqlite(on) => sqlite::$($function)::+(on, $($argument),*).await,
            $crate::Split::Postgres(on) => postgres::$($function)::+(on, $($argument),*).await,
        }
    };
}

/// How long a SQLite statement waits for the write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

async fn connect_sqlite(path: &Path, options: &PoolOptions) -> Result<Database, OpenError> {
    // Created 0600 in a 0700 folder before SQLite opens it: the WAL and shared-memory files
    // SQLite makes beside it take the same mode (see medcov_config::private).
    medcov_config::private::ensure_file(path)
        .map_err(|source| OpenError::DataDir { path: path.to_path_buf(), source })?;
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections)
        // Connections wait for the one writer, not for a server that may be down.
        .acquire_timeout(options.acquire_timeout.max(SQLITE_BUSY_TIMEOUT))
        .connect_with(connect)
        .await?;
    Ok(Database::Sqlite(pool::Pool::new(pool)))
}

async fn connect_postgres(service: ServiceName, url: &url::Url, options: &PoolOptions) -> Result<Database, OpenError> {
    let unreachable = |source| OpenError::Unreachable { service, url: medcov_config::urls::redact(url), source };
    ensure_database(url.as_str()).await.map_err(unreachable)?;
    let connect = PgConnectOptions::from_str(url.as_str()).map_err(unreachable)?;
    let schema = service.as_str();
    // The schema must exist before connections select it.
    let mut first = sqlx::PgConnection::connect_with(&connect).await.map_err(unreachable)?;
    // The schema name is a service name from a closed list, never user input.
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut first).await?;
    first.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect.options([("search_path", schema)]))
        .await
        .map_err(unreachable)?;
    Ok(Database::Postgres(pool::Pool::new(pool)))
}

/// Creates the database when it does not exist; a concurrent creator winning the race is fine.
async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
    if sqlx::Postgres::database_exists(url).await? {
        return Ok(());
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        Err(e) if sqlx::Postgres::database_exists(url).await.unwrap_or(false) => {
            tracing::debug!(error = %e, "database was created concurrently");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_busy_pool_is_worth_waiting_for_at_start_up() {
        let service = ServiceName::Hospital;
        let busy = [
            OpenError::Sqlx(sqlx::Error::PoolTimedOut),
            OpenError::Unreachable { service, url: "postgres://db".into(), source: sqlx::Error::PoolTimedOut },
            OpenError::Migrate { service, source: sqlx::migrate::MigrateError::Execute(sqlx::Error::PoolTimedOut) },
        ];
        for error in &busy {
            assert!(error.is_busy(), "{error}");
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let not_busy = [
            OpenError::Unreachable { service, url: "postgres://db".into(), source: sqlx::Error::Io(refused) },
            OpenError::Foreign { service, owner: "billing".into() },
            OpenError::Migrate { service, source: sqlx::migrate::MigrateError::VersionMissing(3) },
        ];
        for error in &not_busy {
            assert!(!error.is_busy(), "{error}");
        }
    }
}

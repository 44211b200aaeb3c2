//! The SQLite backend: its types, what differs in its SQL, and the platform's SQL compiled for
//! it (the folder `sql/`, shared with [`postgres`](crate::postgres)).
//!
//! A store mounts its own SQL the same way: `store/sqlite.rs` re-exports these names and
//! mounts `store/sql/` with `#[path = "sql/mod.rs"]`.

pub type Db = sqlx::Sqlite;
/// The pool as SQL sees it: in a keyed request, reads run in its kept transaction
/// ([`crate::pool`]).
pub type Pool = crate::pool::Pool<sqlx::Sqlite>;
pub type Connection = sqlx::SqliteConnection;

/// What a `SELECT` adds to lock the rows it reads until the transaction ends: nothing, since a
/// write transaction (`BEGIN IMMEDIATE`) already holds the whole database.
pub const FOR_UPDATE: &str = "";

/// See [`FOR_UPDATE`]: nothing.
pub const FOR_NO_KEY_UPDATE: &str = "";

/// What a `SELECT … FOR UPDATE` adds to skip rows another transaction holds: nothing (see
/// [`FOR_UPDATE`]); one relay runs per SQLite database.
pub const SKIP_LOCKED: &str = "";

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub use sql::*;

/// A transaction on SQLite; a write one also holds its file's writer turn ([`begin_write`]).
/// It dereferences to the connection, as `sqlx::Transaction` does.
#[derive(Debug)]
pub struct Tx {
    inner: sqlx::Transaction<'static, Db>,
    /// Released when the transaction ends (committed, rolled back or dropped).
    _turn: Option<Turn>,
}

/// The writers' turns of one SQLite file in this process, and how they are used.
#[derive(Debug)]
struct Turns {
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    /// Nanoseconds the turn was held, by transactions that ended.
    held_ns: std::sync::atomic::AtomicU64,
    /// Writers waiting for the turn now.
    waiting: std::sync::atomic::AtomicU64,
}

/// A writer's turn, held until the transaction ends: the time is added to its file's
/// [`WriterUse::held`] then.
#[derive(Debug)]
struct Turn {
    _permit: tokio::sync::OwnedSemaphorePermit,
    turns: std::sync::Arc<Turns>,
    since: std::time::Instant,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let held = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.turns.held_ns.fetch_add(held, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How the write lock of one SQLite file was used by this process: SQLite has one writer, so
/// while it is held nearly all of the time, every write waits (the embedded mode's limit on
/// writes; `db_write_lock_busy_ratio` on `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterUse {
    /// How long write transactions held it, in all, counting those that ended.
    pub held: std::time::Duration,
    /// Writers waiting for their turn right now.
    pub waiting: u64,
}

/// The use of the write lock of the file `pool` opens (`None` for an in-memory database).
pub fn writer_use(pool: &sqlx::SqlitePool) -> Option<WriterUse> {
    let turns = turns(pool)?;
    Some(WriterUse {
        held: std::time::Duration::from_nanos(turns.held_ns.load(std::sync::atomic::Ordering::Relaxed)),
        waiting: turns.waiting.load(std::sync::atomic::Ordering::Relaxed),
    })
}

impl std::ops::Deref for Tx {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.inner
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

/// Gathered runs of at most this many statements are kept compiled in the connection's
/// statement cache, by their text; longer ones are compiled for the run alone. A short run (one
/// record's writes) recurs with the same text and is worth keeping; a long one (a batch of
/// registrations, say) has a text of its own for each size of batch, and each kept text holds
/// the compiled programs of all its statements for as long as the connection lives: kept, a
/// burst of registrations left a hundred MiB more resident than compiled each time.
const CACHED: usize = 8;

/// Writes gathered to run together on SQLite ([`crate::Writes`]): their statements joined
/// with `;` into one, with anonymous `?` placeholders that SQLite binds across the statements
/// in order, so that all of them cost one hand-off to the connection's worker thread instead
/// of one each. That hand-off is most of a small write's cost, and it is paid while the
/// file's one write lock is held.
#[derive(Default)]
pub struct Writes {
    query: Option<sqlx::QueryBuilder<Db>>,
    statements: usize,
}

impl Writes {
    /// Starts the next statement with `sql`; the builder goes on with it (`push`,
    /// `push_bind`, `push_values`).
    pub fn statement(&mut self, sql: &str) -> &mut sqlx::QueryBuilder<Db> {
        let first = self.query.is_none();
        self.statements += 1;
        let query = self.query.get_or_insert_with(|| sqlx::QueryBuilder::new(""));
        if !first {
            query.push("; ");
        }
        query.push(sql)
    }

    /// Runs the statements in order, in one round trip; the rows they changed, in all.
    pub async fn run(self, tx: &mut Tx) -> Result<u64, sqlx::Error> {
        use sqlx::Executor;
        let Some(mut query) = self.query else { return Ok(0) };
        let kept = self.statements <= CACHED;
        Ok((&mut **tx).execute(query.build().persistent(kept)).await?.rows_affected())
    }
}

/// How long a writer waits for its turn, as long as SQLite's busy timeout would have let it
/// wait for the lock.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts a transaction that holds the write lock from its first statement (`BEGIN
/// IMMEDIATE`): a deferred one that upgrades to a write fails at once with SQLITE_BUSY.
///
/// Writers to one file in this process take turns first come, first served, before asking
/// SQLite for the lock. SQLite alone is not fair: a writer refused the lock sleeps in its busy
/// handler (up to 100 ms a time) while the lock, freed meanwhile, goes to whoever asks next,
/// so under a stream of writers one of them (an outbox relay, a consumer) could wait seconds
/// while the lock sat idle between others. Writers in other processes still meet SQLite's busy
/// handler. A turn not given within [`TURN_WAIT`] is `PoolTimedOut` (503, like a busy lock).
pub async fn begin_write(pool: &sqlx::SqlitePool) -> Result<Tx, sqlx::Error> {
    let turn = match turns(pool) {
        Some(turns) => {
            let permit = {
                let _waiting = Waiting::on(&turns);
                tokio::time::timeout(TURN_WAIT, turns.semaphore.clone().acquire_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?
            };
            Some(Turn { _permit: permit, turns, since: std::time::Instant::now() })
        }
        None => None,
    };
    Ok(Tx { inner: pool.begin_with("BEGIN IMMEDIATE").await?, _turn: turn })
}

/// Counts a writer as waiting for its turn while it lives (however the wait ends: given,
/// timed out, or the caller dropped).
struct Waiting<'a>(&'a Turns);

impl<'a> Waiting<'a> {
    fn on(turns: &'a Turns) -> Waiting<'a> {
        turns.waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(turns)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Starts a transaction that only reads: no turn, WAL readers never wait for the writer.
pub async fn begin_read(pool: &sqlx::SqlitePool) -> Result<Tx, sqlx::Error> {
    Ok(Tx { inner: pool.begin().await?, _turn: None })
}

/// The writers' turns of the file `pool` opens (none for an in-memory database, which no
/// other pool shares).
fn turns(pool: &sqlx::SqlitePool) -> Option<std::sync::Arc<Turns>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex};
    static TURNS: LazyLock<Mutex<HashMap<std::path::PathBuf, Arc<Turns>>>> = LazyLock::new(Mutex::default);
    let options = pool.connect_options();
    let file = options.get_filename();
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return None;
    }
    let mut turns = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Some(
        turns
            .entry(file.to_path_buf())
            .or_insert_with(|| {
                Arc::new(Turns {
                    semaphore: Arc::new(tokio::sync::Semaphore::new(1)),
                    held_ns: Default::default(),
                    waiting: Default::default(),
                })
            })
            .clone(),
    )
}

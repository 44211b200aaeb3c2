//! The SQLite backend: its types, what differs in its SQL, and the platform's SQL compiled for
//! it (the folder `sql/`, shared with [`postgres`](crate::postgres)).
//!
//! A store mounts its own SQL the same way: `store/sqlite.rs` re-exports these names and
//! mounts `store/sql/` with `#[path = "sql/mod.rs"]`.

pub type Db = sqlx::Sqlite;
/// The pool as SQL sees it: in a keyed request, reads run in its kept transaction
/// ([`crate::pool`]).
pub type Pool = crate::pool::Pool<sqlx::Sqlite>;
pub type Tx = sqlx::Transaction<'static, Db>;
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

/// Starts a transaction that holds the write lock from its first statement (`BEGIN
/// IMMEDIATE`): a deferred one that upgrades to a write fails at once with SQLITE_BUSY.
pub async fn begin_write(pool: &sqlx::SqlitePool) -> Result<Tx, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

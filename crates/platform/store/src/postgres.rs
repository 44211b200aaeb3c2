//! The PostgreSQL backend: its types, what differs in its SQL, and the platform's SQL compiled
//! for it (the folder `sql/`, shared with [`sqlite`](crate::sqlite)).
//!
//! A store mounts its own SQL the same way: `store/postgres.rs` re-exports these names and
//! mounts `store/sql/` with `#[path = "sql/mod.rs"]`.

pub type Db = sqlx::Postgres;
/// The pool as SQL sees it: in a keyed request, reads run in its kept transaction
/// ([`crate::pool`]).
pub type Pool = crate::pool::Pool<sqlx::Postgres>;
pub type Tx = sqlx::Transaction<'static, Db>;
pub type Connection = sqlx::PgConnection;

/// What a `SELECT` adds to lock the rows it reads until the transaction ends.
pub const FOR_UPDATE: &str = " FOR UPDATE";

/// What a `SELECT` adds to lock a row against other writers until the transaction ends: the
/// lock an `UPDATE` of non-key columns takes. Unlike [`FOR_UPDATE`], it does not wait for the
/// key-share locks that inserting a row referencing it takes: two transactions that each
/// inserted a claim of one policy and then lock that policy would deadlock under `FOR UPDATE`,
/// and queue one after the other under this. The lock to take before changing a row.
pub const FOR_NO_KEY_UPDATE: &str = " FOR NO KEY UPDATE";

/// What a `SELECT … FOR UPDATE` adds to skip rows another transaction holds (several outbox
/// relays share the work).
pub const SKIP_LOCKED: &str = " SKIP LOCKED";

/// Writes gathered to run together ([`crate::Writes`]): on PostgreSQL one statement after
/// another, since a prepared statement holds one command; where round trips matter there, a
/// statement chains its writes in a `WITH` instead.
#[derive(Default)]
pub struct Writes {
    statements: Vec<sqlx::QueryBuilder<Db>>,
}

impl Writes {
    /// Starts the next statement with `sql`; the builder goes on with it (`push`,
    /// `push_bind`, `push_values`).
    pub fn statement(&mut self, sql: &str) -> &mut sqlx::QueryBuilder<Db> {
        let next = self.statements.len();
        self.statements.push(sqlx::QueryBuilder::new(sql));
        &mut self.statements[next]
    }

    /// Runs the statements in order; the rows they changed, in all.
    pub async fn run(self, tx: &mut Tx) -> Result<u64, sqlx::Error> {
        use sqlx::Executor;
        let mut changed = 0;
        for mut statement in self.statements {
            changed += (&mut **tx).execute(statement.build()).await?.rows_affected();
        }
        Ok(changed)
    }
}

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub use sql::*;

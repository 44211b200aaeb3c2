//! The hospital store on PostgreSQL: the SQL of `sql/` compiled for it, and what only
//! PostgreSQL does.

use medcov_store::StoreError;
use uuid::Uuid;

use crate::domain::access::AccessEntry;

pub(super) use medcov_store::postgres::{Db, Pool, Tx, Writes};

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(super) use sql::*;

/// The hospital's next patient number in a transaction of its own (one statement, so no other
/// round trip holds the row), committed without waiting for the WAL flush
/// (`synchronous_commit` off for it alone); see `store::record_number_ahead`. On the pool
/// itself, never in a keyed request's kept transaction, and before the caller opens its own:
/// a caller holding a connection while it waits for a second could exhaust the pool.
pub(super) async fn record_number_ahead(pool: &Pool, id: Uuid) -> Result<Option<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)) \
         UPDATE hospitals SET mrn_seq = mrn_seq + 1 FROM unflushed WHERE id = $1 RETURNING code, mrn_seq",
    )
    .bind(id)
    .fetch_optional(pool.inner())
    .await?)
}

/// Appends access-log entries (at most `sql::access::MANY`, at least one) in one statement on
/// the pool: a statement is atomic on its own, so they are committed together without the
/// round trips of `BEGIN` and `COMMIT`.
pub(super) async fn log_accesses_at_once(pool: &Pool, entries: &[&AccessEntry]) -> Result<(), StoreError> {
    sql::access::insert_many(entries).build().execute(pool.inner()).await?;
    Ok(())
}

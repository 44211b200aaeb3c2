//! The bus's SQL on PostgreSQL.

pub(crate) use medcov_store::postgres::{Db, FOR_UPDATE, Pool, SKIP_LOCKED, Tx, Writes};

/// Whether a `WITH` may hold an `INSERT` or `UPDATE` whose rows the statement goes on to use:
/// yes, so a saga's change and its transition's record are one statement, one round trip.
pub(crate) const WRITES_IN_WITH: bool = true;

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(crate) use sql::*;

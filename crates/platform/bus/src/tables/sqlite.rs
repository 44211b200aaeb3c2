//! The bus's SQL on SQLite.

pub(crate) use medcov_store::sqlite::{Db, FOR_UPDATE, Pool, SKIP_LOCKED, Tx, Writes};

/// Whether a `WITH` may hold an `INSERT` or `UPDATE` whose rows the statement goes on to use:
/// not on SQLite, where a saga's change and its transition's record are two statements.
pub(crate) const WRITES_IN_WITH: bool = false;

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(crate) use sql::*;

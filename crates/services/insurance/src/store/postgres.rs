//! The insurance store on PostgreSQL: the SQL of `sql/` compiled for it.

pub(super) use medcov_store::postgres::{Connection, Db, FOR_NO_KEY_UPDATE, Pool, Tx, Writes};

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(super) use sql::*;

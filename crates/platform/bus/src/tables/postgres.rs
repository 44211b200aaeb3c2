//! The bus's SQL on PostgreSQL.

pub(crate) use medcov_store::postgres::{Db, FOR_UPDATE, Pool, SKIP_LOCKED, Tx};

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(crate) use sql::*;

//! The test store on PostgreSQL.

pub use medcov_store::postgres::{FOR_UPDATE, Pool, Tx, Writes};

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub use sql::*;

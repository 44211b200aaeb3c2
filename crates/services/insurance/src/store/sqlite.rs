//! The insurance store on SQLite: the SQL of `sql/` compiled for it.

pub(super) use medcov_store::sqlite::{Connection, Pool, Tx};

/// What a `SELECT` adds to lock a row against other writers until the transaction ends:
/// nothing, since a write transaction (`BEGIN IMMEDIATE`) already holds the whole database.
pub(super) const FOR_NO_KEY_UPDATE: &str = "";

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(super) use sql::*;

//! The insurance store on PostgreSQL: the SQL of `sql/` compiled for it.

pub(super) use medcov_store::postgres::{Connection, Pool, Tx};

/// What a `SELECT` adds to lock a row against other writers until the transaction ends: the
/// lock an `UPDATE` takes. Unlike `FOR UPDATE`, it does not wait for the key-share locks that
/// inserting a row referencing it takes (a claim, a ledger entry, a plan version): two
/// transactions that each inserted a claim of one policy and then lock that policy would
/// deadlock under `FOR UPDATE`, and queue one after the other under this.
pub(super) const FOR_NO_KEY_UPDATE: &str = " FOR NO KEY UPDATE";

// The same SQL is mounted once per backend, on purpose: that is how it compiles for both.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
pub(super) use sql::*;

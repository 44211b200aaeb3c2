//! The insurance store's SQL, written once and compiled per backend (`sqlite.rs`,
//! `postgres.rs` mount this folder with their own `Pool`, `Tx`, `Connection`, `Db` and
//! `Writes`). Portable SQL only: `$1` placeholders, `CAST`, `COALESCE`; what differs is a
//! constant of the backend (`FOR_NO_KEY_UPDATE`).
//!
//! Reads take the pool, writes (and reads that must see the caller's uncommitted writes or
//! hold its locks) the caller's transaction; a read of several statements on the pool runs on
//! one connection.

#[allow(unused_imports)]
use super::{Connection, Db, FOR_NO_KEY_UPDATE, Pool, Tx, Writes};

pub(crate) mod claims;
pub(crate) mod insurers;
pub(crate) mod ledger;
pub(crate) mod links;
pub(crate) mod plans;
pub(crate) mod policies;
pub(crate) mod preauths;

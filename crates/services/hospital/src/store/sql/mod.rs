//! The hospital store's SQL, written once and compiled per backend (`sqlite.rs` and
//! `postgres.rs` mount this folder with their own `Db`, `Pool` and `Tx`). Portable SQL only:
//! `$1` placeholders, no dialect functions. Reads take the pool, writes the caller's
//! transaction.

use super::{Db, Pool, Tx, Writes};

pub(crate) mod access;
pub(crate) mod appointments;
pub(crate) mod catalog;
pub(crate) mod coverage;
pub(crate) mod encounters;
pub(crate) mod hospitals;
pub(crate) mod patients;
pub(crate) mod practitioners;
pub(crate) mod preauths;

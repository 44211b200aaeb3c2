//! The platform's SQL, written once and compiled once per backend: [`sqlite`](crate::sqlite)
//! and [`postgres`](crate::postgres) each mount this folder, and `Db`, `Pool` and `Tx` below
//! are theirs.

#[allow(unused_imports)]
use super::{Db, FOR_UPDATE, Pool, SKIP_LOCKED, Tx, Writes};

pub mod idempotency;
pub mod inbox;
pub mod outbox;

//! The auth store's SQL, written once and compiled per backend (`sqlite.rs`, `postgres.rs`
//! mount this folder with their own `Pool` and `Tx`). Portable SQL only: `$1` placeholders, no
//! dialect functions.

use super::{Pool, Tx};

pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod revocations;
pub(crate) mod sessions;
pub(crate) mod users;

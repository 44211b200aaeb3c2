//! The bus's SQL, mounted once per backend with its own `Pool` and `Tx`.

use super::{Db, FOR_UPDATE, Pool, SKIP_LOCKED, Tx, WRITES_IN_WITH, Writes};

pub(crate) mod dead_letters;
pub(crate) mod outbox;
pub(crate) mod sagas;

//! The billing store's SQL, written once and compiled per backend (`sqlite.rs`, `postgres.rs`
//! mount this folder with their own `Db`, `Pool` and `Tx`). Portable SQL only: `$1`
//! placeholders, no dialect functions; a row lock is [`FOR_NO_KEY_UPDATE`], empty on SQLite, whose
//! write transactions hold the whole database.

#[allow(unused_imports)]
use super::{Db, FOR_NO_KEY_UPDATE, Pool, Tx};

pub(crate) mod accounts;
pub(crate) mod commissions;
pub(crate) mod invoices;
pub(crate) mod journal;
pub(crate) mod payments;
pub(crate) mod premiums;
pub(crate) mod prices;
pub(crate) mod refunds;
pub(crate) mod reports;

/// Adds ` AND <column> IN (...)` for some tenants (`None`: every one; none at all: nothing).
fn in_tenants(query: &mut sqlx::QueryBuilder<Db>, column: &str, tenants: Option<&[uuid::Uuid]>) {
    match tenants {
        None => {}
        Some([]) => {
            query.push(" AND 1 = 0");
        }
        Some(list) => {
            query.push(format!(" AND {column} IN ("));
            let mut ids = query.separated(", ");
            for id in list {
                ids.push_bind(*id);
            }
            query.push(")");
        }
    }
}

//! `access_log`: append-only (triggers refuse updates and deletes).

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use uuid::Uuid;

use super::{Db, Pool, Tx, Writes};
use crate::domain::access::AccessEntry;
use crate::store::rows::AccessRow;

/// Entries appended by one statement, at most (7 parameters each, within every backend's
/// limit).
pub(crate) const MANY: usize = 1_000;

const INSERT: &str = "INSERT INTO access_log (id, at, user_id, patient_id, hospital_id, action, request_id) ";

/// One `INSERT` of `entries` (at most [`MANY`]).
pub(crate) fn insert_many(entries: &[&AccessEntry]) -> sqlx::QueryBuilder<Db> {
    let mut query = sqlx::QueryBuilder::new(INSERT);
    values(&mut query, entries);
    query
}

/// [`insert_many`] gathered in `writes`.
pub(crate) fn gather_insert(writes: &mut Writes, entries: &[&AccessEntry]) {
    values(writes.statement(INSERT), entries);
}

fn values(query: &mut sqlx::QueryBuilder<Db>, entries: &[&AccessEntry]) {
    query.push_values(entries.iter().copied(), |mut row, entry| {
        row.push_bind(entry.id)
            .push_bind(entry.at)
            .push_bind(entry.user_id)
            .push_bind(entry.patient_id)
            .push_bind(entry.hospital_id)
            .push_bind(entry.action.as_str())
            .push_bind(entry.request_id.clone());
    });
}

/// Appends `entries` in `tx`, [`MANY`] a statement.
pub(crate) async fn insert_all(tx: &mut Tx, entries: &[&AccessEntry]) -> Result<(), StoreError> {
    for chunk in entries.chunks(MANY) {
        insert_many(chunk).build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn list(
    pool: &Pool,
    hospitals: Option<&[Uuid]>,
    patient: Option<Uuid>,
    user: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AccessEntry>, StoreError> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT id, at, user_id, patient_id, hospital_id, action, request_id FROM access_log WHERE 1 = 1",
    );
    if let Some(hospitals) = hospitals {
        query.push(" AND hospital_id IN (");
        let mut list = query.separated(", ");
        for hospital in hospitals {
            list.push_bind(*hospital);
        }
        // Never an empty list: `IN ()` is not SQL.
        list.push_bind(Uuid::nil());
        query.push(")");
    }
    if let Some(patient) = patient {
        query.push(" AND patient_id = ").push_bind(patient);
    }
    if let Some(user) = user {
        query.push(" AND user_id = ").push_bind(user);
    }
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<AccessRow> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(AccessEntry::try_from).collect()
}

//! `member_links`: members linked to the hospital patients they are.

use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, Pool, Tx, Writes};

/// Links each `(member, patient, hospital)` (a link that exists stays as it is), gathered in
/// `writes` as one insert.
pub(crate) fn gather_links(writes: &mut Writes, links: &[(Uuid, Uuid, Uuid)], now: OffsetDateTime) {
    if links.is_empty() {
        return;
    }
    let insert: &mut sqlx::QueryBuilder<Db> =
        writes.statement("INSERT INTO member_links (member_id, patient_id, hospital_id, linked_at) ");
    insert.push_values(links, |mut row, (member, patient, hospital)| {
        row.push_bind(*member).push_bind(*patient).push_bind(*hospital).push_bind(now);
    });
    insert.push(" ON CONFLICT (member_id, patient_id) DO NOTHING");
}

/// Removes every link of a patient; returns how many.
pub(crate) async fn unlink_patient(tx: &mut Tx, patient: Uuid) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM member_links WHERE patient_id = $1").bind(patient).execute(&mut **tx).await?;
    Ok(done.rows_affected())
}

pub(crate) async fn members_of(pool: &Pool, patient: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT member_id FROM member_links WHERE patient_id = $1 ORDER BY member_id")
        .bind(patient)
        .fetch_all(pool)
        .await?)
}

//! `member_links`: members linked to the hospital patients they are.

use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};

pub(crate) async fn link(
    tx: &mut Tx,
    member: Uuid,
    patient: Uuid,
    hospital: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO member_links (member_id, patient_id, hospital_id, linked_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (member_id, patient_id) DO NOTHING",
    )
    .bind(member)
    .bind(patient)
    .bind(hospital)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

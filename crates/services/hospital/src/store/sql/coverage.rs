//! `patient_coverage`: the latest answer about each member number of a patient.

use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::coverage::Coverage;
use crate::store::rows::CoverageRow;

pub(crate) async fn upsert(
    tx: &mut Tx,
    patient: Uuid,
    answer: &Coverage,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO patient_coverage (patient_id, member_number, status, reason, insurer_id, policy_id, checked_on, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (patient_id, member_number) DO UPDATE SET \
         status = excluded.status, reason = excluded.reason, insurer_id = excluded.insurer_id, \
         policy_id = excluded.policy_id, checked_on = excluded.checked_on, updated_at = excluded.updated_at",
    )
    .bind(patient)
    .bind(&answer.member_number)
    .bind(&answer.status)
    .bind(&answer.reason)
    .bind(answer.insurer_id)
    .bind(answer.policy_id)
    .bind(answer.checked_on)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn of_patient(pool: &Pool, patient: Uuid) -> Result<Vec<Coverage>, StoreError> {
    let rows: Vec<CoverageRow> = sqlx::query_as(
        "SELECT member_number, status, reason, insurer_id, policy_id, checked_on FROM patient_coverage \
         WHERE patient_id = $1 ORDER BY member_number",
    )
    .bind(patient)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Coverage::from).collect())
}

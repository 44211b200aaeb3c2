//! `patient_accounts`, opened by the patient-registration saga.

use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Tx;

/// Opens the account (kept as it is when it exists) and returns when it was opened.
pub(crate) async fn open(
    tx: &mut Tx,
    patient: Uuid,
    hospital: Uuid,
    at: OffsetDateTime,
) -> Result<OffsetDateTime, StoreError> {
    sqlx::query(
        "INSERT INTO patient_accounts (patient_id, hospital_id, opened_at) VALUES ($1, $2, $3) \
         ON CONFLICT (patient_id) DO NOTHING",
    )
    .bind(patient)
    .bind(hospital)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(sqlx::query_scalar("SELECT opened_at FROM patient_accounts WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(&mut **tx)
        .await?)
}

/// Closes the account; how many there were (none if it was never opened).
pub(crate) async fn close(tx: &mut Tx, patient: Uuid) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM patient_accounts WHERE patient_id = $1").bind(patient).execute(&mut **tx).await?;
    Ok(done.rows_affected())
}

//! `patient_accounts`, opened by the patient-registration saga.

use std::collections::HashMap;

use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, Tx};

/// Accounts opened by one statement of [`open_all`] (3 parameters each, within every backend's
/// limit).
const OPENED_AT_ONCE: usize = 1_000;

/// Opens the accounts of `(patient, hospital)` (each kept as it is when it exists) and returns
/// when each patient's was opened: one insert and one read per thousand.
pub(crate) async fn open_all(
    tx: &mut Tx,
    accounts: &[(Uuid, Uuid)],
    at: OffsetDateTime,
) -> Result<HashMap<Uuid, OffsetDateTime>, StoreError> {
    let mut opened = HashMap::with_capacity(accounts.len());
    for chunk in accounts.chunks(OPENED_AT_ONCE) {
        let mut insert =
            sqlx::QueryBuilder::<Db>::new("INSERT INTO patient_accounts (patient_id, hospital_id, opened_at) ");
        insert.push_values(chunk, |mut row, (patient, hospital)| {
            row.push_bind(*patient).push_bind(*hospital).push_bind(at);
        });
        insert.push(" ON CONFLICT (patient_id) DO NOTHING");
        insert.build().execute(&mut **tx).await?;
        let mut select =
            sqlx::QueryBuilder::<Db>::new("SELECT patient_id, opened_at FROM patient_accounts WHERE patient_id IN (");
        let mut ids = select.separated(", ");
        for (patient, _) in chunk {
            ids.push_bind(*patient);
        }
        select.push(")");
        opened.extend(select.build_query_as::<(Uuid, OffsetDateTime)>().fetch_all(&mut **tx).await?);
    }
    Ok(opened)
}

/// Closes the account; how many there were (none if it was never opened).
pub(crate) async fn close(tx: &mut Tx, patient: Uuid) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM patient_accounts WHERE patient_id = $1").bind(patient).execute(&mut **tx).await?;
    Ok(done.rows_affected())
}

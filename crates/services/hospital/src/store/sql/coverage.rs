//! `patient_coverage`: the latest answer about each member number of a patient.

use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Writes};
use crate::domain::coverage::Coverage;
use crate::store::rows::CoverageRow;

/// Gathers, for each answer, its record as the latest about its member number if the patient
/// is on record (answers about one this service does not have are dropped): one statement an
/// answer.
pub(crate) fn gather_upserts(writes: &mut Writes, patient: Uuid, answers: &[Coverage], now: OffsetDateTime) {
    for answer in answers {
        let upsert = writes.statement(
            "INSERT INTO patient_coverage (patient_id, member_number, status, reason, insurer_id, policy_id, \
             checked_on, updated_at) SELECT ",
        );
        let mut values = upsert.separated(", ");
        values
            .push_bind(patient)
            .push_bind(answer.member_number.clone())
            .push_bind(answer.status.clone())
            .push_bind(answer.reason.clone())
            .push_bind(answer.insurer_id)
            .push_bind(answer.policy_id)
            .push_bind(answer.checked_on)
            .push_bind(now);
        // The WHERE also tells SQLite that ON CONFLICT belongs to the INSERT, not to a join.
        upsert.push(" WHERE EXISTS (SELECT 1 FROM patients WHERE id = ").push_bind(patient).push(
            ") ON CONFLICT (patient_id, member_number) DO UPDATE SET status = excluded.status, \
                 reason = excluded.reason, insurer_id = excluded.insurer_id, policy_id = excluded.policy_id, \
                 checked_on = excluded.checked_on, updated_at = excluded.updated_at",
        );
    }
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

//! What the insurers answered about the member numbers on patients' records.

use medcov_store::{WritePool, on_pool};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{HospitalStore, StoreError};

/// The answer about one member number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Coverage {
    pub member_number: String,
    /// `covered`, `not_covered`, `unknown` (no such member) or `invalid` (check digits).
    pub status: String,
    /// Why not, when not covered.
    pub reason: Option<String>,
    pub insurer_id: Option<Uuid>,
    pub policy_id: Option<Uuid>,
    /// The day the insurer answered for.
    #[schema(value_type = String, format = Date)]
    pub checked_on: Date,
}

impl HospitalStore {
    /// Records an insurer's answers for a patient, once per event.
    pub async fn record_coverage(&self, event: Uuid, patient: Uuid, answers: &[Coverage]) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            if !medcov_bus::record_once!(tx, "hospital.coverage", event)? {
                return Ok(());
            }
            let exists: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM patients WHERE id = $1").bind(patient).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return tx.commit().await;
            }
            for answer in answers {
                sqlx::query(
                    "INSERT INTO patient_coverage (patient_id, member_number, status, reason, insurer_id, policy_id, checked_on, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (patient_id, member_number) DO UPDATE SET \
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
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
        });
        Ok(result?)
    }

    /// The answers about a patient's member numbers.
    pub async fn coverage(&self, patient: Uuid) -> Result<Vec<Coverage>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT member_number, status, reason, insurer_id, policy_id, checked_on FROM patient_coverage \
                 WHERE patient_id = $1 ORDER BY member_number",
            )
            .bind(patient)
            .fetch_all(pool)
            .await
        })?)
    }
}

//! Members linked to the hospital patients they are, by the patient-registration saga.

use medcov_store::{WritePool, on_pool, write_outbox};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, Event, InsuranceStore, StoreError};

impl InsuranceStore {
    /// Links `patient` to each of `members` and writes `reply`, once per command (`inbox`).
    pub async fn link_members(
        &self,
        patient: Uuid,
        hospital: Uuid,
        members: &[Uuid],
        reply: &Event,
        actor: &Actor,
        inbox: (&'static str, Uuid),
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            if !medcov_bus::record_once!(tx, inbox.0, inbox.1)? {
                return Ok(());
            }
            for member in members {
                sqlx::query(
                    "INSERT INTO member_links (member_id, patient_id, hospital_id, linked_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (member_id, patient_id) DO NOTHING",
                )
                .bind(member)
                .bind(patient)
                .bind(hospital)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            write_outbox!(tx, actor, reply)?;
            tx.commit().await
        }
        .await);
        Ok(result?)
    }

    /// Removes every link of `patient` and writes the reply `reply(removed)`, once per command.
    pub async fn unlink_patient(
        &self,
        patient: Uuid,
        reply: impl Fn(u64) -> Event,
        actor: &Actor,
        inbox: (&'static str, Uuid),
    ) -> Result<(), StoreError> {
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            if !medcov_bus::record_once!(tx, inbox.0, inbox.1)? {
                return Ok(());
            }
            let removed = sqlx::query("DELETE FROM member_links WHERE patient_id = $1")
                .bind(patient)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            write_outbox!(tx, actor, reply(removed))?;
            tx.commit().await
        }
        .await);
        Ok(result?)
    }

    /// The members linked to `patient`.
    pub async fn linked_members(&self, patient: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_scalar("SELECT member_id FROM member_links WHERE patient_id = $1 ORDER BY member_id")
                .bind(patient)
                .fetch_all(pool)
                .await
        })?)
    }
}

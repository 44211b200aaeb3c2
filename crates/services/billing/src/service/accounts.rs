//! Patients' accounts: the patient-registration saga's last step opens one, and its
//! compensation closes it again; each command is handled once.

use medcov_http::ApiError;
use medcov_store::outbox::{self, Actor, Event};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, Handling};
use crate::store;

impl BillingService {
    /// Opens `patient`'s account (kept as it is when it exists) and writes the reply built
    /// from its opening time, once per command.
    pub async fn open_account(
        &self,
        patient: Uuid,
        hospital: Uuid,
        reply: impl FnOnce(OffsetDateTime) -> Event,
        actor: &Actor,
        handling: Handling,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        if !Self::first_time(&mut tx, Some(handling)).await? {
            return Ok(());
        }
        let opened = store::open_account(&mut tx, patient, hospital, OffsetDateTime::now_utc()).await?;
        outbox::write_event(&mut tx, actor, &reply(opened)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes `patient`'s account (it may never have been opened) and writes the reply built
    /// from how many were closed, once per command.
    pub async fn close_account(
        &self,
        patient: Uuid,
        reply: impl FnOnce(u64) -> Event,
        actor: &Actor,
        handling: Handling,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        if !Self::first_time(&mut tx, Some(handling)).await? {
            return Ok(());
        }
        let closed = store::close_account(&mut tx, patient).await?;
        outbox::write_event(&mut tx, actor, &reply(closed)).await?;
        tx.commit().await?;
        Ok(())
    }
}

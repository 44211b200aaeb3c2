//! Patients' accounts: the patient-registration saga's last step opens one, and its
//! compensation closes it again; each command is handled once.

use medcov_http::ApiError;
use medcov_store::Tx;
use medcov_store::outbox::{self, Actor, Event};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, Handling};
use crate::store;

impl BillingService {
    /// Opens `patient`'s account (kept as it is when it exists) and writes the reply built
    /// from its opening time, once per command, inside `tx`, a write transaction the caller
    /// commits; `false` when the command was handled before.
    pub async fn open_account_in(
        tx: &mut Tx,
        patient: Uuid,
        hospital: Uuid,
        reply: impl FnOnce(OffsetDateTime) -> Event,
        actor: &Actor,
        handling: Handling,
    ) -> Result<bool, ApiError> {
        if !Self::first_time(tx, Some(handling)).await? {
            return Ok(false);
        }
        let opened = store::open_account(tx, patient, hospital, OffsetDateTime::now_utc()).await?;
        outbox::write_event(tx, actor, &reply(opened)).await?;
        Ok(true)
    }

    /// Closes `patient`'s account (it may never have been opened) and writes the reply built
    /// from how many were closed, once per command, inside `tx`, which the caller commits;
    /// `false` when the command was handled before.
    pub async fn close_account_in(
        tx: &mut Tx,
        patient: Uuid,
        reply: impl FnOnce(u64) -> Event,
        actor: &Actor,
        handling: Handling,
    ) -> Result<bool, ApiError> {
        if !Self::first_time(tx, Some(handling)).await? {
            return Ok(false);
        }
        let closed = store::close_account(tx, patient).await?;
        outbox::write_event(tx, actor, &reply(closed)).await?;
        Ok(true)
    }
}

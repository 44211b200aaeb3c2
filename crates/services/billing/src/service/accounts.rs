//! Patients' accounts: the patient-registration saga's last step opens one, and its
//! compensation closes it again; each command is handled once.

use medcov_http::ApiError;
use medcov_store::Tx;
use medcov_store::outbox::{self, Actor, Event};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, Handling};
use crate::store;

/// One `open_account` command of a run ([`BillingService::open_accounts_in`]).
pub struct Opening<'c> {
    /// The event that carried it (recorded in the inbox).
    pub event: Uuid,
    pub patient: Uuid,
    pub hospital: Uuid,
    pub actor: Actor,
    /// Its reply, from the account's opening time.
    pub reply: Box<dyn Fn(OffsetDateTime) -> Event + Send + Sync + 'c>,
}

impl BillingService {
    /// Opens the account of each command of a run (kept as it is when it exists) and writes
    /// its reply, built from the account's opening time, each once (the inbox of `consumer`;
    /// an event twice in the run is handled at its first), inside `tx`, a write transaction the
    /// caller commits: four statements for the whole run (the inbox, the accounts, their
    /// times, the replies together). How many were handled now.
    pub async fn open_accounts_in(tx: &mut Tx, consumer: &str, run: &[Opening<'_>]) -> Result<usize, ApiError> {
        let events: Vec<Uuid> = run.iter().map(|opening| opening.event).collect();
        let mut first = medcov_store::inbox::record_all(tx, consumer, &events).await?;
        let now: Vec<&Opening> = run.iter().filter(|opening| first.remove(&opening.event)).collect();
        if now.is_empty() {
            return Ok(0);
        }
        let accounts: Vec<(Uuid, Uuid)> = now.iter().map(|opening| (opening.patient, opening.hospital)).collect();
        let opened = store::open_accounts(tx, &accounts, OffsetDateTime::now_utc()).await?;
        let mut writes = tx.writes();
        for opening in &now {
            let at = opened.get(&opening.patient).copied().ok_or_else(|| {
                ApiError::internal(format!("the account of patient {} was opened and not found", opening.patient))
            })?;
            outbox::gather_event(&mut writes, &opening.actor, &(opening.reply)(at));
        }
        writes.run(tx).await?;
        Ok(now.len())
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

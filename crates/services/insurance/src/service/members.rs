//! Member numbers: the lookup (cached), what the insurer says of a number a hospital holds
//! for a patient, and the links between members and the patients they are (the hospital's
//! patient-registration saga verifies and links, and unlinks when it compensates).

use medcov_bus::orchestrator::Command;
use medcov_http::ApiError;
use medcov_store::outbox::{self, Actor};
use medcov_store::{StoreError, Tx, inbox};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::policy::member_number_valid;
use crate::domain::verification::{self, Verification};
use crate::events::MemberVerified;
use crate::store;

/// The type of this service's replies to sagas.
const REPLY: &str = "insurance.saga_reply.v1";

/// The inbox of the registration saga's commands.
const SAGA_INBOX: &str = "insurance.saga";

/// One `verify_and_link` command of a run ([`InsuranceService::verify_and_link_all_in`]).
pub struct Verifying<'c> {
    /// The event that carried it (recorded in the inbox).
    pub event: Uuid,
    pub command: &'c Command,
    pub record: &'c PatientMembers,
    pub actor: &'c Actor,
}

/// A patient and the member numbers the hospital holds for them.
#[derive(Debug, Clone)]
pub struct PatientMembers {
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    pub member_numbers: Vec<String>,
}

impl PatientMembers {
    fn numbers(&self) -> Vec<&str> {
        self.member_numbers.iter().map(|n| n.trim()).collect()
    }
}

impl InsuranceService {
    /// The member with this number. Numbers never change, so a found member is cached for
    /// good (a miss is not cached: the number may be issued later).
    pub async fn member_id(&self, member_number: &str) -> Result<Option<Uuid>, ApiError> {
        let key = format!("insurance:member-number:{member_number}");
        let found = medcov_cache::read_through(self.cache(), &key, &[], std::time::Duration::from_secs(3600), async {
            let id = store::member_by_number(&self.db, member_number).await.map_err(Some)?;
            id.map(|i| medcov_cache::Bytes::from(i.to_string())).ok_or(None::<StoreError>)
        })
        .await;
        match found {
            Ok(bytes) => Ok(std::str::from_utf8(&bytes).ok().and_then(|s| Uuid::parse_str(s).ok())),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e.into()),
        }
    }

    /// What the insurer says of each member number today: each on its insurer's local day (its
    /// `checked_on`); the first number's day is the answer's day (UTC's without numbers).
    pub async fn verify_members(&self, numbers: &[&str]) -> Result<(Date, Vec<Verification>), ApiError> {
        let now = time::OffsetDateTime::now_utc();
        let mut answers = Vec::with_capacity(numbers.len());
        for number in numbers {
            // Insurers' time zones never change: kept in process after the first read.
            let today = verification::insurer_day(self.zone_for_member(number).await?.as_deref(), now);
            let coverage = if member_number_valid(number) { self.coverage(number, today).await? } else { None };
            answers.push(verification::verify(number, coverage.as_ref(), today));
        }
        let day = answers.first().map_or_else(|| medcov_domain::calendar::local_date_in(now, "UTC"), |a| a.checked_on);
        Ok((day, answers))
    }

    /// A patient's member numbers changed at the hospital: `member_verified` answers for each
    /// (once per event).
    pub async fn patient_updated(&self, record: &PatientMembers, event: Uuid, actor: &Actor) -> Result<(), ApiError> {
        let (today, members) = self.verify_members(&record.numbers()).await?;
        if members.is_empty() {
            return Ok(());
        }
        let verified = MemberVerified {
            patient_id: record.patient_id,
            hospital_id: record.hospital_id,
            checked_on: today.to_string(),
            members,
        };
        self.emit(&verified, actor, Some(("insurance.patients", event))).await
    }

    /// The registration saga's `verify_and_link`: verifies the patient's member numbers and
    /// links the covered members to the patient, failing when none is covered; once per
    /// command.
    pub async fn verify_and_link(
        &self,
        command: &Command,
        record: &PatientMembers,
        event: Uuid,
        actor: &Actor,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        if self.verify_and_link_in(&mut tx, command, record, event, actor).await? {
            tx.commit().await?;
        }
        Ok(())
    }

    /// [`InsuranceService::verify_and_link`] inside `tx`, a write transaction the caller
    /// commits (a consumer's batch); `false` when the command was handled before.
    pub async fn verify_and_link_in(
        &self,
        tx: &mut Tx,
        command: &Command,
        record: &PatientMembers,
        event: Uuid,
        actor: &Actor,
    ) -> Result<bool, ApiError> {
        let run = [Verifying { event, command, record, actor }];
        Ok(self.verify_and_link_all_in(tx, &run).await? == 1)
    }

    /// [`InsuranceService::verify_and_link`] for a run of commands inside `tx`, which the
    /// caller commits, each once (an event twice in the run is handled at its first): the
    /// inbox in one statement, then every link and reply together. How many were handled now.
    pub async fn verify_and_link_all_in(&self, tx: &mut Tx, run: &[Verifying<'_>]) -> Result<usize, ApiError> {
        let events: Vec<Uuid> = run.iter().map(|verifying| verifying.event).collect();
        let mut first = inbox::record_all(tx, SAGA_INBOX, &events).await?;
        let now = OffsetDateTime::now_utc();
        let mut links = Vec::new();
        let mut replies = Vec::new();
        for Verifying { command, record, actor, .. } in run.iter().filter(|verifying| first.remove(&verifying.event)) {
            let (today, members) = self.verify_members(&record.numbers()).await?;
            let covered = verification::covered(&members);
            let reason = verification::none_covered(&members);
            links.extend(covered.iter().map(|member| (*member, record.patient_id, record.hospital_id)));
            let verified = MemberVerified {
                patient_id: record.patient_id,
                hospital_id: record.hospital_id,
                checked_on: today.to_string(),
                members,
            };
            let data = serde_json::to_value(&verified).map_err(ApiError::internal)?;
            replies.push((*actor, command.reply(REPLY, record.hospital_id, !covered.is_empty(), reason, data)));
        }
        if replies.is_empty() {
            return Ok(0);
        }
        let mut writes = tx.writes();
        store::gather_links(&mut writes, &links, now);
        for (actor, reply) in &replies {
            outbox::gather_event(&mut writes, actor, reply);
        }
        writes.run(tx).await?;
        Ok(replies.len())
    }

    /// The registration saga's compensation `unlink`: removes every link of the patient and
    /// says how many; once per command.
    pub async fn unlink_patient(
        &self,
        command: &Command,
        record: &PatientMembers,
        event: Uuid,
        actor: &Actor,
    ) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        if self.unlink_patient_in(&mut tx, command, record, event, actor).await? {
            tx.commit().await?;
        }
        Ok(())
    }

    /// [`InsuranceService::unlink_patient`] inside `tx`, which the caller commits; `false`
    /// when the command was handled before.
    pub async fn unlink_patient_in(
        &self,
        tx: &mut Tx,
        command: &Command,
        record: &PatientMembers,
        event: Uuid,
        actor: &Actor,
    ) -> Result<bool, ApiError> {
        if !inbox::record_once(tx, SAGA_INBOX, event).await? {
            return Ok(false);
        }
        let removed = store::unlink_patient(tx, record.patient_id).await?;
        let data = serde_json::json!({"patient_id": record.patient_id, "unlinked": removed});
        let reply = command.reply(REPLY, record.hospital_id, true, None, data);
        outbox::write_event(tx, actor, &reply).await?;
        Ok(true)
    }

    /// The members linked to a patient.
    pub async fn linked_members(&self, patient: Uuid) -> Result<Vec<Uuid>, ApiError> {
        Ok(store::linked_members(&self.db, patient).await?)
    }
}

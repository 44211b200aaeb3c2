//! The registration saga's moves (replies from insurance and billing, deadlines) and what the
//! insurers answered about patients' member numbers. The saga itself starts in
//! [`HospitalService::register_patient`]'s transaction.

use medcov_bus::Envelope;
use medcov_bus::orchestrator::{self, Handled};
use medcov_bus::saga::{self, Saga, SagaState};
use medcov_store::outbox::Actor;
use medcov_store::{StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

use super::HospitalService;
use crate::domain::coverage::Coverage;
use crate::domain::preauth::Approval;
use crate::store;

/// The inbox consumer of the registration saga's replies.
const SAGA_REPLIES: &str = "hospital.sagas";
/// The inbox consumer of the insurers' answers about coverage.
const COVERAGE_ANSWERS: &str = "hospital.coverage";

impl HospitalService {
    /// Records an insurer's answers about a patient's member numbers, once per event
    /// (`event`); answers about a patient this service does not have are dropped.
    pub async fn record_coverage(&self, event: Uuid, patient: Uuid, answers: &[Coverage]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        if Self::record_coverages_in(&mut tx, &[(event, patient, answers)]).await? == 1 {
            tx.commit().await?;
        }
        Ok(())
    }

    /// [`HospitalService::record_coverage`] for many events at once, inside `tx`, a write
    /// transaction the caller commits (a consumer's batch), each with its patient and answers:
    /// their inbox records in one statement and the answers written together. How many events
    /// were new (the others were recorded before).
    pub async fn record_coverages_in(tx: &mut Tx, events: &[(Uuid, Uuid, &[Coverage])]) -> Result<usize, StoreError> {
        let now = OffsetDateTime::now_utc();
        let ids: Vec<Uuid> = events.iter().map(|(event, _, _)| *event).collect();
        let mut fresh = medcov_store::inbox::record_all(tx, COVERAGE_ANSWERS, &ids).await?;
        let mut writes = tx.writes();
        let mut recorded = 0;
        for (event, patient, answers) in events {
            if fresh.remove(event) {
                store::gather_coverage(&mut writes, *patient, answers, now);
                recorded += 1;
            }
        }
        writes.run(tx).await?;
        Ok(recorded)
    }

    /// An insurer decided a pre-authorisation: what it grants for care here replaces what was
    /// known of it (none for a denial).
    pub async fn preauth_decided(&self, preauth: Uuid, approvals: &[Approval]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        store::replace_approvals(&mut tx, preauth, approvals).await?;
        tx.commit().await
    }

    /// Moves the registration saga on with a reply (once per reply).
    pub async fn registration_reply(&self, envelope: &Envelope, actor: &Actor) -> Result<Handled, StoreError> {
        orchestrator::on_reply(&self.db, &self.registration, SAGA_REPLIES, envelope, actor).await
    }

    /// [`HospitalService::registration_reply`] for a run of replies at once, inside `tx`, which
    /// the caller commits, each with its actor and span (see [`orchestrator::on_replies_in`]):
    /// what it returns holds once `tx` is committed.
    pub async fn registration_replies_in(
        &self,
        tx: &mut Tx,
        replies: &[(&Envelope, &Actor, &tracing::Span)],
    ) -> Result<Vec<Handled>, StoreError> {
        orchestrator::on_replies_in(tx, &self.registration, SAGA_REPLIES, replies).await
    }

    /// Moves the registration sagas past their deadline on; returns those that ended
    /// compensated, with the reason.
    pub async fn registration_deadlines(&self, actor: &Actor) -> Result<Vec<(Saga, String)>, StoreError> {
        orchestrator::tick(&self.db, &self.registration, actor).await
    }

    /// How many sagas this service orchestrates are in each state; fed to the admission
    /// control of new registrations, too.
    pub async fn saga_counts(&self) -> Result<Vec<(SagaState, i64)>, StoreError> {
        let counts = saga::counts(&self.db).await?;
        let of = |states: &[SagaState]| -> u64 {
            counts.iter().filter(|(s, _)| states.contains(s)).map(|(_, n)| u64::try_from(*n).unwrap_or(0)).sum()
        };
        self.admission.observe(
            of(&[SagaState::Running, SagaState::Compensating]),
            of(&[SagaState::Completed, SagaState::Compensated]),
            std::time::Instant::now(),
        );
        Ok(counts)
    }

    /// A registration saga ended here (completed or compensated): its place in the admission
    /// control is free before the next count.
    pub fn registration_ended(&self) {
        self.admission.ended(1);
    }

    /// Registrations written by group commit since start: (batches, registrations in them).
    pub fn registrations_written(&self) -> (u64, u64) {
        self.registrar.written()
    }

    /// Registrations refused since start because the sagas in flight were too many.
    pub fn sagas_refused(&self) -> u64 {
        self.admission.refused()
    }
}

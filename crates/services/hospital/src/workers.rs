//! The consumers of the hospital service, each one call to the service layer per event:
//!
//! - [`Insurance`] (group `hospital` on `insurance`): `member_verified` records what the insurer
//!   answered about each member number of a patient (covered, or why not), for the desk; and
//!   the insurer's replies to the registration saga (whose verification answers are recorded
//!   the same way).
//! - [`Billing`] (group `hospital` on `billing`): billing's replies to the registration saga.
//!
//! Each event is recorded in the inbox with its effect.

use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_bus::Envelope;
use medcov_bus::consumer::{AfterCommit, Handler};
use medcov_bus::orchestrator::{Handled, Reply};
use medcov_store::Tx;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::coverage::Coverage;
use crate::domain::preauth;
use crate::service::HospitalService;

/// `insurance.member_verified.v1`, and the data of insurance's reply to `verify_and_link`.
#[derive(Deserialize)]
struct MemberVerified {
    patient_id: Uuid,
    checked_on: time::Date,
    members: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    member_number: String,
    status: String,
    reason: Option<String>,
    insurer_id: Option<Uuid>,
    policy_id: Option<Uuid>,
    /// The insurer's day it was answered for (absent from older events: the event's).
    #[serde(default)]
    checked_on: Option<time::Date>,
}

impl MemberVerified {
    fn answers(self) -> (Uuid, Vec<Coverage>) {
        let checked_on = self.checked_on;
        let answers = self
            .members
            .into_iter()
            .map(|a| Coverage {
                member_number: a.member_number,
                status: a.status,
                reason: a.reason,
                insurer_id: a.insurer_id,
                policy_id: a.policy_id,
                checked_on: a.checked_on.unwrap_or(checked_on),
            })
            .collect();
        (self.patient_id, answers)
    }
}

/// `insurance.preauth_decided.v1`: what a pre-authorisation grants for care here.
#[derive(Deserialize)]
struct PreauthDecided {
    preauth_id: Uuid,
    hospital_id: Uuid,
    /// Absent from events written before it was added: nothing is granted then.
    #[serde(default)]
    member_number: String,
    valid_until: Option<time::Date>,
    #[serde(default)]
    services: Vec<String>,
}

pub struct Insurance(pub Arc<HospitalService>);

impl Handler for Insurance {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if envelope.event_type == "insurance.saga_reply.v1" {
                return reply(&self.0, envelope).await;
            }
            if envelope.event_type == "insurance.preauth_decided.v1" {
                let event: PreauthDecided = serde_json::from_value(envelope.payload.clone())
                    .map_err(|e| format!("a preauth_decided payload this service cannot read: {e}"))?;
                let approvals = preauth::granted(
                    event.preauth_id,
                    event.hospital_id,
                    &event.member_number,
                    &event.services,
                    event.valid_until,
                );
                return self.0.preauth_decided(event.preauth_id, &approvals).await.map_err(|e| e.to_string());
            }
            if envelope.event_type != "insurance.member_verified.v1" {
                return Ok(());
            }
            let event: MemberVerified = serde_json::from_value(envelope.payload.clone())
                .map_err(|e| format!("a member_verified payload this service cannot read: {e}"))?;
            record(&self.0, envelope.id, event).await
        })
    }

    fn database(&self) -> Option<&medcov_store::Database> {
        Some(self.0.database())
    }

    fn ignores(&self, envelope: &Envelope) -> bool {
        !matches!(
            envelope.event_type.as_str(),
            "insurance.saga_reply.v1" | "insurance.preauth_decided.v1" | "insurance.member_verified.v1"
        )
    }

    fn batches(&self, envelope: &Envelope) -> bool {
        envelope.event_type == "insurance.saga_reply.v1"
    }

    fn handle_in<'a>(&'a self, tx: &'a mut Tx, envelope: &'a Envelope) -> BoxFuture<'a, Result<AfterCommit, String>> {
        Box::pin(reply_in(&self.0, tx, envelope))
    }

    /// Saga replies, a stretch at once ([`replies_in`]).
    fn handles_together(&self, envelope: &Envelope) -> bool {
        envelope.event_type == "insurance.saga_reply.v1"
    }

    fn handle_together_in<'a>(
        &'a self,
        tx: &'a mut Tx,
        stretch: &'a [(&'a Envelope, &'a tracing::Span)],
    ) -> BoxFuture<'a, Result<Vec<AfterCommit>, String>> {
        Box::pin(replies_in(&self.0, tx, stretch))
    }
}

pub struct Billing(pub Arc<HospitalService>);

impl Handler for Billing {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if envelope.event_type == "billing.saga_reply.v1" {
                return reply(&self.0, envelope).await;
            }
            Ok(())
        })
    }

    fn database(&self) -> Option<&medcov_store::Database> {
        Some(self.0.database())
    }

    fn ignores(&self, envelope: &Envelope) -> bool {
        envelope.event_type != "billing.saga_reply.v1"
    }

    fn batches(&self, envelope: &Envelope) -> bool {
        envelope.event_type == "billing.saga_reply.v1"
    }

    fn handle_in<'a>(&'a self, tx: &'a mut Tx, envelope: &'a Envelope) -> BoxFuture<'a, Result<AfterCommit, String>> {
        Box::pin(reply_in(&self.0, tx, envelope))
    }

    /// Saga replies, a stretch at once ([`replies_in`]).
    fn handles_together(&self, envelope: &Envelope) -> bool {
        envelope.event_type == "billing.saga_reply.v1"
    }

    fn handle_together_in<'a>(
        &'a self,
        tx: &'a mut Tx,
        stretch: &'a [(&'a Envelope, &'a tracing::Span)],
    ) -> BoxFuture<'a, Result<Vec<AfterCommit>, String>> {
        Box::pin(replies_in(&self.0, tx, stretch))
    }
}

/// [`reply`] inside a consumer's batch transaction (the events of a run each in a part of
/// their own): the run of one, as [`replies_in`] handles it.
async fn reply_in(service: &Arc<HospitalService>, tx: &mut Tx, envelope: &Envelope) -> Result<AfterCommit, String> {
    let span = tracing::Span::current();
    let mut after = replies_in(service, tx, &[(envelope, &span)]).await?;
    after.pop().ok_or_else(|| "a saga reply handled without an outcome".to_owned())
}

/// Saga replies inside a consumer's batch transaction, a run at once: the sagas' moves
/// set-based ([`HospitalService::registration_replies_in`]) and the insurers' answers about
/// member numbers recorded together; a saga's end is counted and logged once they are
/// committed.
async fn replies_in(
    service: &Arc<HospitalService>,
    tx: &mut Tx,
    run: &[(&Envelope, &tracing::Span)],
) -> Result<Vec<AfterCommit>, String> {
    let mut replies = Vec::with_capacity(run.len());
    for (envelope, _) in run {
        let reply: Reply =
            serde_json::from_value(envelope.payload.clone()).map_err(|e| format!("an unreadable saga reply: {e}"))?;
        replies.push(reply);
    }
    let actors: Vec<_> = run.iter().map(|(envelope, _)| medcov_runtime::event_actor(envelope)).collect();
    let moves: Vec<_> = run.iter().zip(&actors).map(|((envelope, span), actor)| (*envelope, actor, *span)).collect();
    let handled = service.registration_replies_in(tx, &moves).await.map_err(|e| e.to_string())?;
    let answers: Vec<(Uuid, Uuid, Vec<Coverage>)> = run
        .iter()
        .zip(replies)
        .filter(|(_, reply)| reply.command == "verify_and_link")
        .filter_map(|((envelope, _), reply)| {
            let (patient, answers) = serde_json::from_value::<MemberVerified>(reply.data).ok()?.answers();
            Some((envelope.id, patient, answers))
        })
        .collect();
    let answers: Vec<(Uuid, Uuid, &[Coverage])> =
        answers.iter().map(|(event, patient, answers)| (*event, *patient, answers.as_slice())).collect();
    HospitalService::record_coverages_in(tx, &answers).await.map_err(|e| e.to_string())?;
    Ok(handled
        .into_iter()
        .map(|handled| {
            let service = service.clone();
            AfterCommit::then(move || ended(&service, &handled))
        })
        .collect())
}

/// A saga's end: its place in the admission control is freed, and it is logged (its reason
/// stays in the saga, `GET /sagas/{id}`, out of the log).
fn ended(service: &HospitalService, handled: &Handled) {
    match handled {
        Handled::Completed(saga) => {
            service.registration_ended();
            tracing::debug!(saga = %saga.id, "patient registration saga completed");
        }
        Handled::Compensated { saga, .. } => {
            service.registration_ended();
            tracing::info!(saga = %saga.id, "patient registration saga compensated");
        }
        _ => {}
    }
}

/// A reply to the registration saga: the saga moves on (once per reply), and the insurer's
/// answers about the member numbers are recorded for the desk, whatever the outcome.
async fn reply(service: &HospitalService, envelope: &Envelope) -> Result<(), String> {
    let actor = medcov_runtime::event_actor(envelope);
    let handled = service.registration_reply(envelope, &actor).await.map_err(|e| e.to_string())?;
    ended(service, &handled);
    let reply: Reply =
        serde_json::from_value(envelope.payload.clone()).map_err(|e| format!("an unreadable saga reply: {e}"))?;
    if reply.command == "verify_and_link"
        && let Ok(answers) = serde_json::from_value::<MemberVerified>(reply.data)
    {
        record(service, envelope.id, answers).await?;
    }
    Ok(())
}

async fn record(service: &HospitalService, event_id: Uuid, event: MemberVerified) -> Result<(), String> {
    let (patient, answers) = event.answers();
    service.record_coverage(event_id, patient, &answers).await.map_err(|e| e.to_string())
}

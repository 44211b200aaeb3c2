//! The consumers of the billing service, each a handler of one stream's events (the consumer
//! runtime of `medcov-bus` runs the loop, reclaims and dead-letters):
//!
//! - [`Encounters`] (group `billing` on `hospital`): `encounter_completed` drafts the
//!   encounter's invoice, priced from the price list valid on the date of service; the
//!   patient-registration saga's `open_account` command opens the patient's account, and
//!   `close_account` closes it.
//! - [`Insurance`] (group `billing` on `insurance`): `claim_adjudicated` for an invoice of ours
//!   (the claim's reference is the invoice number) splits its lines into insurer and patient
//!   shares; `policy_created` invoices the premium; `policy_cancelled` voids an unpaid premium
//!   and claws back a recent commission.
//!
//! Each reads the event and hands it to the service layer, which records it in the inbox in the
//! same transaction as its effect: a repeated delivery drafts no second invoice and moves no
//! share twice.

use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_bus::Envelope;
use medcov_bus::consumer::{AfterCommit, Handler};
use medcov_bus::orchestrator::Command;
use medcov_store::Tx;
use serde::Deserialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::invoice::{Adjudicated, LineAdjustment};
use crate::domain::prices::Service;
use crate::service::tenants::Profile;
use crate::service::{Adjudication, BillingService, Encounter, Handling, PolicyCreated};

use medcov_runtime::event_actor as actor;

#[derive(Deserialize)]
struct EncounterService {
    code: String,
    category: Option<String>,
    description: Option<String>,
    quantity: u32,
    #[serde(default)]
    preauth_id: Option<Uuid>,
}

#[derive(Deserialize)]
struct MemberNumber {
    member_number: String,
}

#[derive(Deserialize)]
struct Diagnosis {
    code: String,
    #[serde(default)]
    primary: bool,
}

#[derive(Deserialize)]
struct EncounterCompleted {
    encounter_id: Uuid,
    hospital_id: Uuid,
    patient_id: Uuid,
    date_of_service: Date,
    /// The hospital's currency and time zone (events written before they were carried have
    /// neither).
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    visit_type: Option<String>,
    #[serde(default)]
    diagnoses: Vec<Diagnosis>,
    #[serde(default)]
    member_numbers: Vec<MemberNumber>,
    services: Vec<EncounterService>,
}

pub struct Encounters(pub Arc<BillingService>);

/// The patient-registration saga's last step, one command in its own transaction (see
/// [`account_in`]).
async fn open_account(service: &BillingService, envelope: &Envelope, command: &Command) -> Result<(), String> {
    let mut tx = service.database().begin_write().await.map_err(|e| e.to_string())?;
    account_in(&mut tx, envelope, command).await?;
    tx.commit().await.map_err(|e| e.to_string())
}

impl Handler for Encounters {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(command) = Command::addressed(envelope, "billing") {
                return open_account(&self.0, envelope, &command).await;
            }
            if envelope.event_type != "hospital.encounter_completed.v1" {
                return Ok(());
            }
            let event: EncounterCompleted = serde_json::from_value(envelope.payload.clone())
                .map_err(|e| format!("an encounter_completed payload this service cannot read: {e}"))?;
            let diagnosis =
                event.diagnoses.iter().find(|d| d.primary).or(event.diagnoses.first()).map(|d| d.code.clone());
            if let (Some(currency), Some(timezone)) = (&event.currency, &event.timezone) {
                let profile = Profile { currency: currency.clone(), timezone: timezone.clone() };
                self.0.tenants.learn(event.hospital_id, profile);
            }
            let encounter = Encounter {
                encounter_id: event.encounter_id,
                hospital_id: event.hospital_id,
                currency: event.currency,
                patient_id: event.patient_id,
                date_of_service: event.date_of_service,
                visit_type: event.visit_type,
                diagnosis,
                member_number: event.member_numbers.into_iter().next().map(|m| m.member_number),
                services: event
                    .services
                    .into_iter()
                    .map(|s| Service {
                        code: s.code,
                        quantity: s.quantity,
                        category: s.category,
                        description: s.description,
                        preauth_id: s.preauth_id,
                    })
                    .collect(),
            };
            let handling = Handling { consumer: "billing.encounters", event: envelope.id };
            self.0
                .draft_from_encounter(encounter, &actor(envelope), handling)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn database(&self) -> Option<&medcov_store::Database> {
        Some(self.0.database())
    }

    fn ignores(&self, envelope: &Envelope) -> bool {
        envelope.event_type != "hospital.encounter_completed.v1" && !Command::is_for(envelope, "billing")
    }

    fn batches(&self, envelope: &Envelope) -> bool {
        Command::is_for(envelope, "billing")
    }

    fn handle_in<'a>(&'a self, tx: &'a mut Tx, envelope: &'a Envelope) -> BoxFuture<'a, Result<AfterCommit, String>> {
        Box::pin(async move {
            let Some(command) = Command::addressed(envelope, "billing") else { return Ok(AfterCommit::nothing()) };
            account_in(tx, envelope, &command).await.map(|()| AfterCommit::nothing())
        })
    }
}

/// The patient-registration saga's last step inside `tx` (its own, or a consumer's batch): the
/// patient's account is opened, or closed again when the saga is compensated (each once).
async fn account_in(tx: &mut Tx, envelope: &Envelope, command: &Command) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Input {
        patient_id: Uuid,
        hospital_id: Uuid,
    }
    let input: Input = serde_json::from_value(command.data["input"].clone())
        .map_err(|e| format!("a registration saga command this service cannot read: {e}"))?;
    let handling = Handling { consumer: "billing.saga", event: envelope.id };
    match command.command.as_str() {
        "open_account" => {
            let reply = |opened_at: OffsetDateTime| {
                let data = serde_json::json!({"patient_id": input.patient_id, "opened_at": opened_at.to_string()});
                command.reply("billing.saga_reply.v1", input.hospital_id, true, None, data)
            };
            BillingService::open_account_in(tx, input.patient_id, input.hospital_id, reply, &actor(envelope), handling)
                .await
        }
        "close_account" => {
            let reply = |closed: u64| {
                let data = serde_json::json!({"patient_id": input.patient_id, "closed": closed});
                command.reply("billing.saga_reply.v1", input.hospital_id, true, None, data)
            };
            BillingService::close_account_in(tx, input.patient_id, reply, &actor(envelope), handling).await
        }
        other => return Err(format!("the registration saga asked billing for `{other}`, which it does not do")),
    }
    .map(drop)
    .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct ClaimLine {
    insurer_pays: i64,
    #[serde(default)]
    ex_gratia: i64,
    #[serde(default)]
    adjustments: Vec<LineAdjustment>,
}

#[derive(Deserialize)]
struct ClaimAdjudicated {
    claim_id: Uuid,
    insurer_id: Uuid,
    hospital_id: Uuid,
    reference: String,
    lines: Vec<ClaimLine>,
}

#[derive(Deserialize)]
struct Money {
    minor: i64,
    currency: String,
}

#[derive(Deserialize)]
struct PolicyCreatedEvent {
    policy_id: Uuid,
    insurer_id: Uuid,
    plan_id: Uuid,
    holder_id: Uuid,
    agent_id: Option<Uuid>,
    premium: Money,
    /// The insurer's IANA time zone (absent from events written before it was added).
    #[serde(default)]
    insurer_timezone: Option<String>,
}

#[derive(Deserialize)]
struct PolicyCancelled {
    policy_id: Uuid,
    reason: Option<String>,
}

pub struct Insurance(pub Arc<BillingService>);

fn read<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, String> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| format!("a {} payload this service cannot read: {e}", envelope.event_type))
}

/// The inbox entry of `envelope` for `consumer`.
fn handling(consumer: &'static str, envelope: &Envelope) -> Handling {
    Handling { consumer, event: envelope.id }
}

impl Handler for Insurance {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let service = &self.0;
            let actor = actor(envelope);
            let done = match envelope.event_type.as_str() {
                "insurance.claim_adjudicated.v1" => {
                    let event: ClaimAdjudicated = read(envelope)?;
                    let adjudication = Adjudication {
                        claim_id: event.claim_id,
                        insurer_id: event.insurer_id,
                        hospital_id: event.hospital_id,
                        reference: event.reference,
                        lines: event
                            .lines
                            .into_iter()
                            .map(|l| Adjudicated {
                                insurer_pays: l.insurer_pays,
                                ex_gratia: l.ex_gratia,
                                adjustments: l.adjustments,
                            })
                            .collect(),
                    };
                    service.claim_adjudicated(adjudication, &actor, handling("billing.claims", envelope)).await
                }
                "insurance.claim_refused.v1" => {
                    let event: ClaimRefused = read(envelope)?;
                    service.claim_refused(event.hospital_id, &event.reference, &actor).await
                }
                "insurance.policy_created.v1" => {
                    let event: PolicyCreatedEvent = read(envelope)?;
                    let policy = PolicyCreated {
                        policy_id: event.policy_id,
                        insurer_id: event.insurer_id,
                        plan_id: event.plan_id,
                        holder_id: event.holder_id,
                        agent_id: event.agent_id,
                        amount: event.premium.minor,
                        currency: event.premium.currency,
                        insurer_timezone: event.insurer_timezone,
                    };
                    service.invoice_premium(policy, &actor, handling("billing.policies", envelope)).await
                }
                "insurance.policy_cancelled.v1" => {
                    let event: PolicyCancelled = read(envelope)?;
                    let reason = event.reason.unwrap_or_else(|| "policy cancelled".into());
                    service
                        .policy_cancelled(event.policy_id, &reason, &actor, handling("billing.policies", envelope))
                        .await
                }
                _ => Ok(()),
            };
            done.map_err(|e| e.to_string())
        })
    }
}

#[derive(Deserialize)]
struct ClaimRefused {
    hospital_id: Uuid,
    reference: String,
}

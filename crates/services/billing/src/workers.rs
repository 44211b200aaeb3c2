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
//! Each records the event in its inbox in the same transaction as its effect: a repeated
//! delivery drafts no second invoice and moves no share twice.

use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_bus::Envelope;
use medcov_bus::consumer::Handler;
use serde::Deserialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::invoice::{Adjudicated, Status};
use crate::store::{BillingStore, Draft, Invoice};

use medcov_runtime::event_actor as actor;

#[derive(Deserialize)]
struct EncounterService {
    code: String,
    category: Option<String>,
    description: Option<String>,
    quantity: u32,
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
    #[serde(default)]
    visit_type: Option<String>,
    #[serde(default)]
    diagnoses: Vec<Diagnosis>,
    #[serde(default)]
    member_numbers: Vec<MemberNumber>,
    services: Vec<EncounterService>,
}

pub struct Encounters(pub Arc<BillingStore>);

/// The patient-registration saga's last step: the patient's account is opened, or closed
/// again when the saga is compensated (each once).
async fn open_account(
    store: &BillingStore,
    envelope: &Envelope,
    command: &medcov_bus::orchestrator::Command,
) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Input {
        patient_id: Uuid,
        hospital_id: Uuid,
    }
    let input: Input = serde_json::from_value(command.data["input"].clone())
        .map_err(|e| format!("a registration saga command this service cannot read: {e}"))?;
    let inbox = ("billing.saga", envelope.id);
    match command.command.as_str() {
        "open_account" => {
            let reply = |opened_at: OffsetDateTime| {
                let data = serde_json::json!({"patient_id": input.patient_id, "opened_at": opened_at.to_string()});
                command.reply("billing.saga_reply.v1", input.hospital_id, true, None, data)
            };
            store.open_account(input.patient_id, input.hospital_id, reply, &actor(envelope), inbox).await
        }
        "close_account" => {
            let reply = |closed: u64| {
                let data = serde_json::json!({"patient_id": input.patient_id, "closed": closed});
                command.reply("billing.saga_reply.v1", input.hospital_id, true, None, data)
            };
            store.close_account(input.patient_id, reply, &actor(envelope), inbox).await
        }
        other => return Err(format!("the registration saga asked billing for `{other}`, which it does not do")),
    }
    .map_err(|e| e.to_string())
}

impl Handler for Encounters {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(command) = medcov_bus::orchestrator::Command::addressed(envelope, "billing") {
                return open_account(&self.0, envelope, &command).await;
            }
            if envelope.event_type != "hospital.encounter_completed.v1" {
                return Ok(());
            }
            let event: EncounterCompleted = serde_json::from_value(envelope.payload.clone())
                .map_err(|e| format!("an encounter_completed payload this service cannot read: {e}"))?;
            let services: Vec<(String, u32, Option<String>, Option<String>)> =
                event.services.into_iter().map(|s| (s.code, s.quantity, s.category, s.description)).collect();
            let (lines, currency) = self
                .0
                .price_lines(event.hospital_id, event.date_of_service, &services)
                .await
                .map_err(|e| e.to_string())?;
            let id = Uuid::now_v7();
            let member_number = event.member_numbers.into_iter().next().map(|m| m.member_number);
            let diagnosis = event
                .diagnoses
                .iter()
                .find(|d| d.primary)
                .or(event.diagnoses.first())
                .map(|d| d.code.clone())
                .unwrap_or_default();
            let draft = Invoice::draft(Draft {
                id,
                hospital_id: event.hospital_id,
                patient_id: event.patient_id,
                encounter_id: Some(event.encounter_id),
                member_number,
                // Unpriced lines keep the invoice a draft; its currency comes with the first price.
                currency: currency.unwrap_or_default(),
                date_of_service: event.date_of_service,
                lines,
            });
            let claim_request = draft.claim_request(&diagnosis, event.visit_type.as_deref().unwrap_or("normal"));
            self.0
                .create_invoice(&draft, &actor(envelope), Some(("billing.encounters", envelope.id)), claim_request)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

#[derive(Deserialize)]
struct ClaimLine {
    insurer_pays: i64,
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
struct PolicyCreated {
    policy_id: Uuid,
    insurer_id: Uuid,
    plan_id: Uuid,
    holder_id: Uuid,
    agent_id: Option<Uuid>,
    premium: Money,
}

#[derive(Deserialize)]
struct PolicyCancelled {
    policy_id: Uuid,
    reason: Option<String>,
}

pub struct Insurance {
    pub store: Arc<BillingStore>,
    pub config: medcov_config::BillingConfig,
}

fn read<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, String> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| format!("a {} payload this service cannot read: {e}", envelope.event_type))
}

impl Handler for Insurance {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match envelope.event_type.as_str() {
                "insurance.claim_adjudicated.v1" => self.claim_adjudicated(envelope).await,
                "insurance.claim_refused.v1" => self.claim_refused(envelope).await,
                "insurance.policy_created.v1" => {
                    let event: PolicyCreated = read(envelope)?;
                    let due =
                        OffsetDateTime::now_utc().date() + time::Duration::seconds(self.config.premium_due_s as i64);
                    let premium = crate::store::premiums::NewPremium {
                        insurer_id: event.insurer_id,
                        policy_id: event.policy_id,
                        plan_id: event.plan_id,
                        holder_id: event.holder_id,
                        agent_id: event.agent_id,
                        amount: event.premium.minor,
                        currency: event.premium.currency,
                        due_date: due,
                    };
                    self.store
                        .create_premium(&premium, &actor(envelope), Some(("billing.policies", envelope.id)))
                        .await
                        .map_err(|e| e.to_string())
                }
                "insurance.policy_cancelled.v1" => {
                    let event: PolicyCancelled = read(envelope)?;
                    let reason = event.reason.unwrap_or_else(|| "policy cancelled".into());
                    self.store
                        .policy_cancelled(
                            event.policy_id,
                            &reason,
                            self.config.commission_clawback_days,
                            &actor(envelope),
                            Some(("billing.policies", envelope.id)),
                        )
                        .await
                        .map_err(|e| e.to_string())
                }
                _ => Ok(()),
            }
        })
    }
}

#[derive(Deserialize)]
struct ClaimRefused {
    hospital_id: Uuid,
    reference: String,
}

impl Insurance {
    /// Issues an invoice drafted from an encounter once its split is known.
    async fn issue_drafted(&self, invoice: &Invoice, envelope: &Envelope) -> Result<(), String> {
        if invoice.status != Status::Draft || invoice.encounter_id.is_none() || invoice.lines.iter().any(|l| l.unpriced)
        {
            return Ok(());
        }
        match self.store.issue(invoice, &actor(envelope)).await {
            Ok(_) => Ok(()),
            // Issued meanwhile (by a clerk, or by an earlier delivery): nothing left to do.
            Err(crate::store::StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The insurer could not take the claim: the invoice is the patient's, and goes out.
    async fn claim_refused(&self, envelope: &Envelope) -> Result<(), String> {
        let event: ClaimRefused = read(envelope)?;
        let Some(invoice) =
            self.store.invoice_by_number(event.hospital_id, &event.reference).await.map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        self.issue_drafted(&invoice, envelope).await
    }

    async fn claim_adjudicated(&self, envelope: &Envelope) -> Result<(), String> {
        let event: ClaimAdjudicated = read(envelope)?;
        let Some(invoice) =
            self.store.invoice_by_number(event.hospital_id, &event.reference).await.map_err(|e| e.to_string())?
        else {
            // A claim the hospital sent for something billing did not invoice.
            return Ok(());
        };
        let adjudicated: Vec<Adjudicated> =
            event.lines.iter().map(|l| Adjudicated { insurer_pays: l.insurer_pays }).collect();
        let split = self
            .store
            .split_by_claim(
                &invoice,
                event.claim_id,
                event.insurer_id,
                &adjudicated,
                Some(("billing.claims", envelope.id)),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.issue_drafted(&split, envelope).await
    }
}

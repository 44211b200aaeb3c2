//! The consumers of the insurance service:
//!
//! - [`Billing`] (group `insurance` on `billing`):
//!   - `premium_paid` activates its pending policy (recorded in the inbox with the activation);
//!   - `claim_requested` submits the claim of an insured patient's invoice (idempotent on the
//!     invoice number, its reference), or answers `claim_refused` when it cannot be taken;
//!   - `payment_completed` that settles an invoice's insurer share marks its claim paid;
//!   - `invoice_voided` withdraws the invoice's claim, reversing its adjudication.
//!
//! - [`Hospital`] (group `insurance` on `hospital`): the patient-registration saga's commands:
//!   `verify_and_link` checks each member number (covered today, or why not: `invalid`,
//!   `unknown`, `not_covered`) and links the covered members to the patient, failing when none
//!   is covered; `unlink` undoes the links. `patient_updated` is answered with
//!   `member_verified`, for each member number on the record.
//!
//! A repeated delivery changes nothing: the inbox, the claim reference, or the claim's state
//! (a paid claim is not paid again) stop it.

use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_bus::Envelope;
use medcov_bus::consumer::Handler;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::plan::VisitType;
use crate::domain::policy::PolicyStatus;
use crate::store::claims::{ClaimLine, ClaimStatus, NewClaim};
use crate::store::{Event, InsuranceStore, StoreError};
use medcov_bus::orchestrator::Command;
use std::ops::Not;

/// The type of this service's replies to sagas.
const REPLY: &str = "insurance.saga_reply.v1";

#[derive(Deserialize)]
struct PremiumPaid {
    policy_id: Uuid,
}

#[derive(Deserialize)]
struct ClaimRequested {
    number: String,
    hospital_id: Uuid,
    member_number: String,
    visit_type: VisitType,
    currency: String,
    lines: Vec<ClaimLine>,
}

#[derive(Deserialize)]
struct PaymentCompleted {
    claim_id: Option<Uuid>,
    #[serde(default)]
    insurer_settled: bool,
    payment_id: Uuid,
}

#[derive(Deserialize)]
struct InvoiceVoided {
    claim_id: Option<Uuid>,
    reason: Option<String>,
}

use medcov_runtime::event_actor as actor;

fn read<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, String> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| format!("a {} payload this service cannot read: {e}", envelope.event_type))
}

pub struct Billing(pub Arc<InsuranceStore>);

impl Handler for Billing {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match envelope.event_type.as_str() {
                "billing.premium_paid.v1" => self.premium_paid(envelope).await,
                "billing.claim_requested.v1" => self.claim_requested(envelope).await,
                "billing.payment_completed.v1" => self.payment_completed(envelope).await,
                "billing.invoice_voided.v1" => self.invoice_voided(envelope).await,
                _ => Ok(()),
            }
        })
    }
}

impl Billing {
    async fn claim_requested(&self, envelope: &Envelope) -> Result<(), String> {
        let request: ClaimRequested = read(envelope)?;
        let refuse = |reason: &str| Event {
            event_type: "insurance.claim_refused.v1",
            aggregate_type: "claim",
            aggregate_id: envelope.aggregate_id,
            tenant_id: request.hospital_id,
            payload: serde_json::json!({"hospital_id": request.hospital_id, "reference": request.number, "reason": reason}),
        };
        let first_day = request.lines.iter().map(|l| l.date_of_service).min();
        let coverage = match first_day {
            Some(day) => self.0.coverage(request.member_number.trim(), day).await.map_err(|e| e.to_string())?,
            None => None,
        };
        let Some(coverage) = coverage else {
            return self.0.emit(&refuse("no such member"), &actor(envelope), None).await.map_err(|e| e.to_string());
        };
        if coverage.policy.currency != request.currency {
            let reason = format!("the member's plan is in {}", coverage.policy.currency);
            return self.0.emit(&refuse(&reason), &actor(envelope), None).await.map_err(|e| e.to_string());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, envelope.payload.to_string().as_bytes());
        let claim = NewClaim {
            insurer_id: coverage.policy.insurer_id,
            hospital_id: request.hospital_id,
            reference: request.number.clone(),
            request_hash: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
            member_id: coverage.member.member_id,
            policy_id: Some(coverage.policy.id),
            visit_type: request.visit_type,
            currency: request.currency.clone(),
            lines: request.lines,
        };
        match self.0.submit_claim(&claim, &actor(envelope)).await {
            Ok(_) => Ok(()),
            // The reference was used for another claim by the hospital itself.
            Err(StoreError::Invalid { reason, .. }) => {
                self.0.emit(&refuse(&reason), &actor(envelope), None).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn payment_completed(&self, envelope: &Envelope) -> Result<(), String> {
        let payment: PaymentCompleted = read(envelope)?;
        let (Some(claim_id), true) = (payment.claim_id, payment.insurer_settled) else {
            return Ok(());
        };
        let Some(claim) = self.0.claim(claim_id).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if claim.status != ClaimStatus::Adjudicated {
            return Ok(());
        }
        match self.0.mark_paid(&claim, &payment.payment_id.to_string(), &actor(envelope)).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn invoice_voided(&self, envelope: &Envelope) -> Result<(), String> {
        let voided: InvoiceVoided = read(envelope)?;
        let Some(claim_id) = voided.claim_id else {
            return Ok(());
        };
        let Some(claim) = self.0.claim(claim_id).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if claim.status != ClaimStatus::Adjudicated {
            return Ok(());
        }
        let reason = voided.reason.unwrap_or_else(|| "the invoice was voided".into());
        match self.0.unadjudicate(&claim, ClaimStatus::Withdrawn, &reason, &actor(envelope)).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn premium_paid(&self, envelope: &Envelope) -> Result<(), String> {
        let event: PremiumPaid = read(envelope)?;
        let Some(policy) = self.0.policy(event.policy_id).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        // A policy cancelled before its premium arrived stays cancelled (billing refunds).
        if policy.status != PolicyStatus::Pending {
            return Ok(());
        }
        match self
            .0
            .change_policy_status(
                &policy,
                PolicyStatus::Active,
                None,
                Some("premium paid"),
                &actor(envelope),
                Some(("insurance.premiums", envelope.id)),
            )
            .await
        {
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        crate::sagas::premium_paid(&self.0, policy.id).await.map_err(|e| e.to_string())
    }
}

#[derive(Deserialize)]
struct PatientMember {
    member_number: String,
}

#[derive(Deserialize)]
struct PatientRecord {
    patient_id: Uuid,
    hospital_id: Uuid,
    #[serde(default)]
    member_numbers: Vec<PatientMember>,
}

pub struct Hospital(pub Arc<InsuranceStore>);

impl Handler for Hospital {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(command) = Command::addressed(envelope, "insurance") {
                return self.command(envelope, &command).await;
            }
            // A registration is verified by the registration saga's command; a change of the
            // member numbers is answered here.
            if envelope.event_type != "hospital.patient_updated.v1" {
                return Ok(());
            }
            let record: PatientRecord = read(envelope)?;
            let numbers: Vec<&str> = record.member_numbers.iter().map(|m| m.member_number.trim()).collect();
            let (today, answers, _) = self.answers(&numbers).await?;
            if answers.is_empty() {
                return Ok(());
            }
            let event = Event {
                event_type: "insurance.member_verified.v1",
                aggregate_type: "patient",
                aggregate_id: record.patient_id,
                tenant_id: record.hospital_id,
                payload: serde_json::json!({"patient_id": record.patient_id, "hospital_id": record.hospital_id, "checked_on": today.to_string(), "members": answers}),
            };
            self.0
                .emit(&event, &actor(envelope), Some(("insurance.patients", envelope.id)))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl Hospital {
    /// What the insurer says of each member number today: the answers, and the members covered.
    async fn answers(&self, numbers: &[&str]) -> Result<(time::Date, Vec<serde_json::Value>, Vec<Uuid>), String> {
        let today = time::OffsetDateTime::now_utc().date();
        let mut answers = Vec::new();
        let mut covered = Vec::new();
        for number in numbers {
            let (status, reason, coverage) = if !crate::domain::policy::member_number_valid(number) {
                ("invalid", Some("the check digits do not match".to_owned()), None)
            } else {
                match self.0.coverage(number, today).await.map_err(|e| e.to_string())? {
                    None => ("unknown", Some("no member has this number".to_owned()), None),
                    Some(coverage) => match coverage.cover.on(today) {
                        Ok(()) => ("covered", None, Some(coverage)),
                        Err(crate::domain::policy::NotCovered::NoActivePolicy) => {
                            ("not_covered", Some("no_active_policy".to_owned()), Some(coverage))
                        }
                        Err(crate::domain::policy::NotCovered::MemberInactive) => {
                            ("not_covered", Some("member_inactive".to_owned()), Some(coverage))
                        }
                    },
                }
            };
            if status == "covered"
                && let Some(c) = &coverage
            {
                covered.push(c.member.member_id);
            }
            answers.push(serde_json::json!({
                "member_number": number,
                "status": status,
                "reason": reason,
                "insurer_id": coverage.as_ref().map(|c| c.policy.insurer_id),
                "policy_id": coverage.as_ref().map(|c| c.policy.id),
                "member_id": coverage.as_ref().map(|c| c.member.member_id),
            }));
        }
        Ok((today, answers, covered))
    }

    /// A step of the patient-registration saga: verify the member numbers and link the covered
    /// members to the patient (failing when none is covered), or undo the links.
    async fn command(&self, envelope: &Envelope, command: &Command) -> Result<(), String> {
        let input: PatientRecord = serde_json::from_value(command.data["input"].clone())
            .map_err(|e| format!("a registration saga command this service cannot read: {e}"))?;
        let inbox = ("insurance.saga", envelope.id);
        let actor = actor(envelope);
        match command.command.as_str() {
            "verify_and_link" => {
                let numbers: Vec<&str> = input.member_numbers.iter().map(|m| m.member_number.trim()).collect();
                let (today, answers, covered) = self.answers(&numbers).await?;
                // The reason names statuses, never the numbers (it reaches the saga's record).
                let reason = (covered.is_empty()).then(|| {
                    let why: Vec<&str> =
                        answers.iter().map(|a| a["reason"].as_str().or(a["status"].as_str()).unwrap_or("")).collect();
                    format!("no member number is covered today ({})", why.join("; "))
                });
                let data = serde_json::json!({"patient_id": input.patient_id, "hospital_id": input.hospital_id, "checked_on": today.to_string(), "members": answers});
                let reply = command.reply(REPLY, input.hospital_id, covered.is_empty().not(), reason, data);
                self.0
                    .link_members(input.patient_id, input.hospital_id, &covered, &reply, &actor, inbox)
                    .await
                    .map_err(|e| e.to_string())
            }
            "unlink" => {
                let reply = |removed: u64| {
                    command.reply(
                        REPLY,
                        input.hospital_id,
                        true,
                        None,
                        serde_json::json!({"patient_id": input.patient_id, "unlinked": removed}),
                    )
                };
                self.0.unlink_patient(input.patient_id, reply, &actor, inbox).await.map_err(|e| e.to_string())
            }
            other => Err(format!("the registration saga asked insurance for `{other}`, which it does not do")),
        }
    }
}

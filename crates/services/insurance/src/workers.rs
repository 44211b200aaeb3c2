//! The consumers of the insurance service. Each reads its event and makes one call to the
//! service layer.
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
use medcov_bus::consumer::{AfterCommit, Handler};
use medcov_bus::orchestrator::Command;
use medcov_runtime::event_actor as actor;
use medcov_store::Tx;
use serde::Deserialize;
use time::Date;
use uuid::Uuid;

use crate::domain::claim::{ClaimLine, Submission};
use crate::domain::plan::VisitType;
use crate::service::InsuranceService;
use crate::service::members::{PatientMembers, Verifying};

#[derive(Deserialize)]
struct PremiumPaid {
    policy_id: Uuid,
}

/// A claim line as billing sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestedLine {
    service_code: String,
    category: String,
    quantity: u32,
    unit_price: i64,
    diagnosis: String,
    date_of_service: Date,
    #[serde(default)]
    preauth_id: Option<Uuid>,
}

impl From<RequestedLine> for ClaimLine {
    fn from(l: RequestedLine) -> Self {
        ClaimLine {
            service_code: l.service_code,
            category: l.category,
            quantity: l.quantity,
            unit_price: l.unit_price,
            diagnosis: l.diagnosis,
            date_of_service: l.date_of_service,
            preauth_id: l.preauth_id,
        }
    }
}

#[derive(Deserialize)]
struct ClaimRequested {
    number: String,
    hospital_id: Uuid,
    member_number: String,
    visit_type: VisitType,
    currency: String,
    lines: Vec<RequestedLine>,
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

fn read<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, String> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| format!("a {} payload this service cannot read: {e}", envelope.event_type))
}

pub struct Billing(pub Arc<InsuranceService>);

impl Handler for Billing {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let service = &self.0;
            let actor = actor(envelope);
            let done = match envelope.event_type.as_str() {
                "billing.premium_paid.v1" => {
                    let event: PremiumPaid = read(envelope)?;
                    service.premium_paid(event.policy_id, envelope.id, &actor).await
                }
                "billing.claim_requested.v1" => {
                    let request: ClaimRequested = read(envelope)?;
                    let submission = Submission {
                        hospital_id: request.hospital_id,
                        reference: request.number,
                        member_number: request.member_number.trim().to_owned(),
                        visit_type: request.visit_type,
                        currency: request.currency,
                        lines: request.lines.into_iter().map(ClaimLine::from).collect(),
                        request_hash: crate::service::digest(envelope.payload.to_string().as_bytes()),
                    };
                    service.claim_requested(submission, envelope.aggregate_id, &actor).await
                }
                "billing.payment_completed.v1" => {
                    let payment: PaymentCompleted = read(envelope)?;
                    match (payment.claim_id, payment.insurer_settled) {
                        (Some(claim), true) => service.claim_settled(claim, payment.payment_id, &actor).await,
                        _ => Ok(()),
                    }
                }
                "billing.invoice_voided.v1" => {
                    let voided: InvoiceVoided = read(envelope)?;
                    let reason = voided.reason.unwrap_or_else(|| "the invoice was voided".into());
                    match voided.claim_id {
                        Some(claim) => service.claim_withdrawn(claim, &reason, &actor).await,
                        None => Ok(()),
                    }
                }
                _ => Ok(()),
            };
            done.map_err(|e| e.to_string())
        })
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

impl From<PatientRecord> for PatientMembers {
    fn from(r: PatientRecord) -> Self {
        PatientMembers {
            patient_id: r.patient_id,
            hospital_id: r.hospital_id,
            member_numbers: r.member_numbers.into_iter().map(|m| m.member_number).collect(),
        }
    }
}

pub struct Hospital(pub Arc<InsuranceService>);

impl Handler for Hospital {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let service = &self.0;
            let actor = actor(envelope);
            if let Some(command) = Command::addressed(envelope, "insurance") {
                // A step of the patient-registration saga.
                let input: PatientRecord = command.input()?;
                let record = PatientMembers::from(input);
                let done = match command.command.as_str() {
                    "verify_and_link" => service.verify_and_link(&command, &record, envelope.id, &actor).await,
                    "unlink" => service.unlink_patient(&command, &record, envelope.id, &actor).await,
                    other => {
                        return Err(format!(
                            "the registration saga asked insurance for `{other}`, which it does not do"
                        ));
                    }
                };
                return done.map_err(|e| e.to_string());
            }
            // A registration is verified by the registration saga's command; a change of the
            // member numbers is answered here.
            if envelope.event_type != "hospital.patient_updated.v1" {
                return Ok(());
            }
            let record: PatientRecord = read(envelope)?;
            service.patient_updated(&record.into(), envelope.id, &actor).await.map_err(|e| e.to_string())
        })
    }

    fn database(&self) -> Option<&medcov_store::Database> {
        Some(self.0.database())
    }

    fn ignores(&self, envelope: &Envelope) -> bool {
        envelope.event_type != "hospital.patient_updated.v1" && !Command::is_for(envelope, "insurance")
    }

    fn batches(&self, envelope: &Envelope) -> bool {
        Command::is_for(envelope, "insurance")
    }

    fn handle_in<'a>(&'a self, tx: &'a mut Tx, envelope: &'a Envelope) -> BoxFuture<'a, Result<AfterCommit, String>> {
        Box::pin(async move {
            let service = &self.0;
            let actor = actor(envelope);
            let Some(command) = Command::addressed(envelope, "insurance") else { return Ok(AfterCommit::nothing()) };
            let input: PatientRecord = command.input()?;
            let record = PatientMembers::from(input);
            let done = match command.command.as_str() {
                "verify_and_link" => service.verify_and_link_in(tx, &command, &record, envelope.id, &actor).await,
                "unlink" => service.unlink_patient_in(tx, &command, &record, envelope.id, &actor).await,
                other => {
                    return Err(format!("the registration saga asked insurance for `{other}`, which it does not do"));
                }
            };
            done.map(|_| AfterCommit::nothing()).map_err(|e| e.to_string())
        })
    }

    /// The registration saga's `verify_and_link` commands, a stretch at once.
    fn handles_together(&self, envelope: &Envelope) -> bool {
        Command::is(envelope, "insurance", "verify_and_link")
    }

    fn handle_together_in<'a>(
        &'a self,
        tx: &'a mut Tx,
        stretch: &'a [(&'a Envelope, &'a tracing::Span)],
    ) -> BoxFuture<'a, Result<Vec<AfterCommit>, String>> {
        Box::pin(async move {
            verify_all_in(&self.0, tx, stretch).await?;
            Ok(stretch.iter().map(|_| AfterCommit::nothing()).collect())
        })
    }
}

/// A run of `verify_and_link` commands inside a consumer's batch transaction, at once
/// ([`InsuranceService::verify_and_link_all_in`]).
async fn verify_all_in(
    service: &InsuranceService,
    tx: &mut Tx,
    run: &[(&Envelope, &tracing::Span)],
) -> Result<(), String> {
    let mut read = Vec::with_capacity(run.len());
    for (envelope, _) in run {
        let command = Command::addressed(envelope, "insurance")
            .ok_or_else(|| format!("event {} is not a command for insurance", envelope.id))?;
        let input: PatientRecord = command.input()?;
        read.push((envelope.id, command, PatientMembers::from(input), actor(envelope)));
    }
    let verifying: Vec<Verifying> = read
        .iter()
        .map(|(event, command, record, actor)| Verifying { event: *event, command, record, actor })
        .collect();
    service.verify_and_link_all_in(tx, &verifying).await.map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use medcov_config::ServiceName;
    use medcov_store::{Database, PoolOptions};
    use time::OffsetDateTime;

    use super::*;

    /// A registration saga's command for insurance, as the hospital sends it.
    fn command(name: &str, patient: Uuid, number: &str) -> Envelope {
        let hospital = Uuid::nil();
        let command = Command {
            saga_id: Uuid::now_v7(),
            kind: "patient_registration".into(),
            step: "verify_member".into(),
            command: name.into(),
            target: "insurance".into(),
            subject_id: patient,
            data: serde_json::json!({"input": {
                "patient_id": patient,
                "hospital_id": hospital,
                "member_numbers": [{"member_number": number}],
            }}),
        };
        Envelope {
            id: Uuid::now_v7(),
            event_type: "hospital.saga_command.v1".into(),
            aggregate_type: "saga".into(),
            aggregate_id: command.saga_id,
            tenant_id: Some(hospital),
            occurred_at: OffsetDateTime::now_utc(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            payload: serde_json::to_value(&command).unwrap(),
        }
    }

    /// A run of the saga's commands handled at once answers as the same commands one at a
    /// time would, in their order: each verification with why no number is covered, a
    /// repeated event once, and an `unlink` between them in its place.
    async fn a_run_of_verifications_answers_as_one_at_a_time_would(env: medcov_testkit::TestEnv) {
        let service = ServiceName::Insurance;
        let options = PoolOptions::from_config(&env.config);
        let db = Database::connect(service, env.config.database_url(service), &options).await.unwrap();
        db.migrate(service, &crate::store::MIGRATIONS).await.unwrap();
        let handler = Hospital(Arc::new(InsuranceService::new(db.clone())));
        let [a, b, c, d] = [(); 4].map(|()| Uuid::now_v7());
        let first = command("verify_and_link", a, "ZZZ-1000000064");
        let run = [
            first.clone(),
            command("verify_and_link", b, "not a number"),
            first,
            command("unlink", c, "ZZZ-1000000064"),
            command("verify_and_link", d, "ZZZ-1000000064"),
        ];
        let span = tracing::Span::none();
        let run: Vec<_> = run.iter().map(|envelope| (envelope, &span)).collect();
        let mut tx = db.begin_write().await.unwrap();
        let after = handler.handle_all_in(&mut tx, &run).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(after.len(), run.len());

        let replies: Vec<_> = medcov_store::outbox::all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|event| {
                let reply = &event.payload;
                let status = reply["data"]["members"][0]["status"].as_str().map(str::to_owned);
                (
                    reply["command"].as_str().unwrap().to_owned(),
                    reply["data"]["patient_id"].clone(),
                    reply["ok"].clone(),
                    status,
                )
            })
            .collect();
        let reply = |name: &str, patient: Uuid, ok: bool, status: Option<&str>| {
            (name.to_owned(), serde_json::json!(patient), serde_json::json!(ok), status.map(str::to_owned))
        };
        assert_eq!(
            replies,
            [
                reply("verify_and_link", a, false, Some("unknown")),
                reply("verify_and_link", b, false, Some("invalid")),
                reply("unlink", c, true, None),
                reply("verify_and_link", d, false, Some("unknown")),
            ]
        );
        db.close().await;
    }

    medcov_testkit::backend_suite!(a_run_of_verifications_answers_as_one_at_a_time_would);
}

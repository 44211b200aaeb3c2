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
use crate::service::{Adjudication, BillingService, Encounter, Handling, Opening, PolicyCreated};

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

    /// The registration saga's `open_account` commands, a stretch at once.
    fn handles_together(&self, envelope: &Envelope) -> bool {
        Command::is(envelope, "billing", "open_account")
    }

    fn handle_together_in<'a>(
        &'a self,
        tx: &'a mut Tx,
        stretch: &'a [(&'a Envelope, &'a tracing::Span)],
    ) -> BoxFuture<'a, Result<Vec<AfterCommit>, String>> {
        Box::pin(async move {
            open_accounts_in(tx, stretch).await?;
            Ok(stretch.iter().map(|_| AfterCommit::nothing()).collect())
        })
    }
}

/// What a registration saga command gives billing to work on.
#[derive(Deserialize)]
struct AccountInput {
    patient_id: Uuid,
    hospital_id: Uuid,
}

/// The inbox of the registration saga's commands.
const SAGA_INBOX: &str = "billing.saga";

/// An `open_account` command, as [`BillingService::open_accounts_in`] takes it.
fn opening(envelope: &Envelope) -> Result<Opening<'static>, String> {
    let command = Command::addressed(envelope, "billing")
        .ok_or_else(|| format!("event {} is not a command for billing", envelope.id))?;
    let input: AccountInput = command.input()?;
    let (patient, hospital) = (input.patient_id, input.hospital_id);
    let reply = move |opened_at: OffsetDateTime| {
        let data = serde_json::json!({"patient_id": patient, "opened_at": opened_at.to_string()});
        command.reply("billing.saga_reply.v1", hospital, true, None, data)
    };
    Ok(Opening { event: envelope.id, patient, hospital, actor: actor(envelope), reply: Box::new(reply) })
}

/// A run of `open_account` commands inside a consumer's batch transaction, at once.
async fn open_accounts_in(tx: &mut Tx, run: &[(&Envelope, &tracing::Span)]) -> Result<(), String> {
    let openings = run.iter().map(|(envelope, _)| opening(envelope)).collect::<Result<Vec<_>, String>>()?;
    BillingService::open_accounts_in(tx, SAGA_INBOX, &openings).await.map(drop).map_err(|e| e.to_string())
}

/// The patient-registration saga's last step inside `tx` (its own, or a consumer's batch): the
/// patient's account is opened, or closed again when the saga is compensated (each once).
async fn account_in(tx: &mut Tx, envelope: &Envelope, command: &Command) -> Result<(), String> {
    match command.command.as_str() {
        "open_account" => open_accounts_in(tx, &[(envelope, &tracing::Span::current())]).await,
        "close_account" => {
            let input: AccountInput = command.input()?;
            let reply = |closed: u64| {
                let data = serde_json::json!({"patient_id": input.patient_id, "closed": closed});
                command.reply("billing.saga_reply.v1", input.hospital_id, true, None, data)
            };
            let handling = Handling { consumer: SAGA_INBOX, event: envelope.id };
            BillingService::close_account_in(tx, input.patient_id, reply, &actor(envelope), handling)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        other => Err(format!("the registration saga asked billing for `{other}`, which it does not do")),
    }
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

#[cfg(test)]
mod tests {
    use medcov_config::ServiceName;
    use medcov_store::{Database, PoolOptions};

    use super::*;

    /// A registration saga's command for billing, as the hospital sends it.
    fn command(name: &str, patient: Uuid, hospital: Uuid) -> Envelope {
        let command = Command {
            saga_id: Uuid::now_v7(),
            kind: "patient_registration".into(),
            step: "open_account".into(),
            command: name.into(),
            target: "billing".into(),
            subject_id: patient,
            data: serde_json::json!({"input": {"patient_id": patient, "hospital_id": hospital}}),
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

    /// The replies billing has written, oldest first: (command, patient, when the account was
    /// opened or how many were closed).
    async fn replies(db: &Database) -> Vec<(String, String, String)> {
        medcov_store::outbox::all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|event| {
                let (reply, data) = (&event.payload, &event.payload["data"]);
                let outcome = data.get("opened_at").map_or_else(|| data["closed"].to_string(), |at| at.to_string());
                (
                    reply["command"].as_str().unwrap().to_owned(),
                    data["patient_id"].as_str().unwrap().to_owned(),
                    outcome,
                )
            })
            .collect()
    }

    /// A run of the saga's commands handled at once ends as the same commands one at a time
    /// would: each new account opened, an account that exists kept with its first opening
    /// time, a repeated event answered once, and a close between two opens of one patient
    /// applied between them.
    async fn a_run_of_account_commands_ends_as_one_at_a_time_would(env: medcov_testkit::TestEnv) {
        let service = ServiceName::Billing;
        let options = PoolOptions::from_config(&env.config);
        let db = Database::connect(service, env.config.database_url(service), &options).await.unwrap();
        db.migrate(service, &crate::store::MIGRATIONS).await.unwrap();
        let handler = Encounters(Arc::new(BillingService::new(db.clone(), &medcov_config::BillingConfig::default())));
        let span = tracing::Span::none();
        let handle = async |run: &[Envelope]| {
            let run: Vec<_> = run.iter().map(|envelope| (envelope, &span)).collect();
            let mut tx = db.begin_write().await.unwrap();
            let after = handler.handle_all_in(&mut tx, &run).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(after.len(), run.len());
        };
        let hospital = Uuid::now_v7();
        let [one, two, three] = [(); 3].map(|()| Uuid::now_v7());
        handle(&[command("open_account", three, hospital)]).await;
        let before = replies(&db).await;

        let first = command("open_account", one, hospital);
        handle(&[
            first.clone(),
            command("open_account", two, hospital),
            first,
            command("open_account", three, hospital),
            command("close_account", two, hospital),
            command("open_account", two, hospital),
        ])
        .await;
        let after = replies(&db).await;
        let new = &after[before.len()..];
        let names: Vec<(&str, Uuid)> = new.iter().map(|(c, p, _)| (c.as_str(), p.parse().unwrap())).collect();
        assert_eq!(
            names,
            [
                ("open_account", one),
                ("open_account", two),
                ("open_account", three),
                ("close_account", two),
                ("open_account", two)
            ],
            "{new:?}"
        );
        assert_eq!(new[0].2, new[1].2, "opened together: {new:?}");
        assert_eq!(new[2].2, before[0].2, "the account that existed keeps its opening: {new:?}");
        assert_eq!(new[3].2, "1", "the close closed the account opened just before: {new:?}");
        assert_ne!(new[4].2, new[1].2, "opened again after the close: {new:?}");
        db.close().await;
    }

    medcov_testkit::backend_suite!(a_run_of_account_commands_ends_as_one_at_a_time_would);
}

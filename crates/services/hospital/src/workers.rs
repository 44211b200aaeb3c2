//! The consumers of the hospital service:
//!
//! - [`Insurance`] (group `hospital` on `insurance`): `member_verified` records what the insurer
//!   answered about each member number of a patient (covered, or why not), for the desk.
//!
//! Each event is recorded in the inbox with its effect.

use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_bus::Envelope;
use medcov_bus::consumer::Handler;
use serde::Deserialize;
use uuid::Uuid;

use crate::store::HospitalStore;
use crate::store::coverage::Coverage;

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
}

pub struct Insurance(pub Arc<HospitalStore>);

impl Handler for Insurance {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if envelope.event_type != "insurance.member_verified.v1" {
                return Ok(());
            }
            let event: MemberVerified = serde_json::from_value(envelope.payload.clone())
                .map_err(|e| format!("a member_verified payload this service cannot read: {e}"))?;
            let answers: Vec<Coverage> = event
                .members
                .into_iter()
                .map(|a| Coverage {
                    member_number: a.member_number,
                    status: a.status,
                    reason: a.reason,
                    insurer_id: a.insurer_id,
                    policy_id: a.policy_id,
                    checked_on: event.checked_on,
                })
                .collect();
            self.0.record_coverage(envelope.id, event.patient_id, &answers).await.map_err(|e| e.to_string())
        })
    }
}

//! The consumers of the insurance service:
//!
//! - [`Billing`] (group `insurance` on `billing`): `premium_paid` activates its pending policy.
//!
//! The event is recorded in the inbox in the same transaction as the activation, so a
//! repeated delivery changes nothing.

use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_bus::Envelope;
use medcov_bus::consumer::Handler;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::policy::PolicyStatus;
use crate::store::{Actor, InsuranceStore};

#[derive(Deserialize)]
struct PremiumPaid {
    policy_id: Uuid,
}

pub struct Billing(pub Arc<InsuranceStore>);

impl Handler for Billing {
    fn handle<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if envelope.event_type != "billing.premium_paid.v1" {
                return Ok(());
            }
            let event: PremiumPaid = serde_json::from_value(envelope.payload.clone())
                .map_err(|e| format!("a premium_paid payload this service cannot read: {e}"))?;
            let Some(policy) = self.0.policy(event.policy_id).await.map_err(|e| e.to_string())? else {
                return Ok(());
            };
            // A policy cancelled before its premium arrived stays cancelled (billing refunds).
            if policy.status != PolicyStatus::Pending {
                return Ok(());
            }
            let actor = Actor {
                user_id: Uuid::nil(),
                request_id: envelope.correlation_id.clone(),
                traceparent: envelope.traceparent.clone(),
            };
            match self
                .0
                .change_policy_status(
                    &policy,
                    PolicyStatus::Active,
                    None,
                    Some("premium paid"),
                    &actor,
                    Some(("insurance.premiums", envelope.id)),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

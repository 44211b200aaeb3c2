//! The policy-sale saga's steps: insurance creates the policy (`pending`; the saga starts in
//! the same transaction, deadline `billing.premium_due_s` ahead) → billing invoices the
//! premium → its payment (`billing.premium_paid.v1`) activates the policy and completes the
//! saga. If the deadline passes first, the compensation cancels the policy, whose
//! `policy_cancelled` makes billing void the unpaid premium.
//!
//! The deadline is a durable timer: [`InsuranceService::tick_sales`] finds due instances in
//! the database, so a restart loses none. The compensation is retried on every tick until it
//! succeeds, and a policy paid just before the tick completes instead of being cancelled.

use medcov_bus::saga::{self, SagaState};
use medcov_http::ApiError;
use medcov_store::outbox::Actor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::policy::PolicyStatus;

/// The saga that follows a sold policy until its premium is paid (or cancels it).
pub const POLICY_SALE: &str = "policy_sale";

impl InsuranceService {
    /// The premium arrived: the sale of the policy completes.
    pub async fn complete_sale(&self, policy: Uuid) -> Result<(), ApiError> {
        if let Some(instance) = saga::find(&self.db, POLICY_SALE, policy).await? {
            saga::transition(
                &self.db,
                instance.id,
                SagaState::Running,
                SagaState::Completed,
                "policy_active",
                None,
                "premium paid",
            )
            .await?;
        }
        Ok(())
    }

    /// One tick of the sales' timers: acts on every due instance; returns how many were due.
    pub async fn tick_sales(&self) -> Result<usize, ApiError> {
        let db = &self.db;
        let due = saga::due(db, OffsetDateTime::now_utc(), 100).await?;
        let count = due.len();
        for instance in due {
            if instance.kind != POLICY_SALE {
                continue;
            }
            let Some(policy) = self.policy(instance.subject_id).await? else {
                saga::transition(
                    db,
                    instance.id,
                    instance.state,
                    SagaState::Compensated,
                    "no_policy",
                    None,
                    "the policy is gone",
                )
                .await?;
                continue;
            };
            if policy.status == PolicyStatus::Active && instance.state == SagaState::Running {
                // Paid just before the deadline; the reply is on its way.
                saga::transition(
                    db,
                    instance.id,
                    SagaState::Running,
                    SagaState::Completed,
                    "policy_active",
                    None,
                    "paid by the deadline",
                )
                .await?;
                continue;
            }
            if instance.state == SagaState::Running
                && !saga::transition(
                    db,
                    instance.id,
                    SagaState::Running,
                    SagaState::Compensating,
                    "cancelling_policy",
                    instance.deadline_at,
                    "the premium was not paid by the deadline",
                )
                .await?
            {
                continue;
            }
            // Compensate: cancel the policy (billing voids its premium when it hears of it).
            if policy.status == PolicyStatus::Pending {
                // The saga's deadline caused it: the saga is named as the cause.
                let cause = Some(format!("saga:{}", instance.id));
                let actor = Actor { user_id: Uuid::nil(), request_id: None, traceparent: None, causation_id: cause };
                let reason = Some("premium not paid by the deadline");
                match self.change_policy_status(&policy, PolicyStatus::Cancelled, None, reason, &actor, None).await {
                    Ok(_) | Err(ApiError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            saga::transition(
                db,
                instance.id,
                SagaState::Compensating,
                SagaState::Compensated,
                "policy_cancelled",
                None,
                "policy cancelled, premium to be voided",
            )
            .await?;
        }
        Ok(count)
    }

    /// How many sales are in each state.
    pub async fn sale_counts(&self) -> Result<Vec<(SagaState, i64)>, ApiError> {
        Ok(saga::counts(&self.db).await?)
    }
}

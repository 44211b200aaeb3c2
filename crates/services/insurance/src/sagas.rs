//! The policy-sale saga, orchestrated here: insurance creates the policy (`pending`, the saga
//! starts in the same transaction, deadline `billing.premium_due_s` ahead) → billing invoices
//! the premium → its payment (`billing.premium_paid.v1`) activates the policy and completes the
//! saga (billing earns the agent's commission with the payment). If the deadline passes first,
//! the compensation cancels the policy, whose `policy_cancelled` makes billing void the unpaid
//! premium.
//!
//! The deadline is a durable timer: a ticker finds due instances in the database, so a restart
//! loses none. The compensation is retried on every tick until it succeeds, and a policy paid
//! just before the ticker ran completes instead of being cancelled.

use std::time::Duration;

use medcov_bus::saga::{self, SagaState};
use medcov_http::Metrics;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::policy::PolicyStatus;
use crate::store::policies::POLICY_SALE;
use crate::store::{Actor, InsuranceStore, StoreError};

/// The premium arrived: the saga of the policy completes.
pub async fn premium_paid(store: &InsuranceStore, policy: Uuid) -> Result<(), StoreError> {
    if let Some(instance) = saga::find(store.database(), POLICY_SALE, policy).await? {
        saga::transition(
            store.database(),
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

/// One tick: acts on every due instance.
pub async fn tick(store: &InsuranceStore) -> Result<usize, StoreError> {
    let db = store.database();
    let due = saga::due(db, OffsetDateTime::now_utc(), 100).await?;
    let count = due.len();
    for instance in due {
        if instance.kind != POLICY_SALE {
            continue;
        }
        let Some(policy) = store.policy(instance.subject_id).await? else {
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
            let actor = Actor { user_id: Uuid::nil(), request_id: None, traceparent: None };
            match store
                .change_policy_status(
                    &policy,
                    PolicyStatus::Cancelled,
                    None,
                    Some("premium not paid by the deadline"),
                    &actor,
                    None,
                )
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
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

/// Ticks every `every` until `stop`, publishing instance counts by state as `sagas` gauges.
pub async fn run(store: std::sync::Arc<InsuranceStore>, metrics: Metrics, every: Duration, stop: CancellationToken) {
    metrics.describe_gauge("sagas", "Sagas this service orchestrates, by kind and state.");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(error) = tick(&store).await {
            tracing::warn!(%error, "the saga ticker failed; it will try again");
        }
        if let Ok(counts) = saga::counts(store.database()).await {
            for (state, n) in counts {
                metrics.gauge("sagas", &[("kind", POLICY_SALE), ("state", state.as_str())]).set(n as f64);
            }
        }
    }
}

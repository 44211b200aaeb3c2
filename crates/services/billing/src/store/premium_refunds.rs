//! Refunds of premium payments: a billing clerk requests, a second person approves; only the
//! approval moves money. The refund reverses the payment's ledger entries (credit first), so
//! the premium is owed again for the rest; when that leaves the premium no longer fully paid,
//! the agent's commission on it, if earned within `billing.commission_clawback_days`, is clawed
//! back in the same transaction.

use medcov_store::{WritePool, on_pool, write_outbox};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::premiums::{COMMISSION_COLUMNS, Commission, PREMIUM_COLUMNS, Premium, claw_back};
use super::{Actor, BillingStore, Event, StoreError, write_entry};
use crate::domain::invoice::{self, Status};
use crate::domain::ledger::{self, Account, Method};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(example = json!({"id": "0193a0b4-5f6e-7c3d-8a9b-112233445566", "insurer_id": "0193a0b4-0000-7000-8000-000000000001",
    "premium_payment_id": "0193a0b4-1111-7000-8000-000000000002", "premium_id": "0193a0b4-2222-7000-8000-000000000003",
    "amount": 200000, "from_credit": 0, "from_applied": 200000, "reason": "paid twice by the employer", "status": "requested",
    "requested_by": "0193a0b4-3333-7000-8000-000000000004", "decided_by": null, "decision_note": null,
    "created_at": "2026-11-26T09:00:00Z", "decided_at": null}))]
pub struct PremiumRefund {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub premium_payment_id: Uuid,
    pub premium_id: Uuid,
    pub amount: i64,
    /// Taken from the payment's credit (the overpaid part).
    pub from_credit: i64,
    /// Taken from what the payment settled on the premium (owed again).
    pub from_applied: i64,
    pub reason: String,
    /// `requested`, `completed` or `rejected`.
    pub status: String,
    pub requested_by: Uuid,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, insurer_id, premium_payment_id, premium_id, amount, from_credit, from_applied, reason, status, \
     requested_by, decided_by, decision_note, created_at, decided_at";

impl BillingStore {
    /// The insurer of a premium payment.
    pub async fn premium_payment_insurer(&self, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_scalar("SELECT insurer_id FROM premium_payments WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Requests a refund of part or all of a premium payment; nothing moves until approved.
    pub async fn request_premium_refund(
        &self,
        payment: Uuid,
        amount: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<PremiumRefund, StoreError> {
        let id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let row: Option<(Uuid, Uuid, i64, i64)> =
                    sqlx::query_as("SELECT insurer_id, premium_id, applied, credit FROM premium_payments WHERE id = $1")
                        .bind(payment)
                        .fetch_optional(&mut *tx)
                        .await?;
                let (insurer, premium, applied, credit) = row.ok_or(StoreError::NotFound("no such premium payment"))?;
                // Payments and refunds of one premium are serialised by its row.
                sqlx::query("UPDATE premiums SET version = version WHERE id = $1").bind(premium).execute(&mut *tx).await?;
                let (taken_credit, taken_applied): (i64, i64) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(from_credit), 0) AS BIGINT), CAST(COALESCE(SUM(from_applied), 0) AS BIGINT) \
                     FROM premium_refunds WHERE premium_payment_id = $1 AND status IN ('requested', 'completed')",
                )
                .bind(payment)
                .fetch_one(&mut *tx)
                .await?;
                let left = (applied - taken_applied, credit - taken_credit);
                let Some((from_credit, from_applied)) = invoice::refund_split(left.0, left.1, amount) else {
                    return Err(StoreError::Invalid {
                        field: "amount".into(),
                        reason: format!("must be 1 to {} (what the payment has left after other refunds)", left.0 + left.1),
                    });
                };
                sqlx::query(
                    "INSERT INTO premium_refunds (id, insurer_id, premium_payment_id, premium_id, amount, from_credit, from_applied, \
                     reason, status, requested_by, decided_by, decision_note, created_at, decided_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, NULL, NULL, $10, NULL)",
                )
                .bind(id)
                .bind(insurer)
                .bind(payment)
                .bind(premium)
                .bind(amount)
                .bind(from_credit)
                .bind(from_applied)
                .bind(reason)
                .bind(actor.user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
            .await
        });
        result?;
        self.premium_refund(id).await?.ok_or(StoreError::NotFound("no such premium refund"))
    }

    pub async fn premium_refund(&self, id: Uuid) -> Result<Option<PremiumRefund>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM premium_refunds WHERE id = $1");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?)
    }

    /// Approves (pays out) or rejects a requested premium refund; the approver must not be
    /// who asked. An approval that leaves the premium not fully paid claws back the commission
    /// earned on it within `clawback_days`.
    pub async fn decide_premium_refund(
        &self,
        id: Uuid,
        approve: bool,
        note: Option<&str>,
        clawback_days: u32,
        actor: &Actor,
    ) -> Result<PremiumRefund, StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let sql = format!("SELECT {COLUMNS} FROM premium_refunds WHERE id = $1");
                let refund: PremiumRefund = sqlx::query_as::<_, PremiumRefund>(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound("no such premium refund"))?;
                if refund.status != "requested" {
                    return Err(StoreError::Conflict(format!("the refund is already {}", refund.status)));
                }
                if refund.requested_by == actor.user_id {
                    return Err(StoreError::Conflict("a refund is approved by someone other than who asked for it".into()));
                }
                sqlx::query("UPDATE premiums SET version = version WHERE id = $1").bind(refund.premium_id).execute(&mut *tx).await?;
                let done = sqlx::query(
                    "UPDATE premium_refunds SET status = $1, decided_by = $2, decision_note = $3, decided_at = $4 \
                     WHERE id = $5 AND status = 'requested'",
                )
                .bind(if approve { "completed" } else { "rejected" })
                .bind(actor.user_id)
                .bind(note)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict("the refund was decided meanwhile".into()));
                }
                if approve {
                    let method: String = sqlx::query_scalar("SELECT method FROM premium_payments WHERE id = $1")
                        .bind(refund.premium_payment_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE id = $1");
                    let premium: Premium =
                        sqlx::query_as::<_, Premium>(sqlx::AssertSqlSafe(sql)).bind(refund.premium_id).fetch_one(&mut *tx).await?;
                    let paid = premium.paid - refund.from_applied;
                    let status = if premium.status == Status::Void.as_str() {
                        Status::Void
                    } else if paid >= premium.amount {
                        Status::Paid
                    } else if paid > 0 {
                        Status::PartiallyPaid
                    } else {
                        Status::Issued
                    };
                    sqlx::query("UPDATE premiums SET paid = $1, status = $2, version = version + 1 WHERE id = $3")
                        .bind(paid)
                        .bind(status.as_str())
                        .bind(premium.id)
                        .execute(&mut *tx)
                        .await?;
                    let method = Method::parse(&method).unwrap_or(Method::Cash);
                    let entry = ledger::refund_paid(method, Account::PremiumReceivable, refund.from_applied, refund.from_credit);
                    write_entry!(tx, premium.insurer_id, entry, Some(premium.id), Some(refund.premium_payment_id), Some(premium.holder_id))?;
                    let event = Event {
                        event_type: "billing.premium_refunded.v1",
                        aggregate_type: "premium_refund",
                        aggregate_id: refund.id,
                        tenant_id: premium.insurer_id,
                        payload: serde_json::json!({"refund_id": refund.id, "premium_id": premium.id, "policy_id": premium.policy_id,
                            "premium_payment_id": refund.premium_payment_id, "amount": refund.amount, "from_credit": refund.from_credit,
                            "from_applied": refund.from_applied, "method": method.as_str(), "currency": premium.currency,
                            "premium_status": status}),
                    };
                    write_outbox!(tx, actor, event)?;
                    if refund.from_applied > 0 && premium.paid >= premium.amount && paid < premium.amount {
                        let since = now - Duration::days(i64::from(clawback_days));
                        let reason = format!("premium refunded: {}", refund.reason);
                        claw_back!(tx, actor, premium.policy_id, since, now, reason.as_str())?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            .await
        });
        result?;
        self.premium_refund(id).await?.ok_or(StoreError::NotFound("no such premium refund"))
    }
}

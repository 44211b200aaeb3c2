//! Premiums, their payments, agents' tiers and rates, and commissions with their clawbacks.

use medcov_store::{WritePool, on_pool, write_outbox};
use serde::Serialize;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::{Actor, BillingStore, Event, NewPayment, StoreError, unique_violation, write_entry};
use crate::domain::invoice::{self, Status};
use crate::domain::ledger::{self, Account, Entry};

/// A policy period's premium.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Premium {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub plan_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    #[schema(example = "PRM-20261126-1A2B3C4D5E6F")]
    pub number: String,
    pub amount: i64,
    pub currency: String,
    /// `issued`, `partially_paid`, `paid` or `void`.
    pub status: String,
    pub paid: i64,
    #[schema(value_type = String, format = Date)]
    pub due_date: Date,
    pub void_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<OffsetDateTime>,
}

pub(crate) const PREMIUM_COLUMNS: &str = "id, insurer_id, policy_id, plan_id, holder_id, agent_id, number, amount, currency, status, \
     paid, due_date, void_reason, created_at, paid_at";

/// A premium payment.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PremiumPayment {
    pub id: Uuid,
    pub premium_id: Uuid,
    pub method: String,
    pub amount: i64,
    pub applied: i64,
    pub credit: i64,
    pub external_reference: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A commission, earned on a paid premium.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Commission {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub agent_id: Uuid,
    pub policy_id: Uuid,
    pub premium_id: Uuid,
    pub premium_amount: i64,
    /// Basis points of the premium.
    pub rate_bp: i32,
    pub amount: i64,
    /// `earned` or `clawed_back`.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub earned_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub clawed_back_at: Option<OffsetDateTime>,
    pub clawback_reason: Option<String>,
}

pub(crate) const COMMISSION_COLUMNS: &str = "id, insurer_id, agent_id, policy_id, premium_id, premium_amount, rate_bp, amount, status, \
     earned_at, clawed_back_at, clawback_reason";

/// A premium to invoice for a new policy period.
pub struct NewPremium {
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub plan_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub amount: i64,
    pub currency: String,
    pub due_date: Date,
}

fn premium_number(id: Uuid) -> String {
    let hex = id.simple().to_string().to_uppercase();
    let day = OffsetDateTime::now_utc().date();
    format!("PRM-{}{:02}{:02}-{}", day.year(), day.month() as u8, day.day(), &hex[20..])
}

/// Claws back, inside the transaction, every commission on `policy` earned since `since`:
/// marks it, reverses its ledger entry and emits `commission_clawed_back`.
macro_rules! claw_back {
    ($tx:expr, $actor:expr, $policy:expr, $since:expr, $now:expr, $reason:expr) => {
        async {
            let sql = format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE policy_id = $1 AND status = 'earned' AND earned_at >= $2");
            let earned: Vec<Commission> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($policy).bind($since).fetch_all(&mut *$tx).await?;
            for commission in earned {
                sqlx::query("UPDATE commissions SET status = 'clawed_back', clawed_back_at = $1, clawback_reason = $2 WHERE id = $3")
                    .bind($now)
                    .bind($reason)
                    .bind(commission.id)
                    .execute(&mut *$tx)
                    .await?;
                write_entry!($tx, commission.insurer_id, ledger::commission_clawed_back(commission.amount), Some(commission.premium_id), None::<Uuid>, Some(commission.agent_id))?;
                let event = Event {
                    event_type: "billing.commission_clawed_back.v1",
                    aggregate_type: "commission",
                    aggregate_id: commission.id,
                    tenant_id: commission.insurer_id,
                    payload: serde_json::json!({"commission_id": commission.id, "agent_id": commission.agent_id, "policy_id": $policy,
                        "amount": commission.amount, "reason": $reason}),
                };
                write_outbox!($tx, $actor, event)?;
            }
            Ok::<(), StoreError>(())
        }
        .await
    };
}
pub(crate) use claw_back;

impl BillingStore {
    /// Invoices a policy's premium (once per policy, and once per event with `inbox`).
    pub async fn create_premium(
        &self,
        new: &NewPremium,
        actor: &Actor,
        inbox: Option<(&'static str, Uuid)>,
    ) -> Result<(), StoreError> {
        let id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            if let Some((consumer, event)) = inbox
                && !medcov_bus::record_once!(tx, consumer, event)?
            {
                return Ok(());
            }
            let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM premiums WHERE policy_id = $1")
                .bind(new.policy_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                tx.commit().await?;
                return Ok(());
            }
            sqlx::query(
                "INSERT INTO premiums (id, insurer_id, policy_id, plan_id, holder_id, agent_id, number, amount, currency, status, \
                 paid, due_date, void_reason, version, created_at, paid_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'issued', 0, $10, NULL, 1, $11, NULL)",
            )
            .bind(id)
            .bind(new.insurer_id)
            .bind(new.policy_id)
            .bind(new.plan_id)
            .bind(new.holder_id)
            .bind(new.agent_id)
            .bind(premium_number(id))
            .bind(new.amount)
            .bind(&new.currency)
            .bind(new.due_date)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write_entry!(tx, new.insurer_id, ledger::premium_issued(new.amount), Some(id), None::<Uuid>, Some(new.holder_id))?;
            let event = Event {
                event_type: "billing.premium_invoiced.v1",
                aggregate_type: "premium",
                aggregate_id: id,
                tenant_id: new.insurer_id,
                payload: serde_json::json!({"premium_id": id, "policy_id": new.policy_id, "insurer_id": new.insurer_id,
                    "amount": new.amount, "currency": new.currency, "due_date": new.due_date.to_string()}),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        match result {
            Err(StoreError::Sqlx(e)) if unique_violation(&e) => Ok(()),
            other => other,
        }
    }

    pub async fn premium(&self, id: Uuid) -> Result<Option<Premium>, StoreError> {
        let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE id = $1");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?)
    }

    pub async fn premium_of_policy(&self, policy: Uuid) -> Result<Option<Premium>, StoreError> {
        let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE policy_id = $1");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(policy).fetch_optional(pool).await)?)
    }

    /// Premiums of an insurer (all with `None`), newest first.
    pub async fn premiums(
        &self,
        insurer: Option<Uuid>,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Premium>, StoreError> {
        let sql = format!(
            "SELECT {PREMIUM_COLUMNS} FROM premiums WHERE ($1 IS NULL OR insurer_id = $1) AND ($2 IS NULL OR status = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        );
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(insurer)
                .bind(status)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Records a premium payment once per Idempotency-Key. The payment that completes the
    /// premium emits `premium_paid` and earns the agent's commission, in the same transaction.
    pub async fn pay_premium(
        &self,
        premium_id: Uuid,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(PremiumPayment, bool), StoreError> {
        let premium = self.premium(premium_id).await?.ok_or(StoreError::NotFound("no such premium"))?;
        let (tenant, key) = (premium.insurer_id, payment.idempotency_key.as_str());
        if self.take_key(tenant, key, &payment.request_hash).await? == super::idempotency::Taken::Done {
            let found: PremiumPayment = on_pool!(&self.db, |pool| {
                sqlx::query_as(
                    "SELECT id, premium_id, method, amount, applied, credit, external_reference, created_at FROM premium_payments \
                     WHERE insurer_id = $1 AND idempotency_key = $2",
                )
                .bind(tenant)
                .bind(key)
                .fetch_one(pool)
                .await
            })?;
            return Ok((found, false));
        }
        let result = self.pay_premium_once(premium_id, payment, actor).await;
        if result.is_err() {
            self.release_key(tenant, key).await;
        }
        result
    }

    async fn pay_premium_once(
        &self,
        premium_id: Uuid,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(PremiumPayment, bool), StoreError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let outcome: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE premiums SET version = version WHERE id = $1").bind(premium_id).execute(&mut *tx).await?;
            let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE id = $1");
            let premium: Premium = sqlx::query_as::<_, Premium>(sqlx::AssertSqlSafe(sql))
                .bind(premium_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("no such premium"))?;
            if premium.status == Status::Void.as_str() {
                return Err(StoreError::Conflict("a void premium takes no payment".into()));
            }
            let (applied, credit) = invoice::apply(premium.amount - premium.paid, payment.amount);
            let paid = premium.paid + applied;
            let completes = paid >= premium.amount && premium.paid < premium.amount;
            let status = if paid >= premium.amount { Status::Paid } else if paid > 0 { Status::PartiallyPaid } else { Status::Issued };
            sqlx::query(
                "UPDATE premiums SET paid = $1, status = $2, paid_at = CASE WHEN $3 THEN $4 ELSE paid_at END, version = version + 1 \
                 WHERE id = $5",
            )
            .bind(paid)
            .bind(status.as_str())
            .bind(completes)
            .bind(now)
            .bind(premium.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO premium_payments (id, insurer_id, premium_id, method, amount, applied, credit, external_reference, \
                 idempotency_key, request_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id)
            .bind(premium.insurer_id)
            .bind(premium.id)
            .bind(payment.method.as_str())
            .bind(payment.amount)
            .bind(applied)
            .bind(credit)
            .bind(&payment.external_reference)
            .bind(&payment.idempotency_key)
            .bind(&payment.request_hash)
            .bind(actor.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            super::idempotency::key_done!(tx, premium.insurer_id, &payment.idempotency_key)?;
            let entry: Entry = ledger::payment_received(payment.method, Account::PremiumReceivable, applied, credit);
            write_entry!(tx, premium.insurer_id, entry, Some(premium.id), Some(id), Some(premium.holder_id))?;
            if completes {
                let event = Event {
                    event_type: "billing.premium_paid.v1",
                    aggregate_type: "premium",
                    aggregate_id: premium.id,
                    tenant_id: premium.insurer_id,
                    payload: serde_json::json!({"premium_id": premium.id, "policy_id": premium.policy_id, "insurer_id": premium.insurer_id,
                        "amount": premium.amount, "currency": premium.currency, "agent_id": premium.agent_id}),
                };
                write_outbox!(tx, actor, event)?;
                if let Some(agent) = premium.agent_id {
                    let tier: Option<String> = sqlx::query_scalar("SELECT tier FROM agents WHERE agent_id = $1 AND insurer_id = $2")
                        .bind(agent)
                        .bind(premium.insurer_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let rate: Option<i32> = sqlx::query_scalar(
                        "SELECT rate_bp FROM commission_rates WHERE insurer_id = $1 AND plan_id = $2 AND tier = $3",
                    )
                    .bind(premium.insurer_id)
                    .bind(premium.plan_id)
                    .bind(tier.as_deref().unwrap_or("standard"))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(rate) = rate.filter(|r| *r > 0) {
                        let amount = medcov_money::share(premium.amount, rate as u32);
                        let commission = Uuid::now_v7();
                        sqlx::query(
                            "INSERT INTO commissions (id, insurer_id, agent_id, policy_id, premium_id, premium_amount, rate_bp, amount, \
                             status, earned_at, clawed_back_at, clawback_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'earned', $9, NULL, NULL)",
                        )
                        .bind(commission)
                        .bind(premium.insurer_id)
                        .bind(agent)
                        .bind(premium.policy_id)
                        .bind(premium.id)
                        .bind(premium.amount)
                        .bind(rate)
                        .bind(amount)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        write_entry!(tx, premium.insurer_id, ledger::commission_earned(amount), Some(premium.id), None::<Uuid>, Some(agent))?;
                        let event = Event {
                            event_type: "billing.commission_earned.v1",
                            aggregate_type: "commission",
                            aggregate_id: commission,
                            tenant_id: premium.insurer_id,
                            payload: serde_json::json!({"commission_id": commission, "agent_id": agent, "policy_id": premium.policy_id,
                                "premium_id": premium.id, "rate_bp": rate, "amount": amount, "currency": premium.currency}),
                        };
                        write_outbox!(tx, actor, event)?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        match outcome {
            // See `pay_once`: the held key runs one request; this is the last guard.
            Err(StoreError::Sqlx(e)) if unique_violation(&e) => {
                return Err(StoreError::Conflict("a payment under this Idempotency-Key was recorded meanwhile".into()));
            }
            other => other?,
        }
        let found: PremiumPayment = on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, premium_id, method, amount, applied, credit, external_reference, created_at FROM premium_payments WHERE id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await
        })?;
        Ok((found, true))
    }

    /// A policy was cancelled: its unpaid premium is voided, and a commission earned within
    /// `clawback_days` is clawed back. Once per event with `inbox`.
    pub async fn policy_cancelled(
        &self,
        policy: Uuid,
        reason: &str,
        clawback_days: u32,
        actor: &Actor,
        inbox: Option<(&'static str, Uuid)>,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        on_pool!(&self.db, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                if let Some((consumer, event)) = inbox
                    && !medcov_bus::record_once!(tx, consumer, event)?
                {
                    return Ok(());
                }
                let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE policy_id = $1");
                let premium: Option<Premium> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(policy).fetch_optional(&mut *tx).await?;
                let Some(premium) = premium else {
                    tx.commit().await?;
                    return Ok(());
                };
                if premium.paid == 0 && premium.status == Status::Issued.as_str() {
                    sqlx::query(
                        "UPDATE premiums SET status = 'void', void_reason = $1, version = version + 1 WHERE id = $2",
                    )
                    .bind(reason)
                    .bind(premium.id)
                    .execute(&mut *tx)
                    .await?;
                    write_entry!(
                        tx,
                        premium.insurer_id,
                        ledger::premium_voided(premium.amount),
                        Some(premium.id),
                        None::<Uuid>,
                        Some(premium.holder_id)
                    )?;
                    let event = Event {
                        event_type: "billing.premium_voided.v1",
                        aggregate_type: "premium",
                        aggregate_id: premium.id,
                        tenant_id: premium.insurer_id,
                        payload: serde_json::json!({"premium_id": premium.id, "policy_id": policy, "reason": reason}),
                    };
                    write_outbox!(tx, actor, event)?;
                }
                let since = now - Duration::days(i64::from(clawback_days));
                claw_back!(tx, actor, policy, since, now, reason)?;
                tx.commit().await?;
                Ok(())
            }
            .await
        })
    }

    pub async fn set_agent(&self, agent: Uuid, insurer: Uuid, tier: &str) -> Result<(), StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO agents (agent_id, insurer_id, tier, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (agent_id, insurer_id) DO UPDATE SET tier = excluded.tier, updated_at = excluded.updated_at",
            )
            .bind(agent)
            .bind(insurer)
            .bind(tier)
            .bind(OffsetDateTime::now_utc())
            .execute(pool)
            .await
            .map(|_| ())
        })?)
    }

    pub async fn set_rate(&self, insurer: Uuid, plan: Uuid, tier: &str, rate_bp: u32) -> Result<(), StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO commission_rates (insurer_id, plan_id, tier, rate_bp) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (insurer_id, plan_id, tier) DO UPDATE SET rate_bp = excluded.rate_bp",
            )
            .bind(insurer)
            .bind(plan)
            .bind(tier)
            .bind(rate_bp as i32)
            .execute(pool)
            .await
            .map(|_| ())
        })?)
    }

    /// Commissions earned in `[from, to)`, for an agent and/or an insurer, oldest first.
    pub async fn commissions(
        &self,
        insurer: Option<Uuid>,
        agent: Option<Uuid>,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<Commission>, StoreError> {
        let sql = format!(
            "SELECT {COMMISSION_COLUMNS} FROM commissions WHERE ($1 IS NULL OR insurer_id = $1) AND ($2 IS NULL OR agent_id = $2) \
             AND earned_at >= $3 AND earned_at < $4 ORDER BY earned_at, id"
        );
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(insurer).bind(agent).bind(from).bind(to).fetch_all(pool).await
        })?)
    }
}

/// A payout to make.
#[derive(Debug, Clone, Copy)]
pub struct NewPayout<'a> {
    pub insurer: Uuid,
    pub agent: Uuid,
    pub method: crate::domain::ledger::Method,
    pub external_reference: &'a str,
    /// The Idempotency-Key and a digest of the request.
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// A payout of commissions to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Payout {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub agent_id: Uuid,
    pub amount: i64,
    pub method: String,
    pub external_reference: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl BillingStore {
    /// Pays an agent what they are owed: their earned, unpaid commissions, less those clawed
    /// back after they were paid. Once per Idempotency-Key (a repeat returns the first payout,
    /// `false`); 409 when nothing is owed.
    pub async fn pay_out(&self, payout: &NewPayout<'_>, actor: &Actor) -> Result<(Payout, bool), StoreError> {
        if self.take_key(payout.insurer, payout.key, payout.request_hash).await? == super::idempotency::Taken::Done {
            return self.paid_out_under(payout.insurer, payout.key).await.map(|p| (p, false));
        }
        let result = self.pay_out_once(payout, actor).await;
        if result.is_err() {
            self.release_key(payout.insurer, payout.key).await;
        }
        result
    }

    async fn paid_out_under(&self, insurer: Uuid, key: &str) -> Result<Payout, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, insurer_id, agent_id, amount, method, external_reference, created_at FROM commission_payouts \
                 WHERE insurer_id = $1 AND idempotency_key = $2",
            )
            .bind(insurer)
            .bind(key)
            .fetch_one(pool)
            .await
        })?)
    }

    async fn pay_out_once(&self, payout: &NewPayout<'_>, actor: &Actor) -> Result<(Payout, bool), StoreError> {
        let NewPayout { insurer, agent, method, external_reference, key, request_hash } = *payout;
        let id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        let outcome: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            // Claim the rows first: a concurrent payout of the same agent waits on them, then
            // finds nothing left to claim.
            sqlx::query(
                "UPDATE commissions SET payout_id = $1 WHERE insurer_id = $2 AND agent_id = $3 AND status = 'earned' AND payout_id IS NULL",
            )
            .bind(id)
            .bind(insurer)
            .bind(agent)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE commissions SET recovered_by = $1 WHERE insurer_id = $2 AND agent_id = $3 AND status = 'clawed_back' \
                 AND payout_id IS NOT NULL AND recovered_by IS NULL",
            )
            .bind(id)
            .bind(insurer)
            .bind(agent)
            .execute(&mut *tx)
            .await?;
            let (owed, recovered): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN payout_id = $1 AND status = 'earned' THEN amount ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN recovered_by = $1 THEN amount ELSE 0 END), 0) AS BIGINT) \
                 FROM commissions WHERE payout_id = $1 OR recovered_by = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let amount = owed - recovered;
            if amount <= 0 {
                // Dropping the transaction undoes the claims above.
                return Err(StoreError::Conflict(format!(
                    "nothing is owed to the agent (earned and unpaid {owed}, clawed back after payment {recovered})"
                )));
            }
            sqlx::query(
                "INSERT INTO commission_payouts (id, insurer_id, agent_id, amount, method, external_reference, idempotency_key, \
                 request_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id)
            .bind(insurer)
            .bind(agent)
            .bind(amount)
            .bind(method.as_str())
            .bind(external_reference)
            .bind(key)
            .bind(request_hash)
            .bind(actor.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            super::idempotency::key_done!(tx, insurer, key)?;
            write_entry!(tx, insurer, ledger::commission_paid_out(method, amount), None::<Uuid>, Some(id), Some(agent))?;
            let event = Event {
                event_type: "billing.commission_paid_out.v1",
                aggregate_type: "payout",
                aggregate_id: id,
                tenant_id: insurer,
                payload: serde_json::json!({"payout_id": id, "agent_id": agent, "insurer_id": insurer, "amount": amount,
                    "method": method.as_str(), "external_reference": external_reference}),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        outcome?;
        self.paid_out_under(insurer, key).await.map(|p| (p, true))
    }
}

//! Premiums: invoiced when a policy is created, paid once per Idempotency-Key (the payment
//! that completes one activates the policy and earns the selling agent's commission), voided
//! when the policy is cancelled unpaid.

use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::Tx;
use medcov_store::outbox::{self, Actor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::tenants::Profile;

use super::{BillingService, Handling, NewPayment, at_insurer, insurer_in_scope, missing};
use crate::domain::commission::{self, DEFAULT_TIER};
use crate::domain::ledger::{self, About, Account};
use crate::domain::premium::{NewPremium, Premium, PremiumPayment};
use crate::events::{CommissionClawedBack, CommissionEarned, PremiumInvoiced, PremiumPaid, PremiumVoided};
use crate::store::{self, Keyed};

/// A policy as billing invoices its premium.
#[derive(Debug, Clone)]
pub struct PolicyCreated {
    pub policy_id: Uuid,
    pub insurer_id: Uuid,
    pub plan_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub amount: i64,
    pub currency: String,
    /// The insurer's IANA time zone, when the event names it.
    pub insurer_timezone: Option<String>,
}

impl BillingService {
    /// Invoices a new policy's premium, due `billing.premium_due_s` after the insurer's today
    /// (once per policy, and once per event). The insurer's time zone comes with the event
    /// (older events without it: what billing knows of the insurer, else UTC).
    pub async fn invoice_premium(
        &self,
        policy: PolicyCreated,
        actor: &Actor,
        handling: Handling,
    ) -> Result<(), ApiError> {
        let now = OffsetDateTime::now_utc();
        let new = NewPremium {
            insurer_id: policy.insurer_id,
            policy_id: policy.policy_id,
            plan_id: policy.plan_id,
            holder_id: policy.holder_id,
            agent_id: policy.agent_id,
            amount: policy.amount,
            timezone: match policy.insurer_timezone {
                Some(zone) => {
                    let profile = Profile { currency: policy.currency.clone(), timezone: zone.clone() };
                    self.tenants.learn(policy.insurer_id, profile);
                    zone
                }
                None => self.tenants.known(policy.insurer_id).map_or_else(|| "UTC".to_owned(), |p| p.timezone),
            },
            currency: policy.currency,
            due_in: self.settings.premium_due,
        };
        let premium = Premium::invoice(new, Uuid::now_v7(), now);
        let mut tx = self.db.begin_write().await?;
        if !Self::first_time(&mut tx, Some(handling)).await? {
            return Ok(());
        }
        if store::premium_of_policy(&mut tx, premium.policy_id).await?.is_some() {
            tx.commit().await?;
            return Ok(());
        }
        match store::insert_premium(&mut tx, &premium).await {
            // Invoiced meanwhile by a concurrent delivery.
            Err(e) if e.is_duplicate() => return Ok(()),
            other => other?,
        }
        let about = About {
            tenant: premium.insurer_id,
            currency: &premium.currency,
            invoice: Some(premium.id),
            payment: None,
            party: Some(premium.holder_id),
        };
        store::append_entry(&mut tx, &about, &ledger::premium_issued(premium.amount), now).await?;
        outbox::write(&mut tx, actor, &PremiumInvoiced::of(&premium)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A premium the caller may see.
    pub async fn premium(&self, scope: &Scope, id: Uuid) -> Result<Premium, ApiError> {
        let found = store::premium(&self.db, id).await?;
        at_insurer(scope, |p: &Premium| p.insurer_id, found, "premium")
    }

    /// Premiums of the caller's insurer (all for the platform) with a status word (any with
    /// `None`), of one policy when asked, newest first.
    pub async fn premiums(
        &self,
        scope: &Scope,
        status: Option<&str>,
        policy: Option<Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Premium>, ApiError> {
        Ok(store::premiums(&self.db, insurer_in_scope(scope), status, policy, limit, offset).await?)
    }

    /// Records a payment of a premium the caller may see, once per Idempotency-Key (a repeat
    /// returns the first payment, `false`). The payment that completes the premium emits
    /// `premium_paid` and earns the agent's commission, in the same transaction.
    pub async fn pay_premium(
        &self,
        scope: &Scope,
        id: Uuid,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(PremiumPayment, bool), ApiError> {
        let premium = self.premium(scope, id).await?;
        let (tenant, key) = (premium.insurer_id, payment.idempotency_key.as_str());
        self.once(
            async || Ok(store::premium_payment_under_key(&self.db, tenant, key).await?),
            async || self.pay_premium_once(premium.id, payment, actor).await,
        )
        .await
    }

    async fn pay_premium_once(
        &self,
        premium: Uuid,
        asked: &NewPayment,
        actor: &Actor,
    ) -> Result<PremiumPayment, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        let premium = store::premium_for_update(&mut tx, premium)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such premium".into()))?;
        let settled = premium.settle(asked.amount)?;
        store::set_premium_paid(&mut tx, premium.id, settled.paid, settled.status, settled.completes.then_some(now))
            .await?;
        let payment = PremiumPayment {
            id: Uuid::now_v7(),
            insurer_id: premium.insurer_id,
            premium_id: premium.id,
            method: asked.method,
            amount: asked.amount,
            applied: settled.applied,
            credit: settled.credit,
            external_reference: asked.external_reference.clone(),
            created_at: now,
        };
        let keyed = Keyed { key: &asked.idempotency_key, request_hash: &asked.request_hash, created_by: actor.user_id };
        match store::insert_premium_payment(&mut tx, &payment, &keyed).await {
            // A payment under this key is recorded already (see `BillingService::once`).
            Err(e) if e.is_duplicate() => {
                return Err(ApiError::Conflict("a payment under this Idempotency-Key was recorded meanwhile".into()));
            }
            other => other?,
        }
        let about = About {
            tenant: premium.insurer_id,
            currency: &premium.currency,
            invoice: Some(premium.id),
            payment: Some(payment.id),
            party: Some(premium.holder_id),
        };
        let entry = ledger::payment_received(asked.method, Account::PremiumReceivable, settled.applied, settled.credit);
        store::append_entry(&mut tx, &about, &entry, now).await?;
        if settled.completes {
            outbox::write(&mut tx, actor, &PremiumPaid::of(&premium)).await?;
            if let Some(agent) = premium.agent_id {
                self.earn_commission(&mut tx, &premium, agent, actor, now).await?;
            }
        }
        tx.commit().await?;
        store::premium_payment(&self.db, payment.id).await?.ok_or_else(|| missing("the payment"))
    }

    /// The selling agent earns the plan's rate for their tier (`standard` unless set) of a
    /// premium just paid in full; no rate, no commission.
    async fn earn_commission(
        &self,
        tx: &mut Tx,
        premium: &Premium,
        agent: Uuid,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let tier = store::agent_tier(tx, agent, premium.insurer_id).await?;
        let rate =
            store::commission_rate(tx, premium.insurer_id, premium.plan_id, tier.as_deref().unwrap_or(DEFAULT_TIER))
                .await?;
        let Some(earned) = commission::earn(premium, agent, rate, Uuid::now_v7(), now) else {
            return Ok(());
        };
        store::insert_commission(tx, &earned).await?;
        let about = About {
            tenant: premium.insurer_id,
            currency: &premium.currency,
            invoice: Some(premium.id),
            payment: None,
            party: Some(agent),
        };
        store::append_entry(tx, &about, &ledger::commission_earned(earned.amount), now).await?;
        outbox::write(tx, actor, &CommissionEarned::of(&earned, &premium.currency)).await?;
        Ok(())
    }

    /// A policy was cancelled: its unpaid premium is voided, and a commission earned on it
    /// within `billing.commission_clawback_days` is clawed back. Once per event.
    pub async fn policy_cancelled(
        &self,
        policy: Uuid,
        reason: &str,
        actor: &Actor,
        handling: Handling,
    ) -> Result<(), ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        if !Self::first_time(&mut tx, Some(handling)).await? {
            return Ok(());
        }
        let Some(premium) = store::premium_of_policy(&mut tx, policy).await? else {
            tx.commit().await?;
            return Ok(());
        };
        if let Some(entry) = premium.cancel() {
            store::void_premium(&mut tx, premium.id, reason).await?;
            let about = About {
                tenant: premium.insurer_id,
                currency: &premium.currency,
                invoice: Some(premium.id),
                payment: None,
                party: Some(premium.holder_id),
            };
            store::append_entry(&mut tx, &about, &entry, now).await?;
            let voided = PremiumVoided {
                premium_id: premium.id,
                policy_id: policy,
                reason: reason.to_owned(),
                insurer_id: premium.insurer_id,
            };
            outbox::write(&mut tx, actor, &voided).await?;
        }
        self.claw_back(&mut tx, policy, reason, actor, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claws back, in `tx`, every commission on `policy` earned within the clawback period:
    /// marks it, reverses its journal entry and emits `commission_clawed_back`.
    pub(super) async fn claw_back(
        &self,
        tx: &mut Tx,
        policy: Uuid,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let earned = store::earned_commissions(tx, policy).await?;
        for commission in earned.iter().filter(|c| c.claws_back(now, self.settings.clawback_days)) {
            store::claw_back(tx, commission.id, now, reason).await?;
            let currency = store::premium_currency(tx, commission.premium_id).await?;
            let about = About {
                tenant: commission.insurer_id,
                currency: &currency,
                invoice: Some(commission.premium_id),
                payment: None,
                party: Some(commission.agent_id),
            };
            store::append_entry(tx, &about, &ledger::commission_clawed_back(commission.amount), now).await?;
            let clawed = CommissionClawedBack {
                commission_id: commission.id,
                agent_id: commission.agent_id,
                policy_id: policy,
                amount: commission.amount,
                reason: reason.to_owned(),
                insurer_id: commission.insurer_id,
            };
            outbox::write(tx, actor, &clawed).await?;
        }
        Ok(())
    }
}

//! Agents' tiers, commission rates, commission statements and payouts.

use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::outbox::{self, Actor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, insurer_in_scope, missing};
use crate::domain::commission::{self, Commission, Payout};
use crate::domain::ledger::{self, About, Method};
use crate::events::CommissionPaidOut;
use crate::store::{self, Keyed};

/// A payout to make.
#[derive(Debug, Clone)]
pub struct NewPayout {
    pub insurer: Uuid,
    pub agent: Uuid,
    pub method: Method,
    pub external_reference: String,
    pub idempotency_key: String,
    /// A digest of the request, so that another request under the key is told apart.
    pub request_hash: String,
}

fn no_such_insurer() -> ApiError {
    ApiError::NotFound("no such insurer".into())
}

impl BillingService {
    /// Sets an agent's tier at an insurer the caller may see.
    pub async fn set_agent_tier(&self, scope: &Scope, agent: Uuid, insurer: Uuid, tier: &str) -> Result<(), ApiError> {
        if !scope.covers_insurer(insurer) {
            return Err(no_such_insurer());
        }
        let tier = commission::tier(tier).map_err(Rejection::from)?;
        let mut tx = self.db.begin_write().await?;
        store::set_agent_tier(&mut tx, agent, insurer, &tier, OffsetDateTime::now_utc()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the commission rate of a plan for a tier of agents, at an insurer the caller may
    /// see.
    pub async fn set_commission_rate(
        &self,
        scope: &Scope,
        insurer: Uuid,
        plan: Uuid,
        tier: &str,
        rate_bp: u32,
    ) -> Result<(), ApiError> {
        if !scope.covers_insurer(insurer) {
            return Err(no_such_insurer());
        }
        let tier = commission::tier(tier).map_err(Rejection::from)?;
        let rate = commission::rate(rate_bp).map_err(Rejection::from)?;
        let rate = i32::try_from(rate).map_err(ApiError::internal)?;
        let mut tx = self.db.begin_write().await?;
        store::set_commission_rate(&mut tx, insurer, plan, &tier, rate).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A statement of the commissions earned in `[from, to)` at the caller's insurer (all for
    /// the platform), for one agent or all: the commissions, oldest first, and what of them is
    /// (earned and kept, clawed back).
    pub async fn commission_statement(
        &self,
        scope: &Scope,
        agent: Option<Uuid>,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<(Vec<Commission>, (i64, i64)), ApiError> {
        if to <= from {
            return Err(ApiError::field("to", "must be after from"));
        }
        let commissions = store::commissions(&self.db, insurer_in_scope(scope), agent, from, to).await?;
        let totals = commission::totals(&commissions);
        Ok((commissions, totals))
    }

    /// Pays an agent what they are owed at an insurer the caller may see: their earned, unpaid
    /// commissions, less those clawed back after they were paid. Once per Idempotency-Key (a
    /// repeat returns the first payout, `false`); 409 when nothing is owed.
    pub async fn pay_out(&self, scope: &Scope, payout: &NewPayout, actor: &Actor) -> Result<(Payout, bool), ApiError> {
        if !scope.covers_insurer(payout.insurer) {
            return Err(no_such_insurer());
        }
        let (tenant, key) = (payout.insurer, payout.idempotency_key.as_str());
        self.once(
            async || Ok(store::payout_under_key(&self.db, tenant, key).await?),
            async || {
                self.pay_out_once(payout, actor).await?;
                self.paid_out_under(tenant, key).await
            },
        )
        .await
    }

    /// The payout made under an insurer's Idempotency-Key.
    async fn paid_out_under(&self, insurer: Uuid, key: &str) -> Result<Payout, ApiError> {
        store::payout_under_key(&self.db, insurer, key).await?.ok_or_else(|| missing("the payout"))
    }

    async fn pay_out_once(&self, asked: &NewPayout, actor: &Actor) -> Result<(), ApiError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let mut tx = self.db.begin_write().await?;
        // Claim the rows first: a concurrent payout of the same agent waits on them, then finds
        // nothing left to claim. Dropping the transaction undoes the claims.
        let (owed, recovered, currency) = store::claim_for_payout(&mut tx, id, asked.insurer, asked.agent).await?;
        let amount = commission::payout(owed, recovered)?;
        let payout = Payout {
            id,
            insurer_id: asked.insurer,
            agent_id: asked.agent,
            amount,
            currency,
            method: asked.method,
            external_reference: asked.external_reference.clone(),
            created_at: now,
        };
        let keyed = Keyed { key: &asked.idempotency_key, request_hash: &asked.request_hash, created_by: actor.user_id };
        store::insert_payout(&mut tx, &payout, &keyed).await?;
        let about = About {
            tenant: asked.insurer,
            currency: &payout.currency,
            invoice: None,
            payment: Some(id),
            party: Some(asked.agent),
        };
        store::append_entry(&mut tx, &about, &ledger::commission_paid_out(asked.method, amount), now).await?;
        let paid_out = CommissionPaidOut {
            payout_id: id,
            agent_id: asked.agent,
            insurer_id: asked.insurer,
            amount,
            method: asked.method,
            external_reference: asked.external_reference.clone(),
        };
        outbox::write(&mut tx, actor, &paid_out).await?;
        tx.commit().await?;
        Ok(())
    }
}

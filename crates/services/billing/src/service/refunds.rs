//! Refunds of payments, of care and of premiums alike: one person asks, another approves, and
//! only the approval moves money, reversing the payment's ledger entries (credit first). What
//! the refund makes owed again depends on what was refunded: an invoice's share, or a premium
//! (whose commission is clawed back when the premium is no longer fully paid).

use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::Tx;
use medcov_store::outbox::{self, Actor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, missing};
use crate::domain::invoice::Payer;
use crate::domain::ledger::{self, About, Account};
use crate::domain::refund::{Asked, Kind, Refund, RefundStatus, Refundable};
use crate::events::{PremiumRefunded, RefundCompleted};
use crate::store;

/// Whether the caller's scope covers a tenant of a kind's books (a hospital's, an insurer's).
fn covers(scope: &Scope, kind: Kind, tenant: Uuid) -> bool {
    match kind {
        Kind::Care => scope.covers_hospital(tenant),
        Kind::Premium => scope.covers_insurer(tenant),
    }
}

fn not_found(noun: &str) -> ApiError {
    ApiError::NotFound(format!("no such {noun}"))
}

impl BillingService {
    /// Asks for a refund of part or all of a payment the caller may see; nothing moves until it
    /// is approved. Refused when more is asked than the payment has left after other refunds.
    pub async fn request_refund(
        &self,
        scope: &Scope,
        kind: Kind,
        payment: Uuid,
        amount: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<Refund, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        let paid = store::refundable_payment(&mut tx, kind, payment)
            .await?
            .filter(|p| covers(scope, kind, p.tenant_id))
            .ok_or_else(|| not_found(kind.payment_noun()))?;
        // Payments and refunds of one invoice or premium are serialised by its row.
        lock_owed(&mut tx, &paid).await?;
        let taken = store::refunds_taken(&mut tx, kind, payment).await?;
        let asked = Asked { id: Uuid::now_v7(), amount, reason: reason.to_owned(), by: actor.user_id, at: now };
        let refund = Refund::request(&paid, taken, asked)?;
        store::insert_refund(&mut tx, &refund).await?;
        tx.commit().await?;
        store::refund(&self.db, kind, refund.id).await?.ok_or_else(|| missing("the refund"))
    }

    /// A refund the caller may see.
    pub async fn refund(&self, scope: &Scope, kind: Kind, id: Uuid) -> Result<Refund, ApiError> {
        store::refund(&self.db, kind, id)
            .await?
            .filter(|r| covers(scope, kind, r.tenant_id))
            .ok_or_else(|| not_found(kind.refund_noun()))
    }

    /// Approves (pays out) or rejects a requested refund the caller may see. The person who
    /// asked decides nothing (409), and a refund is decided once.
    pub async fn decide_refund(
        &self,
        scope: &Scope,
        kind: Kind,
        id: Uuid,
        approve: bool,
        note: Option<&str>,
        actor: &Actor,
    ) -> Result<Refund, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        let refund = store::refund_for_update(&mut tx, kind, id)
            .await?
            .filter(|r| covers(scope, kind, r.tenant_id))
            .ok_or_else(|| not_found(kind.refund_noun()))?;
        let status = refund.decide(actor.user_id, approve)?;
        let paid = store::refundable_payment(&mut tx, kind, refund.payment_id)
            .await?
            .ok_or_else(|| missing("the refunded payment"))?;
        lock_owed(&mut tx, &paid).await?;
        if !store::decide_refund(&mut tx, id, status, actor.user_id, note, now).await? {
            return Err(ApiError::Conflict("the refund was decided meanwhile".into()));
        }
        if status == RefundStatus::Completed {
            match kind {
                Kind::Care => self.refund_care(&mut tx, &refund, &paid, actor, now).await?,
                Kind::Premium => self.refund_premium(&mut tx, &refund, &paid, actor, now).await?,
            }
        }
        tx.commit().await?;
        store::refund(&self.db, kind, id).await?.ok_or_else(|| missing("the refund"))
    }

    /// A care refund paid out: the invoice is owed again for what the payment had settled.
    async fn refund_care(
        &self,
        tx: &mut Tx,
        refund: &Refund,
        paid: &Refundable,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let invoice = store::invoice_for_update(tx, refund.owed_id).await?.ok_or_else(|| missing("the invoice"))?;
        let reopened = invoice.reopen(paid.payer, refund.from_applied);
        store::set_invoice_paid(tx, invoice.id, reopened.paid_patient, reopened.paid_insurer, reopened.status).await?;
        let entry = ledger::refund_paid(paid.method, paid.payer.receivable(), refund.from_applied, refund.from_credit);
        let about = About {
            tenant: invoice.hospital_id,
            currency: &invoice.currency,
            invoice: Some(invoice.id),
            payment: Some(refund.payment_id),
            party: (paid.payer == Payer::Patient).then_some(invoice.patient_id),
        };
        store::append_entry(tx, &about, &entry, now).await?;
        outbox::write(tx, actor, &RefundCompleted::of(refund, &invoice, paid.method, reopened.status)).await?;
        Ok(())
    }

    /// A premium refund paid out: the premium is owed again for what the payment had settled,
    /// and when that leaves a fully paid premium short, the commission earned on it within the
    /// clawback period is clawed back.
    async fn refund_premium(
        &self,
        tx: &mut Tx,
        refund: &Refund,
        paid: &Refundable,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let premium = store::premium_for_update(tx, refund.owed_id).await?.ok_or_else(|| missing("the premium"))?;
        let reopened = premium.reopen(refund.from_applied);
        store::set_premium_paid(tx, premium.id, reopened.paid, reopened.status, None).await?;
        let entry =
            ledger::refund_paid(paid.method, Account::PremiumReceivable, refund.from_applied, refund.from_credit);
        let about = About {
            tenant: premium.insurer_id,
            currency: &premium.currency,
            invoice: Some(premium.id),
            payment: Some(refund.payment_id),
            party: Some(premium.holder_id),
        };
        store::append_entry(tx, &about, &entry, now).await?;
        outbox::write(tx, actor, &PremiumRefunded::of(refund, &premium, paid.method, reopened.status)).await?;
        if reopened.short {
            let reason = format!("premium refunded: {}", refund.reason);
            self.claw_back(tx, premium.policy_id, &reason, actor, now).await?;
        }
        Ok(())
    }
}

/// Locks what a payment settled (the invoice or the premium) until the transaction ends.
async fn lock_owed(tx: &mut Tx, paid: &Refundable) -> Result<(), ApiError> {
    let found = match paid.kind {
        Kind::Care => store::invoice_for_update(tx, paid.owed_id).await?.is_some(),
        Kind::Premium => store::premium_for_update(tx, paid.owed_id).await?.is_some(),
    };
    if !found {
        return Err(missing(if paid.kind == Kind::Care { "the invoice" } else { "the premium" }));
    }
    Ok(())
}

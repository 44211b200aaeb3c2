//! Payments of invoices, by the patient or the insurer, each recorded once per
//! Idempotency-Key: a repeat of the same request answers the first payment, another request
//! under the key is 422, a repeat while the first runs is 409.

use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::outbox::{self, Actor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, missing};
use crate::domain::invoice::{Invoice, Payer, Payment};
use crate::domain::ledger::{self, About, Method};
use crate::events::PaymentCompleted;
use crate::store::{self, Keyed};

/// A payment to record.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub payer: Payer,
    pub method: Method,
    pub amount: i64,
    pub external_reference: Option<String>,
    pub idempotency_key: String,
    /// A digest of the request, so that another request under the key is told apart.
    pub request_hash: String,
}

impl BillingService {
    /// Records a payment of an invoice the caller may see, once per Idempotency-Key: a repeat
    /// of the same request returns the first payment (`false`). Partial payments leave the
    /// invoice `partially_paid`; what is more than owed becomes the payer's credit.
    pub async fn pay(
        &self,
        scope: &Scope,
        invoice: Uuid,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(Payment, bool), ApiError> {
        let invoice = self.invoice(scope, invoice).await?;
        self.pay_invoice(&invoice, payment, actor).await
    }

    pub(super) async fn pay_invoice(
        &self,
        invoice: &Invoice,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(Payment, bool), ApiError> {
        let (tenant, key) = (invoice.hospital_id, payment.idempotency_key.as_str());
        self.once(
            async || Ok(store::payment_under_key(&self.db, tenant, key).await?),
            async || self.pay_once(invoice.id, payment, actor).await,
        )
        .await
    }

    async fn pay_once(&self, invoice: Uuid, asked: &NewPayment, actor: &Actor) -> Result<Payment, ApiError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db.begin_write().await?;
        // Concurrent payments of one invoice apply one after the other.
        let invoice = store::invoice_for_update(&mut tx, invoice)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such invoice".into()))?;
        let settled = invoice.settle(asked.payer, asked.amount)?;
        store::set_invoice_paid(&mut tx, invoice.id, settled.paid_patient, settled.paid_insurer, settled.status)
            .await?;
        let payment = Payment {
            id: Uuid::now_v7(),
            hospital_id: invoice.hospital_id,
            invoice_id: invoice.id,
            payer: asked.payer,
            method: asked.method,
            amount: asked.amount,
            applied: settled.applied,
            credit: settled.credit,
            external_reference: asked.external_reference.clone(),
            created_at: now,
        };
        let keyed = Keyed { key: &asked.idempotency_key, request_hash: &asked.request_hash, created_by: actor.user_id };
        match store::insert_payment(&mut tx, &payment, &keyed).await {
            // The unique key on payments: a payment under this key is recorded already.
            Err(e) if e.is_duplicate() => {
                return Err(ApiError::Conflict("a payment under this Idempotency-Key was recorded meanwhile".into()));
            }
            other => other?,
        }
        let about = About {
            tenant: invoice.hospital_id,
            currency: &invoice.currency,
            invoice: Some(invoice.id),
            payment: Some(payment.id),
            party: (asked.payer == Payer::Patient).then_some(invoice.patient_id),
        };
        let entry = ledger::payment_received(asked.method, asked.payer.receivable(), settled.applied, settled.credit);
        store::append_entry(&mut tx, &about, &entry, now).await?;
        let completed = PaymentCompleted {
            payment_id: payment.id,
            invoice_id: invoice.id,
            number: invoice.number.clone(),
            hospital_id: invoice.hospital_id,
            payer: asked.payer,
            method: asked.method,
            amount: asked.amount,
            applied: settled.applied,
            credit: settled.credit,
            currency: invoice.currency.clone(),
            invoice_status: settled.status,
            claim_id: invoice.claim_id,
            insurer_settled: settled.insurer_settled,
        };
        outbox::write(&mut tx, actor, &completed).await?;
        tx.commit().await?;
        store::payment(&self.db, payment.id).await?.ok_or_else(|| missing("the payment"))
    }

    /// The payments of an invoice the caller may see, oldest first.
    pub async fn payments(&self, scope: &Scope, invoice: Uuid) -> Result<Vec<Payment>, ApiError> {
        let invoice = self.invoice(scope, invoice).await?;
        Ok(store::payments_of_invoice(&self.db, invoice.id).await?)
    }
}

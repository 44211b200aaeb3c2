//! Payments of invoices, by the patient or the insurer, and insurers' remittances settling
//! many invoices at once. Each is recorded once per Idempotency-Key: a repeat of the same
//! request answers the first payment, another request under the key is 422, a repeat while the
//! first runs is 409.

use medcov_domain::{Rejection, TextEnum};
use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::outbox::{self, Actor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BillingService, missing};
use crate::domain::invoice::{self, Invoice, Payer, Payment, Status};
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

/// One item of an insurer's remittance: the invoice (by number) and what it pays of it, with
/// the Idempotency-Key and digest of its own payment.
#[derive(Debug, Clone)]
pub struct RemittanceItem {
    pub invoice_number: String,
    pub amount: i64,
    pub idempotency_key: String,
    pub request_hash: String,
}

/// What a remittance settled, and what it could not apply (nothing was recorded for those).
#[derive(Debug, Clone, Default)]
pub struct RemittanceOutcome {
    /// (the invoice number, the payment).
    pub settled: Vec<(String, Payment)>,
    /// (the invoice number as sent, the amount, why).
    pub unmatched: Vec<(String, i64, String)>,
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

    async fn pay_invoice(
        &self,
        invoice: &Invoice,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(Payment, bool), ApiError> {
        let (tenant, key) = (invoice.hospital_id, payment.idempotency_key.as_str());
        self.once(
            tenant,
            key,
            &payment.request_hash,
            async || store::payment_under_key(&self.db, tenant, key).await?.ok_or_else(|| missing("the payment")),
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
            // The held Idempotency-Key lets only one request run; the unique key on payments is
            // the last guard should a crashed request's key have been taken again meanwhile.
            Err(e) if e.is_duplicate() => {
                return Err(ApiError::Conflict("a payment under this Idempotency-Key was recorded meanwhile".into()));
            }
            other => other?,
        }
        store::key_done(&mut tx, invoice.hospital_id, &asked.idempotency_key).await?;
        let about = About {
            tenant: invoice.hospital_id,
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

    /// Records an insurer's remittance at a hospital: each item pays the insurer share of one
    /// invoice, as its own payment under its own key. Items that match no issued invoice, or
    /// that the invoice refuses, are reported and not recorded.
    pub async fn remit(
        &self,
        scope: &Scope,
        hospital: Uuid,
        method: Method,
        external_reference: &str,
        items: Vec<RemittanceItem>,
        actor: &Actor,
    ) -> Result<RemittanceOutcome, ApiError> {
        if !scope.covers_hospital(hospital) {
            return Err(ApiError::NotFound("no such hospital".into()));
        }
        let amounts: Vec<i64> = items.iter().map(|i| i.amount).collect();
        Rejection::check(invoice::remittance_problems(method, &amounts))?;
        let mut outcome = RemittanceOutcome::default();
        for item in items {
            let (number, amount) = (item.invoice_number.clone(), item.amount);
            match self.remit_item(hospital, method, external_reference, item, actor).await? {
                Ok(settled) => outcome.settled.push(settled),
                Err(reason) => outcome.unmatched.push((number, amount, reason)),
            }
        }
        Ok(outcome)
    }

    /// One item of a remittance: its invoice and payment, or why it was not applied.
    async fn remit_item(
        &self,
        hospital: Uuid,
        method: Method,
        external_reference: &str,
        item: RemittanceItem,
        actor: &Actor,
    ) -> Result<Result<(String, Payment), String>, ApiError> {
        let Some(invoice) = store::invoice_by_number(&self.db, hospital, item.invoice_number.trim()).await? else {
            return Ok(Err("no such invoice at this hospital".into()));
        };
        if matches!(invoice.status, Status::Draft | Status::Void) {
            return Ok(Err(format!("the invoice is {}", invoice.status.as_str())));
        }
        let payment = NewPayment {
            payer: Payer::Insurer,
            method,
            amount: item.amount,
            external_reference: Some(external_reference.to_owned()),
            idempotency_key: item.idempotency_key,
            request_hash: item.request_hash,
        };
        match self.pay_invoice(&invoice, &payment, actor).await {
            Ok((payment, _)) => Ok(Ok((invoice.number, payment))),
            Err(ApiError::Conflict(reason)) => Ok(Err(reason)),
            Err(ApiError::Validation(errors)) => {
                Ok(Err(errors.into_iter().map(|e| e.reason).collect::<Vec<_>>().join("; ")))
            }
            Err(other) => Err(other),
        }
    }
}

//! Insurers' remittances: one payment settling the insurer shares of many invoices at once,
//! each item its own payment under a key derived from the remittance's.

use medcov_domain::{Rejection, TextEnum};
use medcov_http::ApiError;
use medcov_security::Scope;
use medcov_store::outbox::Actor;
use uuid::Uuid;

use super::{BillingService, NewPayment};
use crate::domain::invoice::{self, Payer, Payment, Status};
use crate::domain::ledger::Method;
use crate::store;

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

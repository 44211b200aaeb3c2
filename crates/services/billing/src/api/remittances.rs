//! `/remittances`: one insurer payment settling many invoices at once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use medcov_http::{ApiError, FieldError, Json};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::invoices::idempotency_key;
use super::{Billers, actor};
use crate::domain::invoice::{Payer, Status};
use crate::domain::ledger::Method;
use crate::store::{BillingStore, NewPayment, Payment, StoreError};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(remit)).with_state(store)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemittanceItem {
    /// The invoice number (the claim's reference).
    #[schema(example = "INV-20261120-9C1D2E3F4A5B")]
    pub invoice_number: String,
    pub amount: i64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hospital_id": "0190f5a4-0000-7000-8000-000000000001", "method": "insurer_remittance", "external_reference": "AAR-EFT-20261126",
    "items": [{"invoice_number": "INV-20261120-9C1D2E3F4A5B", "amount": 450000}]}))]
pub struct Remittance {
    pub hospital_id: Uuid,
    /// `insurer_remittance` or `bank_transfer`.
    pub method: Method,
    pub external_reference: String,
    pub items: Vec<RemittanceItem>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Settled {
    pub invoice_number: String,
    pub payment: Payment,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Unmatched {
    pub invoice_number: String,
    pub amount: i64,
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RemittanceResult {
    pub settled: Vec<Settled>,
    /// What could not be applied, and why; nothing was recorded for these.
    pub unmatched: Vec<Unmatched>,
}

/// Record an insurer's remittance: each item pays the insurer share of one invoice. Items that
/// match no issued invoice are reported, not recorded. The `Idempotency-Key` covers the whole
/// remittance: sending it again records nothing twice and answers the same.
#[utoipa::path(post, path = "/remittances", tag = "invoices", request_body = Remittance,
    params(("Idempotency-Key" = String, Header, description = "A key unique to this remittance")),
    responses((status = 200, body = RemittanceResult), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn remit(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    headers: HeaderMap,
    Json(input): Json<Remittance>,
) -> Result<Json<RemittanceResult>, ApiError> {
    let key = idempotency_key(&headers)?;
    if !principal.scope.covers_hospital(input.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let mut errors = Vec::new();
    if !matches!(input.method, Method::InsurerRemittance | Method::BankTransfer) {
        errors.push(FieldError::new("method", "an insurer pays by insurer_remittance or bank_transfer"));
    }
    if input.items.is_empty() || input.items.len() > 1_000 {
        errors.push(FieldError::new("items", "must list 1 to 1000 invoices"));
    }
    for (i, item) in input.items.iter().enumerate() {
        if !(1..=1_000_000_000_000).contains(&item.amount) {
            errors.push(FieldError::new(format!("items[{i}].amount"), "must be 1 to 10^12 minor units"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let who = actor(&principal);
    let mut result = RemittanceResult { settled: Vec::new(), unmatched: Vec::new() };
    for (i, item) in input.items.iter().enumerate() {
        let unmatched =
            |reason: String| Unmatched { invoice_number: item.invoice_number.clone(), amount: item.amount, reason };
        let Some(invoice) = store.invoice_by_number(input.hospital_id, item.invoice_number.trim()).await? else {
            result.unmatched.push(unmatched("no such invoice at this hospital".into()));
            continue;
        };
        if matches!(invoice.status, Status::Draft | Status::Void) {
            result.unmatched.push(unmatched(format!("the invoice is {}", invoice.status.as_str())));
            continue;
        }
        // Each item is its own payment under a key derived from the remittance's.
        let canonical =
            serde_json::to_string(&(&key, i, item, &input.external_reference)).map_err(ApiError::internal)?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let payment = NewPayment {
            payer: Payer::Insurer,
            method: input.method,
            amount: item.amount,
            external_reference: Some(input.external_reference.trim().to_owned()),
            idempotency_key: format!("{key}#{i}"),
            request_hash: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        };
        match store.pay(invoice.id, &payment, &who).await {
            Ok((payment, _)) => result.settled.push(Settled { invoice_number: invoice.number, payment }),
            Err(StoreError::Conflict(reason)) | Err(StoreError::Invalid { reason, .. }) => {
                result.unmatched.push(unmatched(reason))
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Json(result))
}

//! `/remittances`: one insurer payment settling many invoices at once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use medcov_http::{ApiError, Json};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::invoices::Payment;
use super::{Billers, actor, idempotency_key, request_hash};
use crate::domain::ledger::Method;
use crate::service::{self, BillingService};

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(remit)).with_state(service)
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    headers: HeaderMap,
    Json(input): Json<Remittance>,
) -> Result<Json<RemittanceResult>, ApiError> {
    let key = idempotency_key(&headers, &principal)?;
    // Each item is its own payment under a key derived from the remittance's.
    let mut items = Vec::with_capacity(input.items.len());
    for (i, item) in input.items.iter().enumerate() {
        items.push(service::RemittanceItem {
            invoice_number: item.invoice_number.clone(),
            amount: item.amount,
            idempotency_key: format!("{key}#{i}"),
            request_hash: request_hash(&(&key, i, item, &input.external_reference))?,
        });
    }
    let reference = input.external_reference.trim();
    let outcome =
        service.remit(&principal.scope, input.hospital_id, input.method, reference, items, &actor(&principal)).await?;
    Ok(Json(RemittanceResult {
        settled: outcome
            .settled
            .into_iter()
            .map(|(invoice_number, payment)| Settled { invoice_number, payment: payment.into() })
            .collect(),
        unmatched: outcome
            .unmatched
            .into_iter()
            .map(|(invoice_number, amount, reason)| Unmatched { invoice_number, amount, reason })
            .collect(),
    }))
}

//! The billing service's HTTP API. Each resource has its own module and router, merged here.
//!
//! - `prices`: the hospitals' price lists.
//! - `invoices`: invoices for care, their issue and voiding, and payments against them.
//! - `premiums`: policy premiums and their payments, agents' tiers, commission rates and
//!   statements.
//! - `remittances`: an insurer's payment settling many invoices.
//! - `refunds`: refunds of payments and of premium payments, asked by one person and approved
//!   by another.
//! - `reports`: cash by day, aged receivables, commissions by agent (JSON or CSV).
//! - `statements`: a patient's and an insurer's statements.
//! - `ledger`: the reconciliation of the journal with invoices and payments.

mod estimates;
mod invoices;
mod ledger;
mod premiums;
mod prices;
mod refunds;
mod remittances;
mod reports;
mod statements;

use std::sync::Arc;

use axum::http::HeaderMap;
use medcov_http::{ApiError, FieldError};
use medcov_runtime::actor;
use medcov_security::{Policy, Role};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::service::BillingService;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedCov billing service",
        description = "The billing service owns price lists, invoices, payments and the ledger. Reached through the gateway under `/api/billing/`.\n\nAmounts are integer minor units (cents) of the invoice's currency. Every money movement is a balanced journal entry; `GET /ledger/reconciliation` proves the journal and the invoices agree. A payment needs an `Idempotency-Key` header: a repeat with the same request returns the first payment, a repeat while the first still runs is 409, and another request under the same key is 422, so no payment is taken twice. Invoices are drafted from completed encounters (the `hospital.encounter_completed.v1` event) or by a billing clerk, and split between insurer and patient by the insurer's adjudication."
    ),
    components(schemas(medcov_http::Problem, medcov_http::FieldError))
)]
struct ApiDoc;

/// The routes; `insurance` answers the estimates of insured invoices.
pub fn router(service: Arc<BillingService>, insurance: medcov_mesh::Upstream) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(prices::router(service.clone()))
        .merge(invoices::router(service.clone()))
        .merge(estimates::router(service.clone(), insurance))
        .merge(premiums::router(service.clone()))
        .merge(refunds::premium_router(service.clone()))
        .merge(refunds::router(service.clone()))
        .merge(reports::router(service.clone()))
        .merge(remittances::router(service.clone()))
        .merge(statements::router(service.clone()))
        .merge(ledger::router(service))
}

/// Who prices, invoices and takes payments.
pub struct Billers;
impl Policy for Billers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::BillingClerk, Role::Service];
}

/// Who reads prices and invoices.
pub struct Readers;
impl Policy for Readers {
    const ROLES: &'static [Role] =
        &[Role::Admin, Role::BillingClerk, Role::HospitalClerk, Role::Auditor, Role::Service];
}

fn limit_offset(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let (limit, offset) = (limit.unwrap_or(50), offset.unwrap_or(0));
    let mut errors = Vec::new();
    if !(1..=200).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 200"));
    }
    if offset < 0 {
        errors.push(FieldError::new("offset", "must not be negative"));
    }
    if errors.is_empty() { Ok((limit, offset)) } else { Err(ApiError::Validation(errors)) }
}

/// The `Idempotency-Key` header a request that moves money must carry (428 without it).
fn idempotency_key(headers: &HeaderMap, caller: &medcov_security::Principal) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Err(ApiError::PreconditionRequired(
            "send an Idempotency-Key header (a UUID, say) so a retried payment is never taken twice".into(),
        ));
    };
    let key = value.to_str().unwrap_or("").trim().trim_matches('"');
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest {
            detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            errors: vec![FieldError::new("Idempotency-Key", "must be 1 to 255 visible ASCII characters")],
        });
    }
    // Keys belong to their caller: another clerk's key of the same name is another key, and
    // never replays the first clerk's payment.
    Ok(format!("{}:{key}", caller.id))
}

/// `Idempotency-Replayed: true` on the answer to a repeat, as the Idempotency-Key middleware
/// marks its replays: a repeat that reaches the handler (the middleware's store was down, say)
/// answers the same way.
fn replayed(repeat: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if repeat {
        headers.insert("idempotency-replayed", axum::http::HeaderValue::from_static("true"));
    }
    headers
}

/// The digest of a request that moves money, kept with its Idempotency-Key so another request
/// under the key is told apart.
fn request_hash(request: &impl serde::Serialize) -> Result<String, ApiError> {
    let canonical = serde_json::to_string(request).map_err(ApiError::internal)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// A reason given with a request: 1 to 500 characters once trimmed.
fn reason(text: &str) -> Result<&str, ApiError> {
    let reason = text.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::field("reason", "must be 1 to 500 characters"));
    }
    Ok(reason)
}

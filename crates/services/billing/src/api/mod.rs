//! The billing service's HTTP API. Each resource has its own module and router, merged here.
//!
//! - `prices`: the hospitals' price lists.
//! - `invoices`: invoices for care, their issue and voiding, and payments against them.
//! - `premiums`: policy premiums and their payments, agents' tiers, commission rates and
//!   statements.
//! - `remittances`: an insurer's payment settling many invoices.
//! - `refunds`: refunds of payments, asked by one person and approved by another.
//! - `reports`: cash by day, aged receivables, commissions by agent (JSON or CSV).
//! - `statements`: a patient's and an insurer's statements.
//! - `ledger`: the reconciliation of the journal with invoices and payments.

mod estimates;
mod invoices;
mod ledger;
mod premium_refunds;
mod premiums;
mod prices;
mod refunds;
mod remittances;
mod reports;
mod statements;

use std::sync::Arc;

use medcov_http::{ApiError, FieldError};
use medcov_security::{Policy, Principal, Role, Scope};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::store::BillingStore;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedCov billing service",
        description = "The billing service owns price lists, invoices, payments and the ledger. Reached through the gateway under `/api/billing/`.\n\nAmounts are integer minor units (cents) of the invoice's currency. Every money movement is a balanced journal entry; `GET /ledger/reconciliation` proves the journal and the invoices agree. A payment needs an `Idempotency-Key` header: a repeat with the same request returns the first payment, a repeat while the first still runs is 409, and another request under the same key is 422, so no payment is taken twice. Invoices are drafted from completed encounters (the `hospital.encounter_completed.v1` event) or by a billing clerk, and split between insurer and patient by the insurer's adjudication."
    ),
    components(schemas(medcov_http::Problem, medcov_http::FieldError))
)]
struct ApiDoc;

/// The routes; `clawback_days` is `billing.commission_clawback_days`; `insurance` answers the
/// estimates of insured invoices.
pub fn router(store: Arc<BillingStore>, clawback_days: u32, insurance: medcov_mesh::Upstream) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(prices::router(store.clone()))
        .merge(invoices::router(store.clone()))
        .merge(estimates::router(store.clone(), insurance))
        .merge(premiums::router(store.clone()))
        .merge(premium_refunds::router(store.clone(), clawback_days))
        .merge(refunds::router(store.clone()))
        .merge(reports::router(store.clone()))
        .merge(remittances::router(store.clone()))
        .merge(statements::router(store.clone()))
        .merge(ledger::router(store))
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

use medcov_runtime::actor;

/// The tenants (hospitals or the insurer) whose books a principal may see: `None` for all.
fn tenants_in_scope(principal: &Principal) -> Option<Vec<Uuid>> {
    match &principal.scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { insurer } => Some(vec![*insurer]),
        Scope::Own => Some(Vec::new()),
    }
}

/// The insurer a principal's premium and commission lists are limited to: `None` for all.
fn insurer_in_scope(principal: &Principal) -> Option<Uuid> {
    match &principal.scope {
        Scope::Platform => None,
        Scope::Insurer { insurer } => Some(*insurer),
        _ => Some(Uuid::nil()),
    }
}

/// The hospitals a principal may see: `None` for all of them.
fn hospitals_in_scope(principal: &Principal) -> Option<Vec<Uuid>> {
    match &principal.scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { .. } | Scope::Own => Some(Vec::new()),
    }
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

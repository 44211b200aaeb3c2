//! The insurance service's HTTP API. Each resource has its own module and router, merged here;
//! each module owns its wire types (request and response bodies, with their OpenAPI schemas
//! and examples) and converts them to and from the domain's records. Handlers check who is
//! calling, check what the request alone can show, and hand the work to the service layer.
//!
//! - `insurers`: the tenants.
//! - `plans`: plans and their versions.
//! - `policies`: policies, their members, status changes and renewals.
//! - `eligibility`: is a member covered, for what, and what would they pay.
//! - `preauth`: pre-authorisation requests and decisions.
//! - `/sagas` (from `medcov_runtime::sagas`): the flows this service orchestrates (the policy sale).
//! - `claims`: submission, adjudication, review, overrides, reversal, payment.

mod claims;
mod eligibility;
mod insurers;
mod plans;
mod policies;
mod preauth;

use std::sync::Arc;

use medcov_http::{ApiError, FieldError};
use medcov_security::{Policy, Principal, Role, Scope};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::service::InsuranceService;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedCov insurance service",
        description = "The insurance service owns insurers, plans, policies and members, eligibility, pre-authorisations, claims and accumulators. Reached through the gateway under `/api/insurance/`.\n\nAmounts are integer minor units (cents) of the plan's currency. Every adjudicated line says where each cent landed (deductible, co-payment, co-insurance, over a limit, not covered) and why, with a reason code: `no_active_policy`, `member_inactive`, `not_covered`, `excluded_service`, `excluded_diagnosis`, `waiting_period`, `limit_reached`, `ceiling_reached`, `preauth_missing`, `out_of_network`, `duplicate_line`. Records outside the caller's insurer (or, for hospital staff, their hospitals) do not exist for them (404)."
    ),
    components(schemas(medcov_http::Problem, medcov_http::FieldError))
)]
struct ApiDoc;

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(insurers::router(service.clone()))
        .merge(plans::router(service.clone()))
        .merge(policies::router(service.clone()))
        .merge(eligibility::router(service.clone()))
        .merge(preauth::router(service.clone()))
        .merge(medcov_runtime::sagas::router(service.database().clone()))
        .merge(claims::router(service))
}

/// Platform administrators.
pub struct PlatformAdmins;
impl Policy for PlatformAdmins {
    const ROLES: &'static [Role] = &[Role::Admin];
    const PLATFORM_ONLY: bool = true;
}

/// Who writes plans and changes policy status: insurer administrators.
pub struct InsurerAdmins;
impl Policy for InsurerAdmins {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Service];
}

/// Who sells policies.
pub struct Sellers;
impl Policy for Sellers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Agent];
}

/// Who reads plans and policies.
pub struct InsurerStaff;
impl Policy for InsurerStaff {
    const ROLES: &'static [Role] =
        &[Role::Admin, Role::ClaimsOfficer, Role::Agent, Role::BillingClerk, Role::Auditor, Role::Service];
}

/// Who decides claims and pre-authorisations.
pub struct ClaimsOfficers;
impl Policy for ClaimsOfficers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::ClaimsOfficer];
}

use medcov_runtime::actor;

/// The insurer a caller's lists are limited to: `None` for the platform.
fn own_insurer(principal: &Principal) -> Result<Option<Uuid>, ApiError> {
    match principal.scope {
        Scope::Platform => Ok(None),
        Scope::Insurer { insurer } => Ok(Some(insurer)),
        // Hospital staff and members hold insurer roles only on paper; their lists are empty.
        _ => Ok(Some(Uuid::nil())),
    }
}

/// Whether a record of this insurer and (for claims and approvals) hospital is visible.
fn visible(principal: &Principal, insurer: Uuid, hospital: Option<Uuid>) -> bool {
    principal.scope.covers_insurer(insurer) || hospital.is_some_and(|h| principal.scope.covers_hospital(h))
}

fn limit_offset(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    let offset = offset.unwrap_or(0);
    let mut errors = Vec::new();
    if !(1..=200).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 200"));
    }
    if offset < 0 {
        errors.push(FieldError::new("offset", "must not be negative"));
    }
    if errors.is_empty() { Ok((limit, offset)) } else { Err(ApiError::Validation(errors)) }
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

//! The hospital service's HTTP API. Each resource has its own module and router, merged here.
//!
//! - `hospitals`: the tenants.
//! - `patients`: registration, search, changes, history.
//! - `schedule`: practitioners, appointments, free slots.
//! - `encounters`: the service catalog, and the care given in an encounter.
//! - `access`: the patient-record access log, for auditors.

mod access;
mod encounters;
mod hospitals;
mod patients;
mod schedule;

use std::sync::Arc;

use medcov_security::{Policy, Principal, Role, Scope};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::store::HospitalStore;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedCov hospital service",
        description = "The hospital service owns hospitals, practitioners, patients, appointments and encounters. Reached through the gateway under `/api/hospital/`. Every read and write of a patient record is written to an access log; patient records outside the caller's hospitals do not exist for them (404)."
    ),
    components(schemas(medcov_http::Problem, medcov_http::FieldError))
)]
struct ApiDoc;

pub fn router(store: Arc<HospitalStore>) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(hospitals::router(store.clone()))
        .merge(patients::router(store.clone()))
        .merge(schedule::router(store.clone()))
        .merge(encounters::router(store.clone()))
        .merge(access::router(store))
}

/// Who registers and changes patients.
pub struct Registrars;
impl Policy for Registrars {
    const ROLES: &'static [Role] = &[Role::Admin, Role::HospitalClerk];
}

/// Who reads patient records.
pub struct Readers;
impl Policy for Readers {
    const ROLES: &'static [Role] =
        &[Role::Admin, Role::HospitalClerk, Role::Clinician, Role::BillingClerk, Role::Auditor];
}

/// Who reads the access log.
pub struct Auditors;
impl Policy for Auditors {
    const ROLES: &'static [Role] = &[Role::Auditor, Role::Admin];
}

/// Platform administrators.
pub struct PlatformAdmins;
impl Policy for PlatformAdmins {
    const ROLES: &'static [Role] = &[Role::Admin];
    const PLATFORM_ONLY: bool = true;
}

/// The hospitals a principal may see: `None` for all of them.
fn hospitals_in_scope(principal: &Principal) -> Option<Vec<Uuid>> {
    match &principal.scope {
        Scope::Platform => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        Scope::Insurer { .. } | Scope::Own => Some(Vec::new()),
    }
}

use medcov_runtime::actor;

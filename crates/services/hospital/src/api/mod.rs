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

use axum::http::{HeaderMap, header};
use medcov_http::{ApiError, FieldError};
use medcov_security::{Policy, Role};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::service::HospitalService;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedCov hospital service",
        description = "The hospital service owns hospitals, practitioners, patients, appointments and encounters. Reached through the gateway under `/api/hospital/`. Every read and write of a patient record is written to an access log; patient records outside the caller's hospitals do not exist for them (404)."
    ),
    components(schemas(medcov_http::Problem, medcov_http::FieldError))
)]
struct ApiDoc;

pub fn router(service: Arc<HospitalService>) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(hospitals::router(service.clone()))
        .merge(patients::router(service.clone()))
        .merge(schedule::router(service.clone()))
        .merge(encounters::router(service.clone()))
        .merge(access::router(service))
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

/// The version in `If-Match`, required on every change.
fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::PreconditionRequired(
            "send If-Match with the ETag of the record you read, so no change is lost".into(),
        ));
    };
    let text = value.to_str().unwrap_or("").trim().trim_start_matches("W/").trim_matches('"');
    text.parse().map_err(|_| ApiError::BadRequest {
        detail: "If-Match must be the ETag of the record, such as \"3\"".into(),
        errors: vec![FieldError::new("If-Match", "must be an ETag returned by this API")],
    })
}

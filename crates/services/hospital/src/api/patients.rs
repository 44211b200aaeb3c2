//! `/patients`: registration, search, changes and history.
//!
//! Reads and writes are scoped in the query or right after it: a patient of another hospital
//! is "not found". Every record returned or changed is written to the access log.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medcov_http::{ApiError, FieldError, Json, Page, Path, Query};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Readers, Registrars, if_match};
use crate::domain::coverage::Coverage;
use crate::domain::patient::{
    HistoryEntry, Identifier, MemberNumber, Patient, PatientDetails, PatientEdit, PatientStatus, Search, Sex,
};
use crate::service::HospitalService;

pub fn router(service: Arc<HospitalService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register_patient, search_patients))
        .routes(routes!(get_patient, update_patient))
        .routes(routes!(patient_history))
        .routes(routes!(patient_coverage))
        .with_state(service)
}

/// A patient to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hospital_id": "0190f5a4-0000-7000-8000-000000000001", "given_name": "Amina", "family_name": "Okafor", "date_of_birth": "1984-03-09", "sex": "female", "phone": "+254 712 345678", "email": "amina.okafor@example.org", "identifiers": [{"kind": "national_id", "value": "27845123"}], "member_numbers": [{"insurer_id": "0190f5a4-0000-7000-8000-0000000000aa", "member_number": "MC-0000123-4"}]}))]
pub struct NewPatient {
    pub hospital_id: Uuid,
    #[schema(example = "Amina")]
    pub given_name: String,
    #[schema(example = "Okafor")]
    pub family_name: String,
    #[schema(value_type = String, format = Date, example = "1984-03-09")]
    pub date_of_birth: Date,
    pub sex: Sex,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    #[serde(default)]
    pub member_numbers: Vec<MemberNumber>,
}

/// A change to a record: fields left out keep their value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone": "+254 722 000111", "email": "amina@example.org"}))]
pub struct PatientChange {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<Date>,
    pub sex: Option<Sex>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub identifiers: Option<Vec<Identifier>>,
    pub member_numbers: Option<Vec<MemberNumber>>,
    /// `inactive` deactivates; `deceased` needs `deceased_on`. Records are never deleted.
    pub status: Option<PatientStatus>,
    #[schema(value_type = Option<String>, format = Date)]
    pub deceased_on: Option<Date>,
}

impl From<NewPatient> for PatientDetails {
    fn from(input: NewPatient) -> Self {
        PatientDetails {
            given_name: input.given_name,
            family_name: input.family_name,
            date_of_birth: input.date_of_birth,
            sex: input.sex,
            phone: input.phone,
            email: input.email,
            identifiers: input.identifiers,
            member_numbers: input.member_numbers,
            status: PatientStatus::Active,
            deceased_on: None,
        }
    }
}

impl From<PatientChange> for PatientEdit {
    fn from(change: PatientChange) -> Self {
        PatientEdit {
            given_name: change.given_name,
            family_name: change.family_name,
            date_of_birth: change.date_of_birth,
            sex: change.sex,
            phone: change.phone,
            email: change.email,
            identifiers: change.identifiers,
            member_numbers: change.member_numbers,
            status: change.status,
            deceased_on: change.deceased_on,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegisterParams {
    /// Register even though a patient with the same name and date of birth exists.
    #[serde(default)]
    allow_duplicate: bool,
}

/// A patient record as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Patient)]
pub struct PatientView {
    pub id: Uuid,
    pub hospital_id: Uuid,
    /// Medical record number, unique in the hospital, with a check digit. Numbers follow the
    /// order of registration; with PostgreSQL a registration that fails once numbered (a lost
    /// connection, say) leaves its number unused, so numbers may skip. A refused duplicate takes
    /// none.
    #[schema(example = "SMG-00000174")]
    pub mrn: String,
    #[serde(flatten)]
    pub details: PatientDetails,
    /// Send it back as `If-Match: "<version>"` when changing the record.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Patient> for PatientView {
    fn from(p: Patient) -> Self {
        PatientView {
            id: p.id,
            hospital_id: p.hospital_id,
            mrn: p.mrn,
            details: p.details,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// One version of a patient record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryView {
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: OffsetDateTime,
    pub changed_by: Uuid,
    pub request_id: Option<String>,
    /// The record as it was at that version.
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

impl From<HistoryEntry> for HistoryView {
    fn from(h: HistoryEntry) -> Self {
        HistoryView {
            version: h.version,
            changed_at: h.changed_at,
            changed_by: h.changed_by,
            request_id: h.request_id,
            record: h.record,
        }
    }
}

/// What an insurer answered about one member number.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Coverage)]
pub struct CoverageView {
    pub member_number: String,
    /// `covered`, `not_covered`, `unknown` (no such member) or `invalid` (check digits).
    pub status: String,
    /// Why not, when not covered.
    pub reason: Option<String>,
    pub insurer_id: Option<Uuid>,
    pub policy_id: Option<Uuid>,
    /// The day the insurer answered for.
    #[schema(value_type = String, format = Date)]
    pub checked_on: Date,
}

impl From<Coverage> for CoverageView {
    fn from(c: Coverage) -> Self {
        CoverageView {
            member_number: c.member_number,
            status: c.status,
            reason: c.reason,
            insurer_id: c.insurer_id,
            policy_id: c.policy_id,
            checked_on: c.checked_on,
        }
    }
}

fn with_etag(status: StatusCode, patient: Patient) -> Response {
    let version = patient.version;
    let mut response = (status, Json(PatientView::from(patient))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Register a patient. The medical record number is assigned here. A patient with the same
/// name and date of birth in the hospital is refused as a possible duplicate (409, naming
/// their record numbers) unless `allow_duplicate=true`; registrations of one person arriving
/// at the same time are checked one after the other, so one is registered and the others
/// refused.
#[utoipa::path(post, path = "/patients", tag = "patients", params(RegisterParams), request_body = NewPatient,
    responses(
        (status = 201, body = PatientView, headers(("ETag" = String))),
        (status = 404, description = "No such hospital in your scope.", body = medcov_http::Problem),
        (status = 409, description = "Possible duplicate.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn register_patient(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Query(params): Query<RegisterParams>,
    Json(input): Json<NewPatient>,
) -> Result<Response, ApiError> {
    let hospital_id = input.hospital_id;
    let patient = service.register_patient(&principal, hospital_id, input.into(), params.allow_duplicate).await?;
    Ok(with_etag(StatusCode::CREATED, patient))
}

/// One patient record (the read is logged).
#[utoipa::path(get, path = "/patients/{id}", tag = "patients",
    responses((status = 200, body = PatientView, headers(("ETag" = String))), (status = 404, body = medcov_http::Problem)))]
async fn get_patient(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    Ok(with_etag(StatusCode::OK, service.read_patient(&principal, id).await?))
}

/// What the insurers answered about the member numbers on a record: `covered`, or why not
/// (`not_covered` with the reason, `unknown`, `invalid`). Filled in shortly after the record
/// is registered or its member numbers change (the read is logged).
#[utoipa::path(get, path = "/patients/{id}/coverage", tag = "patients",
    responses((status = 200, body = Page<CoverageView>), (status = 404, body = medcov_http::Problem)))]
async fn patient_coverage(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Page<CoverageView>>, ApiError> {
    let answers = service.patient_coverage(&principal, id).await?;
    Ok(Json(Page::whole(answers).map(CoverageView::from)))
}

/// Change a record. `If-Match` with the ETag you read is required; a stale one gets 412.
#[utoipa::path(patch, path = "/patients/{id}", tag = "patients", request_body = PatientChange,
    params(("If-Match" = String, Header, description = "The ETag of the record as you read it.")),
    responses(
        (status = 200, body = PatientView, headers(("ETag" = String))),
        (status = 404, body = medcov_http::Problem),
        (status = 412, description = "Changed since you read it.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
        (status = 428, description = "If-Match is missing.", body = medcov_http::Problem),
    ))]
async fn update_patient(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<PatientChange>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let updated = service.update_patient(&principal, id, expected, change.into()).await?;
    Ok(with_etag(StatusCode::OK, updated))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Only this hospital (it must be in your scope).
    hospital_id: Option<Uuid>,
    /// A prefix of the family or given name; case and accents do not matter.
    name: Option<String>,
    #[param(value_type = Option<String>, format = Date)]
    date_of_birth: Option<Date>,
    /// An exact medical record number.
    mrn: Option<String>,
    /// An exact national id, passport or other identifier.
    identifier: Option<String>,
    /// An exact insurance member number.
    member_number: Option<String>,
    /// At most this many (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Skip this many (0 to 10000; the `paging.next_offset` of the previous page).
    #[param(minimum = 0, maximum = 10000)]
    offset: Option<i64>,
}

/// Find patients in your hospitals by name prefix, date of birth, MRN, identifier or member
/// number (every given criterion must match), by family then given name. Each record returned
/// counts as a read in the access log.
#[utoipa::path(get, path = "/patients", tag = "patients", params(SearchParams),
    responses((status = 200, body = Page<PatientView>), (status = 422, body = medcov_http::Problem)))]
async fn search_patients(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(params): Query<SearchParams>,
) -> Result<Json<Page<PatientView>>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    let offset = params.offset.unwrap_or(0);
    let mut errors = Vec::new();
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    if !(0..=10_000).contains(&offset) {
        errors.push(FieldError::new("offset", "must be between 0 and 10000"));
    }
    if params.name.as_deref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > 100) {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let search = Search {
        name: params.name,
        date_of_birth: params.date_of_birth,
        mrn: params.mrn,
        identifier: params.identifier,
        member_number: params.member_number,
    };
    let found = service.search_patients(&principal, params.hospital_id, &search, (limit, offset)).await?;
    Ok(Json(Page::offset(found, limit, offset).map(PatientView::from)))
}

/// Every version of a record, oldest first.
#[utoipa::path(get, path = "/patients/{id}/history", tag = "patients",
    responses((status = 200, body = Page<HistoryView>), (status = 404, body = medcov_http::Problem)))]
async fn patient_history(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Page<HistoryView>>, ApiError> {
    let history = service.patient_history(&principal, id).await?;
    Ok(Json(Page::whole(history).map(HistoryView::from)))
}

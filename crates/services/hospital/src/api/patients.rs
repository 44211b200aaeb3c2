//! `/patients`: registration, search, changes and history.
//!
//! Reads and writes are scoped in the query or right after it: a patient of another hospital
//! is "not found". Every record returned or changed is written to the access log.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::{Authorized, Principal};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Readers, Registrars, actor, hospitals_in_scope};
use crate::domain::patient::{Identifier, MemberNumber, PatientDetails, PatientStatus, Sex};
use crate::store::{HistoryEntry, HospitalStore, Patient, Search, StoreError};

pub fn router(store: Arc<HospitalStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register_patient, search_patients))
        .routes(routes!(get_patient, update_patient))
        .routes(routes!(patient_history))
        .routes(routes!(patient_coverage))
        .with_state(store)
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegisterParams {
    /// Register even though a patient with the same name and date of birth exists.
    #[serde(default)]
    allow_duplicate: bool,
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn with_etag(status: StatusCode, patient: &Patient) -> Response {
    let mut response = (status, Json(patient)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", patient.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Register a patient. The medical record number is assigned here. A patient with the same
/// name and date of birth in the hospital is refused as a possible duplicate (409, naming
/// their record numbers) unless `allow_duplicate=true`.
#[utoipa::path(post, path = "/patients", tag = "patients", params(RegisterParams), request_body = NewPatient,
    responses(
        (status = 201, body = Patient, headers(("ETag" = String))),
        (status = 404, description = "No such hospital in your scope.", body = medcov_http::Problem),
        (status = 409, description = "Possible duplicate.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn register_patient(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Query(params): Query<RegisterParams>,
    Json(input): Json<NewPatient>,
) -> Result<Response, ApiError> {
    if !principal.scope.covers_hospital(input.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let details = PatientDetails {
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
    .tidy();
    let errors = details.validate(today());
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let patient = store
        .register_patient(Uuid::now_v7(), input.hospital_id, &details, &actor(&principal), params.allow_duplicate)
        .await
        .map_err(|e| match e {
            StoreError::UnknownHospital => ApiError::NotFound("no such hospital".into()),
            StoreError::PossibleDuplicates(found) => {
                let mrns: Vec<String> = found.into_iter().map(|(_, mrn)| mrn).collect();
                ApiError::Conflict(format!(
                    "possible duplicate of {} (same name and date of birth); check, then resend with allow_duplicate=true to register anyway",
                    mrns.join(", ")
                ))
            }
            other => ApiError::internal(other),
        })?;
    Ok(with_etag(StatusCode::CREATED, &patient))
}

/// How long a cached patient record may live; writes invalidate it at once.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// A record the principal may see, or "not found". Reads go through the cache; the scope check
/// runs on every read, cached or not.
async fn visible(store: &HospitalStore, principal: &Principal, id: Uuid) -> Result<Patient, ApiError> {
    let tags = crate::store::patient_tag(id);
    let key = format!("hospital:patient:{id}");
    let patient = medcov_cache::read_through(store.cache(), &key, &tags, CACHE_TTL, store.patient(id))
        .await
        .map_err(ApiError::internal)?;
    patient
        .filter(|p| principal.scope.covers_hospital(p.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such patient".into()))
}

/// One patient record (the read is logged).
#[utoipa::path(get, path = "/patients/{id}", tag = "patients",
    responses((status = 200, body = Patient, headers(("ETag" = String))), (status = 404, body = medcov_http::Problem)))]
async fn get_patient(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let patient = visible(&store, &principal, id).await?;
    store
        .log_reads(&actor(&principal), &[(patient.id, patient.hospital_id)], "read")
        .await
        .map_err(ApiError::internal)?;
    Ok(with_etag(StatusCode::OK, &patient))
}

/// What the insurers answered about the member numbers on a record: `covered`, or why not
/// (`not_covered` with the reason, `unknown`, `invalid`). Filled in shortly after the record
/// is registered or its member numbers change (the read is logged).
#[utoipa::path(get, path = "/patients/{id}/coverage", tag = "patients",
    responses((status = 200, body = Vec<crate::store::coverage::Coverage>), (status = 404, body = medcov_http::Problem)))]
async fn patient_coverage(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<crate::store::coverage::Coverage>>, ApiError> {
    let patient = visible(&store, &principal, id).await?;
    store
        .log_reads(&actor(&principal), &[(patient.id, patient.hospital_id)], "coverage_read")
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(store.coverage(patient.id).await.map_err(ApiError::internal)?))
}

/// Change a record. `If-Match` with the ETag you read is required; a stale one gets 412.
#[utoipa::path(patch, path = "/patients/{id}", tag = "patients", request_body = PatientChange,
    params(("If-Match" = String, Header, description = "The ETag of the record as you read it.")),
    responses(
        (status = 200, body = Patient, headers(("ETag" = String))),
        (status = 404, body = medcov_http::Problem),
        (status = 412, description = "Changed since you read it.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
        (status = 428, description = "If-Match is missing.", body = medcov_http::Problem),
    ))]
async fn update_patient(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<PatientChange>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let current = visible(&store, &principal, id).await?;
    if current.version != expected {
        return Err(ApiError::PreconditionFailed("the record changed since you read it; read it again".into()));
    }
    let mut details = current.details.clone();
    if let Some(v) = change.given_name {
        details.given_name = v;
    }
    if let Some(v) = change.family_name {
        details.family_name = v;
    }
    if let Some(v) = change.date_of_birth {
        details.date_of_birth = v;
    }
    if let Some(v) = change.sex {
        details.sex = v;
    }
    if let Some(v) = change.phone {
        details.phone = Some(v);
    }
    if let Some(v) = change.email {
        details.email = Some(v);
    }
    if let Some(v) = change.identifiers {
        details.identifiers = v;
    }
    if let Some(v) = change.member_numbers {
        details.member_numbers = v;
    }
    if let Some(v) = change.status {
        details.status = v;
        if v != PatientStatus::Deceased {
            details.deceased_on = None;
        }
    }
    if let Some(v) = change.deceased_on {
        details.deceased_on = Some(v);
    }
    let details = details.tidy();
    let errors = details.validate(today());
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let updated = store
        .update_patient(&current, expected, &details, &actor(&principal))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::PreconditionFailed("the record changed since you read it; read it again".into()))?;
    // After the commit: a read that started before it stored nothing servable (see medcov-cache).
    store.cache().invalidate(&crate::store::patient_tag(id)).await;
    Ok(with_etag(StatusCode::OK, &updated))
}

pub(super) fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
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
    limit: Option<i64>,
    /// Skip this many (0 to 10000).
    offset: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PatientPage {
    items: Vec<Patient>,
}

/// Find patients in your hospitals by name prefix, date of birth, MRN, identifier or member
/// number (every given criterion must match), by family then given name. Each record returned
/// counts as a read in the access log.
#[utoipa::path(get, path = "/patients", tag = "patients", params(SearchParams),
    responses((status = 200, body = PatientPage), (status = 422, body = medcov_http::Problem)))]
async fn search_patients(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(params): Query<SearchParams>,
) -> Result<Json<PatientPage>, ApiError> {
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
    let hospitals = match (hospitals_in_scope(&principal), params.hospital_id) {
        (None, Some(one)) => vec![one],
        (None, None) => store.hospitals().await.map_err(ApiError::internal)?.into_iter().map(|h| h.id).collect(),
        (Some(mine), Some(one)) => mine.into_iter().filter(|h| *h == one).collect(),
        (Some(mine), None) => mine,
    };
    let search = Search {
        name: params.name,
        date_of_birth: params.date_of_birth,
        mrn: params.mrn,
        identifier: params.identifier,
        member_number: params.member_number,
    };
    let items = store.search(&hospitals, &search, limit, offset).await.map_err(ApiError::internal)?;
    let reads: Vec<(Uuid, Uuid)> = items.iter().map(|p| (p.id, p.hospital_id)).collect();
    store.log_reads(&actor(&principal), &reads, "search").await.map_err(ApiError::internal)?;
    Ok(Json(PatientPage { items }))
}

/// Every version of a record, oldest first.
#[utoipa::path(get, path = "/patients/{id}/history", tag = "patients",
    responses((status = 200, body = Vec<HistoryEntry>), (status = 404, body = medcov_http::Problem)))]
async fn patient_history(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let patient = visible(&store, &principal, id).await?;
    store
        .log_reads(&actor(&principal), &[(patient.id, patient.hospital_id)], "history")
        .await
        .map_err(ApiError::internal)?;
    store.history(id).await.map(Json).map_err(ApiError::internal)
}

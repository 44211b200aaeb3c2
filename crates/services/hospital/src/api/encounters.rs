//! `/service-catalog` and `/encounters`: what care was given, for which diagnosis.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::{Authorized, Policy, Principal, Role};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Readers, Registrars, actor};
use crate::domain::encounter::{self, Diagnosis, ServiceLine, VisitType};
use crate::domain::schedule::AppointmentStatus;
use crate::store::HospitalStore;
use crate::store::encounters::{CatalogEntry, Encounter, EncounterError, EncounterRecord, EncounterStatus};

pub fn router(store: Arc<HospitalStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(add_catalog_entry, list_catalog))
        .routes(routes!(open_encounter))
        .routes(routes!(get_encounter, record_care))
        .routes(routes!(close_encounter))
        .with_state(store)
}

/// Who records care.
pub struct Clinicians;
impl Policy for Clinicians {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Clinician];
}

/// Who opens encounters: the clinicians and the desk (for walk-ins).
pub struct Openers;
impl Policy for Openers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Clinician, Role::HospitalClerk];
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hospital_id": "0190f5a4-0000-7000-8000-000000000001", "code": "CONS-GP", "category": "consultation", "description": "General practitioner consultation"}))]
pub struct NewCatalogEntry {
    pub hospital_id: Uuid,
    #[schema(example = "CONS-GP")]
    pub code: String,
    #[schema(example = "consultation")]
    pub category: String,
    #[schema(example = "General practitioner consultation")]
    pub description: String,
}

/// Add a service to a hospital's catalog.
#[utoipa::path(post, path = "/service-catalog", tag = "encounters", request_body = NewCatalogEntry,
    responses((status = 201, body = CatalogEntry), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn add_catalog_entry(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Json(input): Json<NewCatalogEntry>,
) -> Result<(StatusCode, Json<CatalogEntry>), ApiError> {
    if !principal.scope.covers_hospital(input.hospital_id)
        || store.hospital(input.hospital_id).await.map_err(ApiError::internal)?.is_none()
    {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let code = input.code.trim().to_uppercase();
    let mut errors = Vec::new();
    if !(2..=20).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        errors.push(FieldError::new("code", "must be 2 to 20 of A-Z, 0-9, `-` and `.`"));
    }
    let category = input.category.trim().to_lowercase();
    if category.is_empty() || category.len() > 40 || !category.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        errors.push(FieldError::new("category", "must be 1 to 40 of a-z and `_`, such as `laboratory`"));
    }
    if input.description.trim().is_empty() || input.description.chars().count() > 200 {
        errors.push(FieldError::new("description", "must be 1 to 200 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let entry = CatalogEntry {
        hospital_id: input.hospital_id,
        code,
        category,
        description: input.description.trim().to_owned(),
        active: true,
    };
    store.add_catalog_entry(&entry).await.map_err(|e| match e {
        EncounterError::CodeTaken => ApiError::Conflict(format!("the catalog already has {}", entry.code)),
        other => ApiError::internal(other),
    })?;
    Ok((StatusCode::CREATED, Json(entry)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    hospital_id: Uuid,
}

/// A hospital's service catalog.
#[utoipa::path(get, path = "/service-catalog", tag = "encounters", params(CatalogQuery),
    responses((status = 200, body = Vec<CatalogEntry>), (status = 404, body = medcov_http::Problem)))]
async fn list_catalog(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<CatalogQuery>,
) -> Result<Json<Vec<CatalogEntry>>, ApiError> {
    if !principal.scope.covers_hospital(query.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    store.catalog(query.hospital_id).await.map(Json).map_err(ApiError::internal)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "0190f5a4-0000-7000-8000-000000000020", "practitioner_id": "0190f5a4-0000-7000-8000-000000000030", "visit_type": "normal"}))]
pub struct OpenEncounter {
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    /// The appointment being seen; absent for a walk-in. A checked-in appointment becomes
    /// fulfilled.
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
}

/// Open an encounter for an appointment (checked in or fulfilled) or a walk-in.
#[utoipa::path(post, path = "/encounters", tag = "encounters", request_body = OpenEncounter,
    responses(
        (status = 201, body = Encounter),
        (status = 404, body = medcov_http::Problem),
        (status = 409, description = "The appointment is not checked in, or already has an encounter.", body = medcov_http::Problem),
    ))]
async fn open_encounter(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Openers>,
    Json(input): Json<OpenEncounter>,
) -> Result<(StatusCode, Json<Encounter>), ApiError> {
    let patient = store
        .patient(input.patient_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|p| principal.scope.covers_hospital(p.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such patient".into()))?;
    let practitioner = store
        .practitioner(input.practitioner_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|p| p.hospital_id == patient.hospital_id)
        .ok_or_else(|| ApiError::NotFound("no such practitioner in the patient's hospital".into()))?;
    let who = actor(&principal);
    if let Some(appointment_id) = input.appointment_id {
        let appointment = store
            .appointment(appointment_id)
            .await
            .map_err(ApiError::internal)?
            .filter(|a| a.patient_id == patient.id && a.practitioner_id == practitioner.id)
            .ok_or_else(|| ApiError::NotFound("no such appointment for this patient and practitioner".into()))?;
        match appointment.status {
            AppointmentStatus::Fulfilled => {}
            AppointmentStatus::CheckedIn | AppointmentStatus::Arrived => {
                store
                    .change_status(&appointment, AppointmentStatus::Fulfilled, None, &who)
                    .await
                    .map_err(|e| ApiError::Conflict(format!("the appointment could not be fulfilled: {e}")))?;
            }
            other => {
                return Err(ApiError::Conflict(format!("an appointment that is {} cannot be seen", other.as_str())));
            }
        }
    }
    let encounter = Encounter {
        id: Uuid::now_v7(),
        hospital_id: patient.hospital_id,
        patient_id: patient.id,
        practitioner_id: practitioner.id,
        appointment_id: input.appointment_id,
        visit_type: input.visit_type,
        status: EncounterStatus::Open,
        record: EncounterRecord::default(),
        version: 1,
        opened_at: OffsetDateTime::now_utc(),
        closed_at: None,
    };
    store.open_encounter(&encounter, &who).await.map_err(|e| match e {
        EncounterError::AlreadyOpened => ApiError::Conflict("the appointment already has an encounter".into()),
        other => ApiError::internal(other),
    })?;
    Ok((StatusCode::CREATED, Json(encounter)))
}

async fn visible_encounter(store: &HospitalStore, principal: &Principal, id: Uuid) -> Result<Encounter, ApiError> {
    store
        .encounter(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|e| principal.scope.covers_hospital(e.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such encounter".into()))
}

/// One encounter (the read is logged).
#[utoipa::path(get, path = "/encounters/{id}", tag = "encounters",
    responses((status = 200, body = Encounter), (status = 404, body = medcov_http::Problem)))]
async fn get_encounter(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Encounter>, ApiError> {
    let encounter = visible_encounter(&store, &principal, id).await?;
    store
        .log_reads(&actor(&principal), &[(encounter.patient_id, encounter.hospital_id)], "encounter_read")
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(encounter))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"diagnoses": [{"code": "J06.9", "primary": true}], "services": [{"code": "CONS-GP", "quantity": 1}, {"code": "LAB-FBC", "quantity": 2}], "notes": "Sore throat for three days; no fever."}))]
pub struct CareRecord {
    pub diagnoses: Option<Vec<Diagnosis>>,
    pub services: Option<Vec<ServiceLine>>,
    pub notes: Option<String>,
}

/// Checks the record and that every service is an active entry of the hospital's catalog.
async fn checked(store: &HospitalStore, encounter: &Encounter) -> Result<BTreeMap<String, CatalogEntry>, ApiError> {
    let record = &encounter.record;
    let mut errors = encounter::check_record(&record.diagnoses, &record.services, &record.notes);
    let catalog: BTreeMap<String, CatalogEntry> = store
        .catalog(encounter.hospital_id)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|e| e.active)
        .map(|e| (e.code.clone(), e))
        .collect();
    for (i, line) in record.services.iter().enumerate() {
        if !catalog.contains_key(&line.code) {
            errors.push(FieldError::new(format!("services[{i}].code"), "is not in the hospital's service catalog"));
        }
    }
    if errors.is_empty() { Ok(catalog) } else { Err(ApiError::Validation(errors)) }
}

fn stale(e: EncounterError) -> ApiError {
    match e {
        EncounterError::Stale => {
            ApiError::PreconditionFailed("the encounter changed since you read it, or is closed".into())
        }
        other => ApiError::internal(other),
    }
}

/// Record diagnoses, services and notes on an open encounter. `If-Match` is required.
#[utoipa::path(patch, path = "/encounters/{id}", tag = "encounters", request_body = CareRecord,
    responses((status = 200, body = Encounter), (status = 409, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn record_care(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Clinicians>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<CareRecord>,
) -> Result<Json<Encounter>, ApiError> {
    let expected = super::patients::if_match(&headers)?;
    let mut encounter = visible_encounter(&store, &principal, id).await?;
    if encounter.status == EncounterStatus::Closed {
        return Err(ApiError::Conflict("a closed encounter is frozen".into()));
    }
    if let Some(v) = change.diagnoses {
        encounter.record.diagnoses =
            v.into_iter().map(|d| Diagnosis { code: d.code.trim().to_uppercase(), ..d }).collect();
    }
    if let Some(v) = change.services {
        encounter.record.services =
            v.into_iter().map(|s| ServiceLine { code: s.code.trim().to_uppercase(), ..s }).collect();
    }
    if let Some(v) = change.notes {
        encounter.record.notes = v;
    }
    checked(&store, &encounter).await?;
    store.save_encounter(&encounter, expected, None, &actor(&principal)).await.map(Json).map_err(stale)
}

/// Close an encounter: it is frozen, and `encounter_completed` carries everything billing
/// needs (services with categories, diagnoses, the patient's member numbers). `If-Match` is
/// required.
#[utoipa::path(post, path = "/encounters/{id}/close", tag = "encounters",
    responses((status = 200, body = Encounter), (status = 409, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn close_encounter(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Clinicians>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Json<Encounter>, ApiError> {
    let expected = super::patients::if_match(&headers)?;
    let encounter = visible_encounter(&store, &principal, id).await?;
    if encounter.status == EncounterStatus::Closed {
        return Err(ApiError::Conflict("the encounter is already closed".into()));
    }
    let errors = encounter::check_closable(&encounter.record.diagnoses, &encounter.record.services);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let catalog = checked(&store, &encounter).await?;
    let patient = store
        .patient(encounter.patient_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("no such patient".into()))?;
    let services: Vec<serde_json::Value> = encounter
        .record
        .services
        .iter()
        .map(|line| {
            let entry = &catalog[&line.code];
            serde_json::json!({"code": line.code, "category": entry.category, "description": entry.description, "quantity": line.quantity})
        })
        .collect();
    let payload = serde_json::json!({
        "encounter_id": encounter.id,
        "hospital_id": encounter.hospital_id,
        "patient_id": encounter.patient_id,
        "practitioner_id": encounter.practitioner_id,
        "appointment_id": encounter.appointment_id,
        "visit_type": encounter.visit_type,
        "date_of_service": encounter.opened_at.date().to_string(),
        "member_numbers": patient.details.member_numbers,
        "diagnoses": encounter.record.diagnoses,
        "services": services,
    });
    store.save_encounter(&encounter, expected, Some(payload), &actor(&principal)).await.map(Json).map_err(stale)
}

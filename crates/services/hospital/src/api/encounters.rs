//! `/service-catalog` and `/encounters`: what care was given, for which diagnosis.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, Json, Page, Path, Query};
use medcov_security::{Authorized, Policy, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Readers, Registrars, if_match};
use crate::domain::encounter::{
    CareEdit, CatalogEntry, Diagnosis, Encounter, EncounterRecord, EncounterStatus, ServiceLine, VisitType,
};
use crate::service::{HospitalService, OpenRequest};

pub fn router(service: Arc<HospitalService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(add_catalog_entry, list_catalog))
        .routes(routes!(open_encounter))
        .routes(routes!(get_encounter, record_care))
        .routes(routes!(close_encounter))
        .with_state(service)
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

/// A service a hospital renders.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogEntry)]
pub struct CatalogEntryView {
    pub hospital_id: Uuid,
    #[schema(example = "CONS-GP")]
    pub code: String,
    /// consultation, laboratory, imaging, procedure, inpatient, pharmacy, ...
    #[schema(example = "consultation")]
    pub category: String,
    #[schema(example = "General practitioner consultation")]
    pub description: String,
    pub active: bool,
}

impl From<CatalogEntry> for CatalogEntryView {
    fn from(e: CatalogEntry) -> Self {
        CatalogEntryView {
            hospital_id: e.hospital_id,
            code: e.code,
            category: e.category,
            description: e.description,
            active: e.active,
        }
    }
}

/// An encounter as the API shows it: its parties, status and what was recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Encounter)]
pub struct EncounterView {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub status: EncounterStatus,
    #[serde(flatten)]
    pub record: EncounterRecord,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<OffsetDateTime>,
}

impl From<Encounter> for EncounterView {
    fn from(e: Encounter) -> Self {
        EncounterView {
            id: e.id,
            hospital_id: e.hospital_id,
            patient_id: e.patient_id,
            practitioner_id: e.practitioner_id,
            appointment_id: e.appointment_id,
            visit_type: e.visit_type,
            status: e.status,
            record: e.record,
            version: e.version,
            opened_at: e.opened_at,
            closed_at: e.closed_at,
        }
    }
}

/// Add a service to a hospital's catalog.
#[utoipa::path(post, path = "/service-catalog", tag = "encounters", request_body = NewCatalogEntry,
    responses((status = 201, body = CatalogEntryView), (status = 404, description = "No such hospital (or not one of yours).", body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn add_catalog_entry(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Json(input): Json<NewCatalogEntry>,
) -> Result<(StatusCode, Json<CatalogEntryView>), ApiError> {
    let fields = (input.code.as_str(), input.category.as_str(), input.description.as_str());
    let entry = service.add_catalog_entry(&principal, input.hospital_id, fields).await?;
    Ok((StatusCode::CREATED, Json(entry.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    hospital_id: Uuid,
}

/// A hospital's service catalog.
#[utoipa::path(get, path = "/service-catalog", tag = "encounters", params(CatalogQuery),
    responses((status = 200, body = Page<CatalogEntryView>), (status = 404, body = medcov_http::Problem)))]
async fn list_catalog(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<CatalogQuery>,
) -> Result<Json<Page<CatalogEntryView>>, ApiError> {
    let entries = service.catalog(&principal, query.hospital_id).await?;
    Ok(Json(Page::whole(entries).map(CatalogEntryView::from)))
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

impl From<OpenEncounter> for OpenRequest {
    fn from(o: OpenEncounter) -> Self {
        OpenRequest {
            patient_id: o.patient_id,
            practitioner_id: o.practitioner_id,
            appointment_id: o.appointment_id,
            visit_type: o.visit_type,
        }
    }
}

/// Open an encounter for an appointment (checked in or fulfilled) or a walk-in.
#[utoipa::path(post, path = "/encounters", tag = "encounters", request_body = OpenEncounter,
    responses(
        (status = 201, body = EncounterView, headers(("ETag" = String, description = "The version, for `If-Match`."))),
        (status = 404, body = medcov_http::Problem),
        (status = 409, description = "The appointment is not checked in, or already has an encounter.", body = medcov_http::Problem),
    ))]
async fn open_encounter(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Openers>,
    Json(input): Json<OpenEncounter>,
) -> Result<(StatusCode, HeaderMap, Json<EncounterView>), ApiError> {
    let opened = service.open_encounter(&principal, input.into()).await?;
    Ok((StatusCode::CREATED, medcov_http::etag(opened.version), Json(opened.into())))
}

/// One encounter (the read is logged).
#[utoipa::path(get, path = "/encounters/{id}", tag = "encounters",
    responses((status = 200, body = EncounterView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 404, body = medcov_http::Problem)))]
async fn get_encounter(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<(HeaderMap, Json<EncounterView>), ApiError> {
    let encounter = service.read_encounter(&principal, id).await?;
    Ok((medcov_http::etag(encounter.version), Json(encounter.into())))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"diagnoses": [{"code": "J06.9", "primary": true}], "services": [{"code": "CONS-GP", "quantity": 1}, {"code": "LAB-FBC", "quantity": 2}], "notes": "Sore throat for three days; no fever."}))]
pub struct CareRecord {
    pub diagnoses: Option<Vec<Diagnosis>>,
    pub services: Option<Vec<ServiceLine>>,
    pub notes: Option<String>,
}

impl From<CareRecord> for CareEdit {
    fn from(c: CareRecord) -> Self {
        CareEdit { diagnoses: c.diagnoses, services: c.services, notes: c.notes }
    }
}

/// Record diagnoses, services and notes on an open encounter. `If-Match` is required.
#[utoipa::path(patch, path = "/encounters/{id}", tag = "encounters", request_body = CareRecord,
    responses((status = 200, body = EncounterView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 409, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn record_care(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Clinicians>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<CareRecord>,
) -> Result<(HeaderMap, Json<EncounterView>), ApiError> {
    let expected = if_match(&headers)?;
    let recorded = service.record_care(&principal, id, expected, change.into()).await?;
    Ok((medcov_http::etag(recorded.version), Json(recorded.into())))
}

/// Close an encounter: it is frozen, and `encounter_completed` carries everything billing
/// needs (services with categories, diagnoses, the patient's member numbers). `If-Match` is
/// required.
#[utoipa::path(post, path = "/encounters/{id}/close", tag = "encounters",
    responses((status = 200, body = EncounterView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 409, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn close_encounter(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Clinicians>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<(HeaderMap, Json<EncounterView>), ApiError> {
    let expected = if_match(&headers)?;
    let closed = service.close_encounter(&principal, id, expected).await?;
    Ok((medcov_http::etag(closed.version), Json(closed.into())))
}

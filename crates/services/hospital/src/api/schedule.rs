//! `/practitioners` and `/appointments`: who works when, and who is booked with whom.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, FieldError, Json, Page, Path, Query};
use medcov_security::{Authorized, Policy, Role};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Readers, Registrars, if_match};
use crate::domain::appointment::{Appointment, AppointmentChange, AppointmentStatus};
use crate::domain::practitioner::{NewPractitioner, Practitioner, PractitionerEdit};
use crate::domain::schedule::WorkingHours;
use crate::service::{BookingRequest, HospitalService};

pub fn router(service: Arc<HospitalService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_practitioner, list_practitioners))
        .routes(routes!(get_practitioner, update_practitioner))
        .routes(routes!(practitioner_day))
        .routes(routes!(free_slots))
        .routes(routes!(book))
        .routes(routes!(get_appointment))
        .routes(routes!(appointment_history))
        .routes(routes!(change_status))
        .routes(routes!(reschedule))
        .routes(routes!(patient_appointments))
        .with_state(service)
}

/// Who moves appointments along: the desk and the clinicians.
pub struct Schedulers;
impl Policy for Schedulers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::HospitalClerk, Role::Clinician];
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hospital_id": "0190f5a4-0000-7000-8000-000000000001", "name": "Dr. Wanjiru Kamau", "specialty": "general practice", "working_hours": [{"weekday": "monday", "start": "08:00", "end": "13:00"}, {"weekday": "monday", "start": "14:00", "end": "17:00"}], "daily_capacity": 16}))]
pub struct PractitionerInput {
    pub hospital_id: Uuid,
    #[schema(example = "Dr. Wanjiru Kamau")]
    pub name: String,
    #[schema(example = "general practice")]
    pub specialty: String,
    pub working_hours: Vec<WorkingHours>,
    #[schema(example = 16)]
    pub daily_capacity: i32,
}

impl From<PractitionerInput> for NewPractitioner {
    fn from(input: PractitionerInput) -> Self {
        NewPractitioner {
            hospital_id: input.hospital_id,
            name: input.name,
            specialty: input.specialty,
            working_hours: input.working_hours,
            daily_capacity: input.daily_capacity,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"daily_capacity": 20, "working_hours": [{"weekday": "tuesday", "start": "08:00", "end": "16:00"}]}))]
pub struct PractitionerChange {
    pub name: Option<String>,
    pub specialty: Option<String>,
    pub working_hours: Option<Vec<WorkingHours>>,
    pub daily_capacity: Option<i32>,
    /// `false` stops new bookings.
    pub active: Option<bool>,
}

impl From<PractitionerChange> for PractitionerEdit {
    fn from(change: PractitionerChange) -> Self {
        PractitionerEdit {
            name: change.name,
            specialty: change.specialty,
            working_hours: change.working_hours,
            daily_capacity: change.daily_capacity,
            active: change.active,
        }
    }
}

/// A practitioner as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Practitioner)]
pub struct PractitionerView {
    pub id: Uuid,
    pub hospital_id: Uuid,
    #[schema(example = "Dr. Wanjiru Kamau")]
    pub name: String,
    #[schema(example = "general practice")]
    pub specialty: String,
    pub working_hours: Vec<WorkingHours>,
    /// Appointments a day at most.
    pub daily_capacity: i32,
    pub active: bool,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Practitioner> for PractitionerView {
    fn from(p: Practitioner) -> Self {
        PractitionerView {
            id: p.id,
            hospital_id: p.hospital_id,
            name: p.name,
            specialty: p.specialty,
            working_hours: p.working_hours,
            daily_capacity: p.daily_capacity,
            active: p.active,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// An appointment as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Appointment)]
pub struct AppointmentView {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub practitioner_id: Uuid,
    pub patient_id: Uuid,
    /// consultation, laboratory, imaging, procedure, inpatient_admission, ...
    pub category: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    pub status: AppointmentStatus,
    pub reason: Option<String>,
    pub version: i64,
}

impl From<Appointment> for AppointmentView {
    fn from(a: Appointment) -> Self {
        AppointmentView {
            id: a.id,
            hospital_id: a.hospital_id,
            practitioner_id: a.practitioner_id,
            patient_id: a.patient_id,
            category: a.category,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            status: a.status,
            reason: a.reason,
            version: a.version,
        }
    }
}

/// One version of an appointment: who moved it where, and when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AppointmentChange)]
pub struct AppointmentChangeView {
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub by_user: Uuid,
    pub status: AppointmentStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    pub reason: Option<String>,
}

impl From<AppointmentChange> for AppointmentChangeView {
    fn from(c: AppointmentChange) -> Self {
        AppointmentChangeView {
            version: c.version,
            at: c.at,
            by_user: c.by_user,
            status: c.status,
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            reason: c.reason,
        }
    }
}

/// Add a practitioner to a hospital.
#[utoipa::path(post, path = "/practitioners", tag = "practitioners", request_body = PractitionerInput,
    responses((status = 201, body = PractitionerView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_practitioner(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Json(input): Json<PractitionerInput>,
) -> Result<(StatusCode, HeaderMap, Json<PractitionerView>), ApiError> {
    let practitioner = service.create_practitioner(&principal, input.into()).await?;
    Ok((StatusCode::CREATED, medcov_http::etag(practitioner.version), Json(practitioner.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PractitionerQuery {
    /// Only this hospital.
    hospital_id: Option<Uuid>,
}

/// Practitioners of your hospitals.
#[utoipa::path(get, path = "/practitioners", tag = "practitioners", params(PractitionerQuery),
    responses((status = 200, body = Page<PractitionerView>)))]
async fn list_practitioners(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<PractitionerQuery>,
) -> Result<Json<Page<PractitionerView>>, ApiError> {
    let found = service.practitioners(&principal, query.hospital_id).await?;
    Ok(Json(Page::whole(found).map(PractitionerView::from)))
}

/// One practitioner.
#[utoipa::path(get, path = "/practitioners/{id}", tag = "practitioners",
    responses((status = 200, body = PractitionerView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 404, body = medcov_http::Problem)))]
async fn get_practitioner(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<(HeaderMap, Json<PractitionerView>), ApiError> {
    let practitioner = service.practitioner(&principal, id).await?;
    Ok((medcov_http::etag(practitioner.version), Json(practitioner.into())))
}

/// Change a practitioner. `If-Match` with the version you read is required.
#[utoipa::path(patch, path = "/practitioners/{id}", tag = "practitioners", request_body = PractitionerChange,
    responses((status = 200, body = PractitionerView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 404, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn update_practitioner(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<PractitionerChange>,
) -> Result<(HeaderMap, Json<PractitionerView>), ApiError> {
    let expected = if_match(&headers)?;
    let changed = service.change_practitioner(&principal, id, expected, change.into()).await?;
    Ok((medcov_http::etag(changed.version), Json(changed.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// The hospital's local date.
    #[param(value_type = String, format = Date)]
    date: Date,
}

/// A practitioner's appointments on a local date, by start time.
#[utoipa::path(get, path = "/practitioners/{id}/appointments", tag = "appointments", params(DayQuery),
    responses((status = 200, body = Page<AppointmentView>), (status = 404, body = medcov_http::Problem)))]
async fn practitioner_day(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<DayQuery>,
) -> Result<Json<Page<AppointmentView>>, ApiError> {
    Ok(Json(Page::whole(service.practitioner_day(&principal, id, query.date).await?).map(AppointmentView::from)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    /// The hospital's local date.
    #[param(value_type = String, format = Date)]
    date: Date,
    /// Length of the appointment (5 to 480 minutes, default 30).
    duration_minutes: Option<u16>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FreeSlot {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    ends_at: OffsetDateTime,
}

/// Free slots of a practitioner on a local date: inside working hours, on a 15-minute grid,
/// clear of active appointments; none when the day is full.
#[utoipa::path(get, path = "/practitioners/{id}/free-slots", tag = "appointments", params(SlotQuery),
    responses((status = 200, body = Page<FreeSlot>), (status = 404, body = medcov_http::Problem)))]
async fn free_slots(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<SlotQuery>,
) -> Result<Json<Page<FreeSlot>>, ApiError> {
    let duration = query.duration_minutes.unwrap_or(30);
    if !(5..=480).contains(&duration) {
        return Err(ApiError::field("duration_minutes", "must be between 5 and 480"));
    }
    let slots = service.free_slots(&principal, id, query.date, duration).await?;
    let slots = slots
        .into_iter()
        .filter_map(|(s, e)| {
            Some(FreeSlot {
                starts_at: OffsetDateTime::from_unix_timestamp(s).ok()?,
                ends_at: OffsetDateTime::from_unix_timestamp(e).ok()?,
            })
        })
        .collect();
    Ok(Json(Page::whole(slots)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "0190f5a4-0000-7000-8000-000000000020", "practitioner_id": "0190f5a4-0000-7000-8000-000000000030", "category": "consultation", "starts_at": "2026-11-30T06:00:00Z", "duration_minutes": 30}))]
pub struct Booking {
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    /// consultation, laboratory, imaging, procedure, inpatient_admission, emergency, follow_up.
    #[schema(example = "consultation")]
    pub category: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-30T05:00:00Z")]
    pub starts_at: OffsetDateTime,
    #[schema(example = 30)]
    pub duration_minutes: u16,
}

impl From<Booking> for BookingRequest {
    fn from(b: Booking) -> Self {
        BookingRequest {
            patient_id: b.patient_id,
            practitioner_id: b.practitioner_id,
            category: b.category,
            starts_at: b.starts_at,
            duration_minutes: b.duration_minutes,
        }
    }
}

/// Book a patient with a practitioner. Refused with 409 when the practitioner or the patient
/// already has an overlapping active appointment (naming it) or the day is full.
#[utoipa::path(post, path = "/appointments", tag = "appointments", request_body = Booking,
    responses(
        (status = 201, body = AppointmentView),
        (status = 404, body = medcov_http::Problem),
        (status = 409, description = "Double booking or a full day.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn book(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Json(input): Json<Booking>,
) -> Result<(StatusCode, Json<AppointmentView>), ApiError> {
    let booked = service.book(&principal, input.into()).await?;
    Ok((StatusCode::CREATED, Json(booked.into())))
}

/// One appointment.
#[utoipa::path(get, path = "/appointments/{id}", tag = "appointments",
    responses((status = 200, body = AppointmentView), (status = 404, body = medcov_http::Problem)))]
async fn get_appointment(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<AppointmentView>, ApiError> {
    Ok(Json(service.appointment(&principal, id).await?.into()))
}

/// Every version of an appointment, oldest first: its booking, each status change (with who
/// and why) and each move.
#[utoipa::path(get, path = "/appointments/{id}/history", tag = "appointments",
    responses((status = 200, body = Page<AppointmentChangeView>), (status = 404, body = medcov_http::Problem)))]
async fn appointment_history(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Page<AppointmentChangeView>>, ApiError> {
    let history = service.appointment_history(&principal, id).await?;
    Ok(Json(Page::whole(history).map(AppointmentChangeView::from)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "cancelled", "reason": "the patient called to cancel"}))]
pub struct StatusChange {
    pub status: AppointmentStatus,
    /// Required to cancel.
    pub reason: Option<String>,
}

/// Move an appointment forward: booked → arrived → checked_in → fulfilled, or to cancelled
/// (with a reason) or no_show. Anything else is 409.
#[utoipa::path(post, path = "/appointments/{id}/status", tag = "appointments", request_body = StatusChange,
    responses((status = 200, body = AppointmentView), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn change_status(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Schedulers>,
    Path(id): Path<Uuid>,
    Json(change): Json<StatusChange>,
) -> Result<Json<AppointmentView>, ApiError> {
    let changed = service.change_appointment_status(&principal, id, change.status, change.reason.as_deref()).await?;
    Ok(Json(changed.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"starts_at": "2026-12-01T07:30:00Z", "duration_minutes": 30}))]
pub struct Reschedule {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    pub duration_minutes: u16,
}

/// Move a booked appointment to another time (same practitioner); its history keeps the old
/// time. `If-Match` with the version you read is required.
#[utoipa::path(post, path = "/appointments/{id}/reschedule", tag = "appointments", request_body = Reschedule,
    responses((status = 200, body = AppointmentView), (status = 409, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn reschedule(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Registrars>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<Reschedule>,
) -> Result<Json<AppointmentView>, ApiError> {
    let expected = if_match(&headers)?;
    let moved = service.reschedule(&principal, id, expected, (input.starts_at, input.duration_minutes)).await?;
    Ok(Json(moved.into()))
}

/// Which of a patient's appointments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Soonest first.
    Upcoming,
    /// Latest first.
    Past,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PatientAppointmentsQuery {
    /// `upcoming` (default) or `past`.
    #[param(inline)]
    when: Option<When>,
    /// At most this many (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Skip this many (0 to 10000; the `paging.next_offset` of the previous page).
    #[param(minimum = 0, maximum = 10000)]
    offset: Option<i64>,
}

/// A patient's upcoming (soonest first) or past (latest first) appointments.
#[utoipa::path(get, path = "/patients/{id}/appointments", tag = "appointments", params(PatientAppointmentsQuery),
    responses((status = 200, body = Page<AppointmentView>), (status = 404, body = medcov_http::Problem)))]
async fn patient_appointments(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<PatientAppointmentsQuery>,
) -> Result<Json<Page<AppointmentView>>, ApiError> {
    let upcoming = query.when != Some(When::Past);
    let (limit, offset) = (query.limit.unwrap_or(20), query.offset.unwrap_or(0));
    let mut errors = Vec::new();
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    if !(0..=10_000).contains(&offset) {
        errors.push(FieldError::new("offset", "must be between 0 and 10000"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let found = service.patient_appointments(&principal, id, upcoming, (limit + 1, offset)).await?;
    Ok(Json(Page::offset(found, limit, offset).map(AppointmentView::from)))
}

//! `/practitioners` and `/appointments`: who works when, and who is booked with whom.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::{Authorized, Policy, Principal, Role};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as Stored;
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Readers, Registrars, actor, hospitals_in_scope};
use crate::domain::patient::PatientStatus;
use crate::domain::schedule::{self, AppointmentStatus, WorkingHours};
use crate::store::HospitalStore;
use crate::store::schedule::{Appointment, BookingError, Day, Practitioner, Slot, day_tag};

pub fn router(store: Arc<HospitalStore>) -> OpenApiRouter {
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
        .with_state(store)
}

/// Who moves appointments along: the desk and the clinicians.
pub struct Schedulers;
impl Policy for Schedulers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::HospitalClerk, Role::Clinician];
}

const CATEGORIES: [&str; 7] =
    ["consultation", "laboratory", "imaging", "procedure", "inpatient_admission", "emergency", "follow_up"];

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

fn check_practitioner(p: &Practitioner) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if p.name.trim().is_empty() || p.name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    if p.specialty.trim().is_empty() || p.specialty.chars().count() > 100 {
        errors.push(FieldError::new("specialty", "must be 1 to 100 characters"));
    }
    if !(1..=500).contains(&p.daily_capacity) {
        errors.push(FieldError::new("daily_capacity", "must be between 1 and 500"));
    }
    errors.extend(schedule::check_hours(&p.working_hours));
    errors
}

async fn visible_practitioner(
    store: &HospitalStore,
    principal: &Principal,
    id: Uuid,
) -> Result<Practitioner, ApiError> {
    store
        .practitioner(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|p| principal.scope.covers_hospital(p.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such practitioner".into()))
}

/// Add a practitioner to a hospital.
#[utoipa::path(post, path = "/practitioners", tag = "practitioners", request_body = PractitionerInput,
    responses((status = 201, body = Practitioner), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_practitioner(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Json(input): Json<PractitionerInput>,
) -> Result<(StatusCode, Json<Practitioner>), ApiError> {
    if !principal.scope.covers_hospital(input.hospital_id)
        || store.hospital(input.hospital_id).await.map_err(ApiError::internal)?.is_none()
    {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let now = OffsetDateTime::now_utc();
    let practitioner = Practitioner {
        id: Uuid::now_v7(),
        hospital_id: input.hospital_id,
        name: input.name.trim().to_owned(),
        specialty: input.specialty.trim().to_owned(),
        working_hours: Stored(input.working_hours),
        daily_capacity: input.daily_capacity,
        active: true,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let errors = check_practitioner(&practitioner);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    store.insert_practitioner(&practitioner).await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(practitioner)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PractitionerQuery {
    /// Only this hospital.
    hospital_id: Option<Uuid>,
}

/// Practitioners of your hospitals.
#[utoipa::path(get, path = "/practitioners", tag = "practitioners", params(PractitionerQuery),
    responses((status = 200, body = Vec<Practitioner>)))]
async fn list_practitioners(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<PractitionerQuery>,
) -> Result<Json<Vec<Practitioner>>, ApiError> {
    let hospitals = match (hospitals_in_scope(&principal), query.hospital_id) {
        (None, Some(one)) => vec![one],
        (None, None) => store.hospitals().await.map_err(ApiError::internal)?.into_iter().map(|h| h.id).collect(),
        (Some(mine), Some(one)) => mine.into_iter().filter(|h| *h == one).collect(),
        (Some(mine), None) => mine,
    };
    store.practitioners(&hospitals).await.map(Json).map_err(ApiError::internal)
}

/// One practitioner.
#[utoipa::path(get, path = "/practitioners/{id}", tag = "practitioners",
    responses((status = 200, body = Practitioner), (status = 404, body = medcov_http::Problem)))]
async fn get_practitioner(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Practitioner>, ApiError> {
    visible_practitioner(&store, &principal, id).await.map(Json)
}

/// Change a practitioner. `If-Match` with the version you read is required.
#[utoipa::path(patch, path = "/practitioners/{id}", tag = "practitioners", request_body = PractitionerChange,
    responses((status = 200, body = Practitioner), (status = 412, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn update_practitioner(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<PractitionerChange>,
) -> Result<Json<Practitioner>, ApiError> {
    let expected = super::patients::if_match(&headers)?;
    let mut p = visible_practitioner(&store, &principal, id).await?;
    if p.version != expected {
        return Err(ApiError::PreconditionFailed("the practitioner changed since you read it".into()));
    }
    if let Some(v) = change.name {
        p.name = v.trim().to_owned();
    }
    if let Some(v) = change.specialty {
        p.specialty = v.trim().to_owned();
    }
    if let Some(v) = change.working_hours {
        p.working_hours = Stored(v);
    }
    if let Some(v) = change.daily_capacity {
        p.daily_capacity = v;
    }
    if let Some(v) = change.active {
        p.active = v;
    }
    let errors = check_practitioner(&p);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if !store.update_practitioner(&p, expected).await.map_err(ApiError::internal)? {
        return Err(ApiError::PreconditionFailed("the practitioner changed since you read it".into()));
    }
    visible_practitioner(&store, &principal, id).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// The hospital's local date.
    #[param(value_type = String, format = Date)]
    date: Date,
}

async fn zone_of(store: &HospitalStore, hospital: Uuid) -> Result<jiff::tz::TimeZone, ApiError> {
    Ok(site_of(store, hospital).await?.0)
}

/// A hospital's time zone and opening hours.
async fn site_of(store: &HospitalStore, hospital: Uuid) -> Result<(jiff::tz::TimeZone, Vec<WorkingHours>), ApiError> {
    let hospital = store
        .hospital(hospital)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
    let tz = schedule::zone(&hospital.timezone).map_err(ApiError::internal)?;
    Ok((tz, hospital.opening_hours.0))
}

/// A practitioner's appointments on a local date, by start time.
#[utoipa::path(get, path = "/practitioners/{id}/appointments", tag = "appointments", params(DayQuery),
    responses((status = 200, body = Vec<Appointment>), (status = 404, body = medcov_http::Problem)))]
async fn practitioner_day(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<DayQuery>,
) -> Result<Json<Vec<Appointment>>, ApiError> {
    let practitioner = visible_practitioner(&store, &principal, id).await?;
    let tz = zone_of(&store, practitioner.hospital_id).await?;
    let (from, to) = schedule::day_bounds(&tz, query.date).ok_or_else(|| ApiError::field("date", "is out of range"))?;
    // Through the cache: bookings, moves and status changes of the practitioner invalidate it.
    let key = format!("hospital:practitioner-day:{id}:{}", query.date);
    let load = async { store.practitioner_appointments(id, from, to).await.map(Day) };
    let day = medcov_cache::read_through(store.cache(), &key, &day_tag(id), std::time::Duration::from_secs(300), load)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(day.0))
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
    responses((status = 200, body = Vec<FreeSlot>), (status = 404, body = medcov_http::Problem)))]
async fn free_slots(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<SlotQuery>,
) -> Result<Json<Vec<FreeSlot>>, ApiError> {
    let duration = query.duration_minutes.unwrap_or(30);
    if !(5..=480).contains(&duration) {
        return Err(ApiError::field("duration_minutes", "must be between 5 and 480"));
    }
    let practitioner = visible_practitioner(&store, &principal, id).await?;
    let (tz, opening) = site_of(&store, practitioner.hospital_id).await?;
    let (from, to) = schedule::day_bounds(&tz, query.date).ok_or_else(|| ApiError::field("date", "is out of range"))?;
    let day = store.practitioner_appointments(id, from, to).await.map_err(ApiError::internal)?;
    let taken = day.iter().filter(|a| a.status != AppointmentStatus::Cancelled).count();
    if !practitioner.active || taken >= usize::try_from(practitioner.daily_capacity).unwrap_or(0) {
        return Ok(Json(Vec::new()));
    }
    let busy: Vec<(i64, i64)> = day
        .iter()
        .filter(|a| a.status.is_active())
        .map(|a| (a.starts_at.unix_timestamp(), a.ends_at.unix_timestamp()))
        .collect();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let slots = schedule::free_slots(&practitioner.working_hours, &tz, query.date, duration, &busy)
        .into_iter()
        .filter(|(s, e)| *s >= now && schedule::open_for(&opening, &tz, *s, *e))
        .filter_map(|(s, e)| {
            Some(FreeSlot {
                starts_at: OffsetDateTime::from_unix_timestamp(s).ok()?,
                ends_at: OffsetDateTime::from_unix_timestamp(e).ok()?,
            })
        })
        .collect();
    Ok(Json(slots))
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

/// The slot a request asks for, checked against the hospital's opening hours and the
/// practitioner's working hours.
fn slot_for(
    practitioner: &Practitioner,
    (tz, opening): &(jiff::tz::TimeZone, Vec<WorkingHours>),
    starts_at: OffsetDateTime,
    duration_minutes: u16,
) -> Result<Slot, ApiError> {
    let mut errors = Vec::new();
    if !(5..=1440).contains(&duration_minutes) || !duration_minutes.is_multiple_of(5) {
        errors.push(FieldError::new("duration_minutes", "must be a multiple of 5 between 5 and 1440"));
    }
    let start = starts_at.unix_timestamp();
    if start % 60 != 0 {
        errors.push(FieldError::new("starts_at", "must be on a whole minute"));
    }
    if start < OffsetDateTime::now_utc().unix_timestamp() - 300 {
        errors.push(FieldError::new("starts_at", "must not be in the past"));
    }
    let end = start + i64::from(duration_minutes) * 60;
    if errors.is_empty() && !schedule::open_for(opening, tz, start, end) {
        errors.push(FieldError::new("starts_at", "is outside the hospital's opening hours"));
    } else if errors.is_empty() && !schedule::within_hours(&practitioner.working_hours, tz, start, end) {
        errors.push(FieldError::new("starts_at", "is outside the practitioner's working hours"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (local_date, _, _) =
        schedule::local(tz, start).ok_or_else(|| ApiError::field("starts_at", "is out of range"))?;
    Ok(Slot { starts_at: start, ends_at: end, local_date })
}

fn booking_error(error: BookingError) -> ApiError {
    match error {
        BookingError::Conflict(id) => ApiError::Conflict(format!(
            "the practitioner or the patient already has an active appointment at that time: appointment {id}"
        )),
        BookingError::Full(n) => ApiError::Conflict(format!("the practitioner's day is full ({n} appointments)")),
        BookingError::Inactive => ApiError::Conflict("the practitioner is not taking appointments".into()),
        BookingError::Stale => ApiError::PreconditionFailed("the appointment changed since you read it".into()),
        BookingError::Sqlx(e) => ApiError::internal(e),
    }
}

/// Book a patient with a practitioner. Refused with 409 when the practitioner or the patient
/// already has an overlapping active appointment (naming it) or the day is full.
#[utoipa::path(post, path = "/appointments", tag = "appointments", request_body = Booking,
    responses(
        (status = 201, body = Appointment),
        (status = 404, body = medcov_http::Problem),
        (status = 409, description = "Double booking or a full day.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn book(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Json(input): Json<Booking>,
) -> Result<(StatusCode, Json<Appointment>), ApiError> {
    if !CATEGORIES.contains(&input.category.as_str()) {
        return Err(ApiError::field("category", format!("must be one of {}", CATEGORIES.join(", "))));
    }
    let practitioner = visible_practitioner(&store, &principal, input.practitioner_id).await?;
    let patient = store
        .patient(input.patient_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|p| p.hospital_id == practitioner.hospital_id && principal.scope.covers_hospital(p.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such patient in the practitioner's hospital".into()))?;
    if patient.details.status != PatientStatus::Active {
        return Err(ApiError::field("patient_id", "the patient is not active"));
    }
    let site = site_of(&store, practitioner.hospital_id).await?;
    let slot = slot_for(&practitioner, &site, input.starts_at, input.duration_minutes)?;
    let appointment = Appointment {
        id: Uuid::now_v7(),
        hospital_id: practitioner.hospital_id,
        practitioner_id: practitioner.id,
        patient_id: patient.id,
        category: input.category,
        starts_at: input.starts_at,
        ends_at: input.starts_at,
        status: AppointmentStatus::Booked,
        reason: None,
        version: 0,
    };
    let booked = store.book(&appointment, &slot, None, &actor(&principal)).await.map_err(booking_error)?;
    Ok((StatusCode::CREATED, Json(booked)))
}

async fn visible_appointment(store: &HospitalStore, principal: &Principal, id: Uuid) -> Result<Appointment, ApiError> {
    store
        .appointment(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|a| principal.scope.covers_hospital(a.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such appointment".into()))
}

/// One appointment.
#[utoipa::path(get, path = "/appointments/{id}", tag = "appointments",
    responses((status = 200, body = Appointment), (status = 404, body = medcov_http::Problem)))]
async fn get_appointment(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Appointment>, ApiError> {
    visible_appointment(&store, &principal, id).await.map(Json)
}

/// Every version of an appointment, oldest first: its booking, each status change (with who
/// and why) and each move.
#[utoipa::path(get, path = "/appointments/{id}/history", tag = "appointments",
    responses((status = 200, body = Vec<crate::store::schedule::AppointmentChange>), (status = 404, body = medcov_http::Problem)))]
async fn appointment_history(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<crate::store::schedule::AppointmentChange>>, ApiError> {
    let appointment = visible_appointment(&store, &principal, id).await?;
    store.appointment_history(appointment.id).await.map(Json).map_err(ApiError::internal)
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
    responses((status = 200, body = Appointment), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn change_status(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Schedulers>,
    Path(id): Path<Uuid>,
    Json(change): Json<StatusChange>,
) -> Result<Json<Appointment>, ApiError> {
    let reason = change.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if change.status == AppointmentStatus::Cancelled && reason.is_none() {
        return Err(ApiError::field("reason", "is required to cancel"));
    }
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::field("reason", "must be at most 500 characters"));
    }
    let appointment = visible_appointment(&store, &principal, id).await?;
    if !appointment.status.can_become(change.status) {
        return Err(ApiError::Conflict(format!(
            "an appointment that is {} cannot become {}",
            appointment.status.as_str(),
            change.status.as_str()
        )));
    }
    store.change_status(&appointment, change.status, reason, &actor(&principal)).await.map(Json).map_err(booking_error)
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
    responses((status = 200, body = Appointment), (status = 409, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem)))]
async fn reschedule(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Registrars>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<Reschedule>,
) -> Result<Json<Appointment>, ApiError> {
    let expected = super::patients::if_match(&headers)?;
    let appointment = visible_appointment(&store, &principal, id).await?;
    if appointment.version != expected {
        return Err(ApiError::PreconditionFailed("the appointment changed since you read it".into()));
    }
    if appointment.status != AppointmentStatus::Booked {
        return Err(ApiError::Conflict(format!(
            "an appointment that is {} cannot be rescheduled",
            appointment.status.as_str()
        )));
    }
    let practitioner = visible_practitioner(&store, &principal, appointment.practitioner_id).await?;
    let site = site_of(&store, practitioner.hospital_id).await?;
    let slot = slot_for(&practitioner, &site, input.starts_at, input.duration_minutes)?;
    store.book(&appointment, &slot, Some(expected), &actor(&principal)).await.map(Json).map_err(booking_error)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PatientAppointmentsQuery {
    /// `upcoming` (default) or `past`.
    when: Option<String>,
    /// At most this many (1 to 100, default 20).
    limit: Option<i64>,
}

/// A patient's upcoming (soonest first) or past (latest first) appointments.
#[utoipa::path(get, path = "/patients/{id}/appointments", tag = "appointments", params(PatientAppointmentsQuery),
    responses((status = 200, body = Vec<Appointment>), (status = 404, body = medcov_http::Problem)))]
async fn patient_appointments(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<PatientAppointmentsQuery>,
) -> Result<Json<Vec<Appointment>>, ApiError> {
    let upcoming = match query.when.as_deref() {
        None | Some("upcoming") => true,
        Some("past") => false,
        Some(_) => return Err(ApiError::field("when", "must be `upcoming` or `past`")),
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 100"));
    }
    let patient = store
        .patient(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|p| principal.scope.covers_hospital(p.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such patient".into()))?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    store.patient_appointments(patient.id, now, upcoming, limit).await.map(Json).map_err(ApiError::internal)
}

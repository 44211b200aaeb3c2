//! Appointments: booking, moves and status changes, a practitioner's day (cached) and free
//! slots.
//!
//! A booking (or a move) locks its practitioner's row (a counter update, which is portable),
//! reads the overlapping active appointment of the practitioner or the patient and the day's
//! count, lets the domain decide, then writes, in one transaction. On SQLite that transaction
//! is `BEGIN IMMEDIATE`, so no other writer interleaves; on PostgreSQL the row lock serialises
//! bookings of one practitioner and the exclusion constraints catch the rest (a patient booked
//! with two practitioners at once), reported as the same conflict.

use std::time::Duration;

use jiff::tz::TimeZone;
use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_security::Principal;
use medcov_store::outbox::{self, Actor};
use medcov_store::{StoreError, Tx};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{HospitalService, actor};
use crate::domain::appointment::Slot;
use crate::domain::appointment::{
    self, Appointment, AppointmentChange, AppointmentStatus, SlotState, check_category, check_patient, slot_for,
};
use crate::domain::schedule::{self, WorkingHours};
use crate::events::{AppointmentBooked, AppointmentRescheduled, AppointmentStatusChanged};
use crate::store;

/// A practitioner's appointments on one day, as cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Day(Vec<Appointment>);

medcov_cache::json_codec!(Day);

/// How long a cached day may live; bookings, moves and status changes invalidate it at once.
const DAY_TTL: Duration = Duration::from_secs(300);

/// The cache tag of a practitioner's days: every booking, move and status change bumps it.
fn day_tag(practitioner: Uuid) -> Vec<String> {
    vec![format!("hospital:practitioner-day:{practitioner}")]
}

/// A booking, as asked for.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub category: String,
    pub starts_at: OffsetDateTime,
    pub duration_minutes: u16,
}

/// Why a slot was not written: a rule, or the store (which may be PostgreSQL's exclusion
/// constraint, see [`store::is_overlap`]).
enum Refused {
    Rule(Rejection),
    Store(StoreError),
}

impl From<Rejection> for Refused {
    fn from(rejection: Rejection) -> Self {
        Refused::Rule(rejection)
    }
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Refused::Store(error)
    }
}

fn stale() -> Rejection {
    Rejection::Stale("the appointment changed since you read it".into())
}

impl HospitalService {
    /// A hospital's time zone and opening hours.
    async fn site(&self, hospital: Uuid) -> Result<(TimeZone, Vec<WorkingHours>), ApiError> {
        let hospital = self.hospital(hospital).await?;
        let tz = schedule::zone(&hospital.timezone).map_err(ApiError::internal)?;
        Ok((tz, hospital.opening_hours))
    }

    /// An appointment in the principal's hospitals, or "not found".
    pub async fn appointment(&self, principal: &Principal, id: Uuid) -> Result<Appointment, ApiError> {
        store::appointment(&self.db, id)
            .await?
            .filter(|a| principal.scope.covers_hospital(a.hospital_id))
            .ok_or_else(|| ApiError::NotFound("no such appointment".into()))
    }

    /// Every version of an appointment, oldest first.
    pub async fn appointment_history(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<Vec<AppointmentChange>, ApiError> {
        let appointment = self.appointment(principal, id).await?;
        Ok(store::appointment_history(&self.db, appointment.id).await?)
    }

    /// A practitioner's appointments on a local date, by start, through the cache.
    pub async fn practitioner_day(
        &self,
        principal: &Principal,
        id: Uuid,
        date: Date,
    ) -> Result<Vec<Appointment>, ApiError> {
        let practitioner = self.practitioner(principal, id).await?;
        let (tz, _) = self.site(practitioner.hospital_id).await?;
        let (from, to) = schedule::day_bounds(&tz, date).ok_or_else(|| ApiError::field("date", "is out of range"))?;
        let key = format!("hospital:practitioner-day:{id}:{date}");
        let load = async { store::practitioner_appointments(&self.db, id, from, to).await.map(Day) };
        let day = medcov_cache::read_through(self.cache(), &key, &day_tag(id), DAY_TTL, load).await?;
        Ok(day.0)
    }

    /// The free slots of `duration_minutes` a practitioner offers on a local date, as
    /// (start, end) in Unix seconds.
    pub async fn free_slots(
        &self,
        principal: &Principal,
        id: Uuid,
        date: Date,
        duration_minutes: u16,
    ) -> Result<Vec<(i64, i64)>, ApiError> {
        let practitioner = self.practitioner(principal, id).await?;
        let (tz, opening) = self.site(practitioner.hospital_id).await?;
        let (from, to) = schedule::day_bounds(&tz, date).ok_or_else(|| ApiError::field("date", "is out of range"))?;
        let day = store::practitioner_appointments(&self.db, id, from, to).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Ok(appointment::offered_slots(&practitioner, (&tz, &opening), date, duration_minutes, &day, now))
    }

    /// Books a patient with a practitioner of the same hospital.
    pub async fn book(&self, principal: &Principal, request: BookingRequest) -> Result<Appointment, ApiError> {
        check_category(&request.category)?;
        let practitioner = self.practitioner(principal, request.practitioner_id).await?;
        let patient = store::patient(&self.db, request.patient_id)
            .await?
            .filter(|p| p.hospital_id == practitioner.hospital_id && principal.scope.covers_hospital(p.hospital_id))
            .ok_or_else(|| ApiError::NotFound("no such patient in the practitioner's hospital".into()))?;
        check_patient(patient.details.status)?;
        let (tz, opening) = self.site(practitioner.hospital_id).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let slot =
            slot_for(&practitioner.working_hours, (&tz, &opening), request.starts_at, request.duration_minutes, now)?;
        let booked = Appointment::book(Uuid::now_v7(), &practitioner, patient.id, request.category, &slot);
        self.take_slot(&booked, &slot, None, &actor(principal)).await
    }

    /// Moves a booked appointment, read at version `expected`, to another time with the same
    /// practitioner.
    pub async fn reschedule(
        &self,
        principal: &Principal,
        id: Uuid,
        expected: i64,
        (starts_at, duration_minutes): (OffsetDateTime, u16),
    ) -> Result<Appointment, ApiError> {
        let current = self.appointment(principal, id).await?;
        current.check_reschedule(expected)?;
        let practitioner = self.practitioner(principal, current.practitioner_id).await?;
        let (tz, opening) = self.site(practitioner.hospital_id).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let slot = slot_for(&practitioner.working_hours, (&tz, &opening), starts_at, duration_minutes, now)?;
        self.take_slot(&current.moved(&slot), &slot, Some(expected), &actor(principal)).await
    }

    /// Writes `appointment` into `slot`: a new booking, or (with `expected`, the version it
    /// was read at) a move; refused when the slot is taken or the day full.
    async fn take_slot(
        &self,
        appointment: &Appointment,
        slot: &Slot,
        expected: Option<i64>,
        actor: &Actor,
    ) -> Result<Appointment, ApiError> {
        match self.write_slot(appointment, slot, expected, actor).await {
            Ok(()) => {
                self.cache().invalidate(&day_tag(appointment.practitioner_id)).await;
                Ok(appointment.clone())
            }
            // PostgreSQL's exclusion constraint caught what the lock did not (the patient
            // booked with another practitioner at once): name the clash, read after the
            // aborted transaction is gone.
            Err(Refused::Store(error)) if store::is_overlap(&error) => {
                let except = expected.map(|_| appointment.id);
                let mut tx = self.db.begin_read().await?;
                let clash = store::overlapping_appointment(
                    &mut tx,
                    appointment.practitioner_id,
                    appointment.patient_id,
                    slot,
                    except,
                )
                .await?;
                tx.rollback().await?;
                Err(appointment::overlap(clash.unwrap_or(Uuid::nil())).into())
            }
            Err(Refused::Store(error)) => Err(error.into()),
            Err(Refused::Rule(rejection)) => Err(rejection.into()),
        }
    }

    async fn write_slot(
        &self,
        appointment: &Appointment,
        slot: &Slot,
        expected: Option<i64>,
        actor: &Actor,
    ) -> Result<(), Refused> {
        let except = expected.map(|_| appointment.id);
        let (practitioner, patient) = (appointment.practitioner_id, appointment.patient_id);
        let mut tx = self.db.begin_write().await?;
        // Locks the practitioner's row until commit: bookings of one practitioner queue here.
        let capacity = store::hold_practitioner(&mut tx, practitioner).await?;
        let state = SlotState {
            capacity,
            clash: store::overlapping_appointment(&mut tx, practitioner, patient, slot, except).await?,
            booked_that_day: store::appointments_on(&mut tx, practitioner, slot.local_date, except).await?,
        };
        appointment::admit(&state)?;
        let change = appointment.change(OffsetDateTime::now_utc(), actor.user_id);
        match expected {
            None => {
                store::insert_appointment(&mut tx, appointment, slot, &change).await?;
                outbox::write(&mut tx, actor, &AppointmentBooked::of(appointment)).await?;
            }
            Some(expected) => {
                if !store::reschedule_appointment(&mut tx, appointment, slot, expected, &change).await? {
                    return Err(stale().into());
                }
                outbox::write(&mut tx, actor, &AppointmentRescheduled::of(appointment)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves an appointment forward (or cancels it, with a reason).
    pub async fn change_appointment_status(
        &self,
        principal: &Principal,
        id: Uuid,
        next: AppointmentStatus,
        reason: Option<&str>,
    ) -> Result<Appointment, ApiError> {
        let reason = appointment::status_reason(next, reason)?;
        let current = self.appointment(principal, id).await?;
        current.status.check_move(next)?;
        let mut tx = self.db.begin_write().await?;
        let changed = write_status(&mut tx, &current, next, reason, &actor(principal)).await?.ok_or_else(stale)?;
        tx.commit().await?;
        self.cache().invalidate(&day_tag(current.practitioner_id)).await;
        Ok(changed)
    }

    /// A patient's upcoming (soonest first) or past (latest first) appointments.
    pub async fn patient_appointments(
        &self,
        principal: &Principal,
        patient: Uuid,
        upcoming: bool,
        (limit, offset): (i64, i64),
    ) -> Result<Vec<Appointment>, ApiError> {
        let patient = self.patient_in_scope(principal, patient).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Ok(store::patient_appointments(&self.db, patient.id, now, upcoming, (limit, offset)).await?)
    }

    /// Invalidates the cached days of a practitioner, after a commit that changed them.
    pub(super) async fn days_changed(&self, practitioner: Uuid) {
        self.cache().invalidate(&day_tag(practitioner)).await;
    }
}

/// Writes `current` moved to status `next` (with its history entry and
/// `appointment_status_changed`) inside `tx`; `None` when it changed since it was read.
pub(super) async fn write_status(
    tx: &mut Tx,
    current: &Appointment,
    next: AppointmentStatus,
    reason: Option<String>,
    actor: &Actor,
) -> Result<Option<Appointment>, StoreError> {
    let changed = current.with_status(next, reason);
    let change = changed.change(OffsetDateTime::now_utc(), actor.user_id);
    if !store::set_appointment_status(tx, &changed, current.version, &change).await? {
        return Ok(None);
    }
    let event = AppointmentStatusChanged {
        appointment_id: current.id,
        hospital_id: current.hospital_id,
        patient_id: current.patient_id,
        from: current.status,
        to: next,
    };
    outbox::write(tx, actor, &event).await?;
    Ok(Some(changed))
}

//! Appointments: what may be booked where, how a status may move, and which slots a day still
//! offers. The service layer loads what these rules need (in the booking's transaction), asks
//! them, and writes what they allow.

use jiff::tz::TimeZone;
use medcov_domain::{FieldError, Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::patient::PatientStatus;
use super::practitioner::Practitioner;
use super::schedule::{self, WorkingHours};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Arrived,
    CheckedIn,
    Fulfilled,
    Cancelled,
    NoShow,
}

impl TextEnum for AppointmentStatus {}

impl AppointmentStatus {
    /// The statuses that hold their slot (the exclusion constraints' `WHERE` on PostgreSQL).
    pub const ACTIVE: [AppointmentStatus; 3] =
        [AppointmentStatus::Booked, AppointmentStatus::Arrived, AppointmentStatus::CheckedIn];

    /// Holds its slot: counts for double booking.
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Statuses only move forward: booked → arrived → checked_in → fulfilled (steps may be
    /// skipped), or to cancelled from any active status, or to no_show before check-in.
    pub fn can_become(self, next: AppointmentStatus) -> bool {
        use AppointmentStatus::*;
        let rank = |s: AppointmentStatus| match s {
            Booked => 0,
            Arrived => 1,
            CheckedIn => 2,
            Fulfilled => 3,
            Cancelled | NoShow => 4,
        };
        match next {
            Cancelled => self.is_active(),
            NoShow => matches!(self, Booked | Arrived),
            Booked => false,
            forward => self.is_active() && rank(forward) > rank(self),
        }
    }

    /// [`can_become`](Self::can_become), as the conflict a caller is shown.
    pub fn check_move(self, next: AppointmentStatus) -> Result<(), Rejection> {
        if self.can_become(next) {
            Ok(())
        } else {
            Err(Rejection::conflict(format!(
                "an appointment that is {} cannot become {}",
                self.as_str(),
                next.as_str()
            )))
        }
    }
}

/// What a booking may be for.
pub const CATEGORIES: [&str; 7] =
    ["consultation", "laboratory", "imaging", "procedure", "inpatient_admission", "emergency", "follow_up"];

pub fn check_category(category: &str) -> Result<(), Rejection> {
    if CATEGORIES.contains(&category) {
        Ok(())
    } else {
        Err(Rejection::field("category", format!("must be one of {}", CATEGORIES.join(", "))))
    }
}

/// Only an active patient is booked.
pub fn check_patient(status: PatientStatus) -> Result<(), Rejection> {
    if status == PatientStatus::Active {
        Ok(())
    } else {
        Err(Rejection::field("patient_id", "the patient is not active"))
    }
}

/// An appointment of a patient with a practitioner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub practitioner_id: Uuid,
    pub patient_id: Uuid,
    /// One of [`CATEGORIES`].
    pub category: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub status: AppointmentStatus,
    pub reason: Option<String>,
    pub version: i64,
}

impl Appointment {
    /// A new booking of `patient` with `practitioner` in `slot`.
    pub fn book(id: Uuid, practitioner: &Practitioner, patient: Uuid, category: String, slot: &Slot) -> Appointment {
        Appointment {
            id,
            hospital_id: practitioner.hospital_id,
            practitioner_id: practitioner.id,
            patient_id: patient,
            category,
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            status: AppointmentStatus::Booked,
            reason: None,
            version: 1,
        }
    }

    /// The appointment moved to `slot`, at its next version.
    pub fn moved(&self, slot: &Slot) -> Appointment {
        Appointment { starts_at: slot.starts_at, ends_at: slot.ends_at, version: self.version + 1, ..self.clone() }
    }

    /// The appointment in status `next`, at its next version.
    pub fn with_status(&self, next: AppointmentStatus, reason: Option<String>) -> Appointment {
        Appointment { status: next, reason, version: self.version + 1, ..self.clone() }
    }

    /// Whether it may be moved: only a booked appointment, at the version the caller read.
    pub fn check_reschedule(&self, expected: i64) -> Result<(), Rejection> {
        if self.version != expected {
            return Err(Rejection::Stale("the appointment changed since you read it".into()));
        }
        if self.status != AppointmentStatus::Booked {
            return Err(Rejection::conflict(format!(
                "an appointment that is {} cannot be rescheduled",
                self.status.as_str()
            )));
        }
        Ok(())
    }

    /// Its history entry as of now, by `user`.
    pub fn change(&self, at: OffsetDateTime, by_user: Uuid) -> AppointmentChange {
        AppointmentChange {
            appointment_id: self.id,
            version: self.version,
            at,
            by_user,
            status: self.status,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            reason: self.reason.clone(),
        }
    }
}

/// One version of an appointment: who moved it where, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct AppointmentChange {
    pub appointment_id: Uuid,
    pub version: i64,
    pub at: OffsetDateTime,
    pub by_user: Uuid,
    pub status: AppointmentStatus,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub reason: Option<String>,
}

/// A requested slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    /// The practitioner's local date of the slot, for the daily capacity.
    pub local_date: Date,
}

impl Slot {
    /// Start and end as Unix seconds, as the appointments table keeps them.
    pub fn seconds(&self) -> (i64, i64) {
        (self.starts_at.unix_timestamp(), self.ends_at.unix_timestamp())
    }
}

/// The slot a request asks for, checked against the hospital's opening hours and the
/// practitioner's working hours (`now` in Unix seconds; a start up to five minutes ago is
/// still taken).
pub fn slot_for(
    working_hours: &[WorkingHours],
    (tz, opening): (&TimeZone, &[WorkingHours]),
    starts_at: OffsetDateTime,
    duration_minutes: u16,
    now: i64,
) -> Result<Slot, Rejection> {
    let mut errors = Vec::new();
    if !(5..=1440).contains(&duration_minutes) || !duration_minutes.is_multiple_of(5) {
        errors.push(FieldError::new("duration_minutes", "must be a multiple of 5 between 5 and 1440"));
    }
    let start = starts_at.unix_timestamp();
    if start % 60 != 0 {
        errors.push(FieldError::new("starts_at", "must be on a whole minute"));
    }
    if start < now - 300 {
        errors.push(FieldError::new("starts_at", "must not be in the past"));
    }
    let end = start + i64::from(duration_minutes) * 60;
    if errors.is_empty() && !schedule::open_for(opening, tz, start, end) {
        errors.push(FieldError::new("starts_at", "is outside the hospital's opening hours"));
    } else if errors.is_empty() && !schedule::within_hours(working_hours, tz, start, end) {
        errors.push(FieldError::new("starts_at", "is outside the practitioner's working hours"));
    }
    Rejection::check(errors)?;
    let out_of_range = || Rejection::field("starts_at", "is out of range");
    let (local_date, _, _) = schedule::local(tz, start).ok_or_else(out_of_range)?;
    let ends_at =
        starts_at.checked_add(time::Duration::minutes(i64::from(duration_minutes))).ok_or_else(out_of_range)?;
    Ok(Slot { starts_at, ends_at, local_date })
}

/// What a booking's transaction found about its slot.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotState {
    /// The practitioner's daily capacity; `None` when they do not take appointments.
    pub capacity: Option<i32>,
    /// An active appointment of the practitioner or the patient overlapping the slot.
    pub clash: Option<Uuid>,
    /// Appointments (other than this one) not cancelled on the slot's local date.
    pub booked_that_day: i64,
}

/// Whether a booking (or a move) may take its slot.
pub fn admit(state: &SlotState) -> Result<(), Rejection> {
    let Some(capacity) = state.capacity else {
        return Err(Rejection::conflict("the practitioner is not taking appointments"));
    };
    if let Some(clash) = state.clash {
        return Err(overlap(clash));
    }
    if state.booked_that_day >= i64::from(capacity) {
        return Err(Rejection::conflict(format!("the practitioner's day is full ({capacity} appointments)")));
    }
    Ok(())
}

/// The refusal of a slot that overlaps appointment `clash`.
pub fn overlap(clash: Uuid) -> Rejection {
    Rejection::conflict(format!(
        "the practitioner or the patient already has an active appointment at that time: appointment {clash}"
    ))
}

/// The reason a status change carries: required to cancel, at most 500 characters; blank is
/// none.
pub fn status_reason(next: AppointmentStatus, reason: Option<&str>) -> Result<Option<String>, Rejection> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if next == AppointmentStatus::Cancelled && reason.is_none() {
        return Err(Rejection::field("reason", "is required to cancel"));
    }
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(Rejection::field("reason", "must be at most 500 characters"));
    }
    Ok(reason.map(str::to_owned))
}

/// The free slots of `duration_minutes` a practitioner still offers on local `date`, from
/// `now` on: inside working and opening hours, clear of active appointments (`day`), none when
/// the practitioner is inactive or the day is full.
pub fn offered_slots(
    practitioner: &Practitioner,
    (tz, opening): (&TimeZone, &[WorkingHours]),
    date: Date,
    duration_minutes: u16,
    day: &[Appointment],
    now: i64,
) -> Vec<(i64, i64)> {
    let taken = day.iter().filter(|a| a.status != AppointmentStatus::Cancelled).count();
    if !practitioner.active || taken >= usize::try_from(practitioner.daily_capacity).unwrap_or(0) {
        return Vec::new();
    }
    let busy: Vec<(i64, i64)> = day
        .iter()
        .filter(|a| a.status.is_active())
        .map(|a| (a.starts_at.unix_timestamp(), a.ends_at.unix_timestamp()))
        .collect();
    schedule::free_slots(&practitioner.working_hours, tz, date, duration_minutes, &busy)
        .into_iter()
        .filter(|(s, e)| *s >= now && schedule::open_for(opening, tz, *s, *e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::{LocalTime, Weekday, zone};
    use time::macros::datetime;

    fn practitioner(capacity: i32) -> Practitioner {
        let every_day = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ]
        .map(|weekday| WorkingHours { weekday, start: LocalTime(8 * 60), end: LocalTime(12 * 60) });
        Practitioner {
            id: Uuid::now_v7(),
            hospital_id: Uuid::now_v7(),
            name: "Dr. A".into(),
            specialty: "general practice".into(),
            working_hours: every_day.to_vec(),
            daily_capacity: capacity,
            active: true,
            version: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn statuses_only_move_forward() {
        use AppointmentStatus::*;
        let allowed = [
            (Booked, Arrived),
            (Booked, CheckedIn),
            (Booked, Fulfilled),
            (Booked, Cancelled),
            (Booked, NoShow),
            (Arrived, CheckedIn),
            (Arrived, Fulfilled),
            (Arrived, Cancelled),
            (Arrived, NoShow),
            (CheckedIn, Fulfilled),
            (CheckedIn, Cancelled),
        ];
        let all = [Booked, Arrived, CheckedIn, Fulfilled, Cancelled, NoShow];
        for from in all {
            for to in all {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
                assert_eq!(from.check_move(to).is_ok(), allowed.contains(&(from, to)));
            }
        }
        assert_eq!(
            Fulfilled.check_move(Cancelled),
            Err(Rejection::conflict("an appointment that is fulfilled cannot become cancelled"))
        );
    }

    #[test]
    fn statuses_are_words() {
        assert_eq!(AppointmentStatus::CheckedIn.as_str(), "checked_in");
        assert_eq!(AppointmentStatus::parse("no_show"), Some(AppointmentStatus::NoShow));
        assert_eq!(AppointmentStatus::parse("lost"), None);
    }

    #[test]
    fn a_slot_is_admitted_only_when_free_and_the_day_has_room() {
        let clash = Uuid::now_v7();
        let state = |capacity, clash, booked_that_day| SlotState { capacity, clash, booked_that_day };
        let table = [
            (state(Some(2), None, 1), None),
            (state(None, None, 0), Some("the practitioner is not taking appointments".to_owned())),
            (
                state(Some(2), Some(clash), 0),
                Some(format!(
                    "the practitioner or the patient already has an active appointment at that time: appointment {clash}"
                )),
            ),
            (state(Some(2), None, 2), Some("the practitioner's day is full (2 appointments)".to_owned())),
            // An overlap is named before a full day.
            (state(Some(1), Some(clash), 1), Some(overlap(clash).to_string())),
        ];
        for (state, refusal) in table {
            assert_eq!(admit(&state).err().map(|r| r.to_string()), refusal, "{state:?}");
        }
    }

    #[test]
    fn a_cancellation_needs_a_reason() {
        use AppointmentStatus::*;
        assert_eq!(status_reason(Cancelled, None), Err(Rejection::field("reason", "is required to cancel")));
        assert_eq!(status_reason(Cancelled, Some("  ")), Err(Rejection::field("reason", "is required to cancel")));
        assert_eq!(status_reason(Cancelled, Some(" late ")), Ok(Some("late".to_owned())));
        assert_eq!(status_reason(Arrived, Some(" ")), Ok(None));
        assert!(status_reason(NoShow, Some(&"x".repeat(501))).is_err());
    }

    #[test]
    fn slots_must_be_whole_future_minutes_inside_the_hours() {
        let tz = zone("Africa/Nairobi").unwrap();
        let p = practitioner(10);
        // Monday 2026-11-30; Nairobi is UTC+3.
        let nine = datetime!(2026-11-30 06:00 UTC);
        let now = nine.unix_timestamp() - 3600;
        let opening = [WorkingHours { weekday: Weekday::Monday, start: LocalTime(9 * 60), end: LocalTime(18 * 60) }];
        let slot = slot_for(&p.working_hours, (&tz, &[]), nine, 30, now).unwrap();
        assert_eq!(slot.seconds(), (nine.unix_timestamp(), nine.unix_timestamp() + 1800));
        assert_eq!(slot.local_date, time::macros::date!(2026 - 11 - 30));
        let field = |r: Result<Slot, Rejection>| match r {
            Err(Rejection::Invalid(errors)) => errors.into_iter().map(|e| (e.field, e.reason)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        // (start, minutes, opening hours, now, the field refused, why)
        type Case<'a> = (OffsetDateTime, u16, &'a [WorkingHours], i64, &'a str, &'a str);
        let table: [Case; 6] = [
            (nine, 7, &[], now, "duration_minutes", "must be a multiple of 5 between 5 and 1440"),
            (nine + time::Duration::seconds(30), 30, &[], now, "starts_at", "must be on a whole minute"),
            (nine, 30, &[], nine.unix_timestamp() + 301, "starts_at", "must not be in the past"),
            (
                nine - time::Duration::hours(1),
                30,
                &opening,
                now - 7200,
                "starts_at",
                "is outside the hospital's opening hours",
            ),
            (nine + time::Duration::hours(3), 30, &[], now, "starts_at", "is outside the practitioner's working hours"),
            (
                nine + time::Duration::hours(3),
                30,
                &opening,
                now,
                "starts_at",
                "is outside the practitioner's working hours",
            ),
        ];
        for (start, minutes, opening, now, name, reason) in table {
            let errors = field(slot_for(&p.working_hours, (&tz, opening), start, minutes, now));
            assert_eq!(errors, [(name.to_owned(), reason.to_owned())], "{start} {minutes}");
        }
        // Five minutes late is still on time.
        assert!(slot_for(&p.working_hours, (&tz, &[]), nine, 30, nine.unix_timestamp() + 300).is_ok());
    }

    #[test]
    fn offered_slots_leave_out_busy_times_and_a_full_day() {
        let tz = zone("Africa/Nairobi").unwrap();
        let p = practitioner(2);
        let date = time::macros::date!(2026 - 11 - 30);
        let eight = datetime!(2026-11-30 05:00 UTC);
        let slot = |minutes: i64| Slot {
            starts_at: eight + time::Duration::minutes(minutes),
            ends_at: eight + time::Duration::minutes(minutes + 30),
            local_date: date,
        };
        let booked = Appointment::book(Uuid::now_v7(), &p, Uuid::now_v7(), "consultation".into(), &slot(0));
        let now = eight.unix_timestamp() - 60;
        // 08:00-12:00 holds 13 half hours on the quarter grid; the booking takes 08:00 and 08:15.
        let free = offered_slots(&p, (&tz, &[]), date, 30, std::slice::from_ref(&booked), now);
        assert_eq!(free.len(), 13);
        assert!(!free.iter().any(|(s, _)| *s < eight.unix_timestamp() + 1800));
        // A cancelled appointment frees its slot and does not count.
        let cancelled = booked.with_status(AppointmentStatus::Cancelled, Some("ill".into()));
        assert_eq!(offered_slots(&p, (&tz, &[]), date, 30, &[cancelled.clone(), cancelled], now).len(), 15);
        // A full day offers nothing; nor does an inactive practitioner.
        let other = Appointment::book(Uuid::now_v7(), &p, Uuid::now_v7(), "consultation".into(), &slot(60));
        assert!(offered_slots(&p, (&tz, &[]), date, 30, &[booked.clone(), other], now).is_empty());
        let away = Practitioner { active: false, ..p.clone() };
        assert!(offered_slots(&away, (&tz, &[]), date, 30, &[], now).is_empty());
        // Nothing in the past.
        let later = eight.unix_timestamp() + 3 * 3600;
        assert_eq!(offered_slots(&p, (&tz, &[]), date, 30, &[], later).len(), 3);
    }

    #[test]
    fn only_a_booked_appointment_at_the_read_version_moves() {
        let p = practitioner(2);
        let eight = datetime!(2026-11-30 05:00 UTC);
        let slot = Slot { starts_at: eight, ends_at: eight + time::Duration::minutes(30), local_date: eight.date() };
        let booked = Appointment::book(Uuid::now_v7(), &p, Uuid::now_v7(), "consultation".into(), &slot);
        assert_eq!(booked.check_reschedule(1), Ok(()));
        assert!(matches!(booked.check_reschedule(2), Err(Rejection::Stale(_))));
        let arrived = booked.with_status(AppointmentStatus::Arrived, None);
        assert_eq!(
            arrived.check_reschedule(2),
            Err(Rejection::conflict("an appointment that is arrived cannot be rescheduled"))
        );
        let moved = booked.moved(&Slot { starts_at: eight + time::Duration::hours(1), ..slot });
        assert_eq!(
            (moved.version, moved.starts_at, moved.status),
            (2, eight + time::Duration::hours(1), booked.status)
        );
    }

    #[test]
    fn categories_and_patients() {
        assert!(check_category("laboratory").is_ok());
        assert!(matches!(check_category("spa"), Err(Rejection::Invalid(e)) if e[0].field == "category"));
        assert!(check_patient(PatientStatus::Active).is_ok());
        assert_eq!(
            check_patient(PatientStatus::Deceased),
            Err(Rejection::field("patient_id", "the patient is not active"))
        );
    }
}

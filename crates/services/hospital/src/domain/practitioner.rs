//! Practitioners: who is booked, when they work, and how many appointments a day they take.

use medcov_domain::{FieldError, Rejection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::schedule::{self, WorkingHours};

#[derive(Debug, Clone, PartialEq)]
pub struct Practitioner {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub name: String,
    pub specialty: String,
    pub working_hours: Vec<WorkingHours>,
    /// Appointments a day at most.
    pub daily_capacity: i32,
    /// `false`: takes no new bookings.
    pub active: bool,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A new practitioner, as the desk describes them.
#[derive(Debug, Clone)]
pub struct NewPractitioner {
    pub hospital_id: Uuid,
    pub name: String,
    pub specialty: String,
    pub working_hours: Vec<WorkingHours>,
    pub daily_capacity: i32,
}

/// A change to a practitioner: fields left out keep their value.
#[derive(Debug, Clone, Default)]
pub struct PractitionerEdit {
    pub name: Option<String>,
    pub specialty: Option<String>,
    pub working_hours: Option<Vec<WorkingHours>>,
    pub daily_capacity: Option<i32>,
    pub active: Option<bool>,
}

impl Practitioner {
    /// A new, active practitioner at version 1, when the description is valid.
    pub fn new(id: Uuid, input: NewPractitioner, now: OffsetDateTime) -> Result<Practitioner, Rejection> {
        let practitioner = Practitioner {
            id,
            hospital_id: input.hospital_id,
            name: input.name.trim().to_owned(),
            specialty: input.specialty.trim().to_owned(),
            working_hours: input.working_hours,
            daily_capacity: input.daily_capacity,
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        Rejection::check(practitioner.validate())?;
        Ok(practitioner)
    }

    /// The practitioner with `edit` applied, when it was read at `expected` and the result is
    /// valid.
    pub fn edited(&self, expected: i64, edit: PractitionerEdit) -> Result<Practitioner, Rejection> {
        if self.version != expected {
            return Err(Rejection::Stale("the practitioner changed since you read it".into()));
        }
        let mut p = self.clone();
        if let Some(v) = edit.name {
            p.name = v.trim().to_owned();
        }
        if let Some(v) = edit.specialty {
            p.specialty = v.trim().to_owned();
        }
        if let Some(v) = edit.working_hours {
            p.working_hours = v;
        }
        if let Some(v) = edit.daily_capacity {
            p.daily_capacity = v;
        }
        if let Some(v) = edit.active {
            p.active = v;
        }
        Rejection::check(p.validate())?;
        Ok(p)
    }

    /// Every problem with the record, field by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            errors.push(FieldError::new("name", "must be 1 to 200 characters"));
        } else if let Some(problem) = medcov_domain::text::display_problem("name", &self.name) {
            errors.push(problem);
        }
        if self.specialty.trim().is_empty() || self.specialty.chars().count() > 100 {
            errors.push(FieldError::new("specialty", "must be 1 to 100 characters"));
        }
        if !(1..=500).contains(&self.daily_capacity) {
            errors.push(FieldError::new("daily_capacity", "must be between 1 and 500"));
        }
        errors.extend(schedule::check_hours(&self.working_hours));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::{LocalTime, Weekday};

    fn input() -> NewPractitioner {
        NewPractitioner {
            hospital_id: Uuid::now_v7(),
            name: " Dr. Wanjiru Kamau ".into(),
            specialty: "general practice".into(),
            working_hours: vec![WorkingHours {
                weekday: Weekday::Monday,
                start: LocalTime(8 * 60),
                end: LocalTime(17 * 60),
            }],
            daily_capacity: 16,
        }
    }

    fn fields(result: Result<Practitioner, Rejection>) -> Vec<String> {
        match result {
            Err(Rejection::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_practitioner_is_trimmed_active_and_checked() {
        let p = Practitioner::new(Uuid::now_v7(), input(), OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!((p.name.as_str(), p.active, p.version), ("Dr. Wanjiru Kamau", true, 1));
        let table: [(NewPractitioner, &str); 4] = [
            (NewPractitioner { name: "  ".into(), ..input() }, "name"),
            (NewPractitioner { specialty: "x".repeat(101), ..input() }, "specialty"),
            (NewPractitioner { daily_capacity: 0, ..input() }, "daily_capacity"),
            (
                NewPractitioner {
                    working_hours: vec![WorkingHours {
                        weekday: Weekday::Friday,
                        start: LocalTime(600),
                        end: LocalTime(540),
                    }],
                    ..input()
                },
                "working_hours[0]",
            ),
        ];
        for (input, field) in table {
            assert_eq!(fields(Practitioner::new(Uuid::now_v7(), input, OffsetDateTime::UNIX_EPOCH)), [field]);
        }
    }

    #[test]
    fn an_edit_needs_the_version_read_and_stays_valid() {
        let p = Practitioner::new(Uuid::now_v7(), input(), OffsetDateTime::UNIX_EPOCH).unwrap();
        let edit = || PractitionerEdit { daily_capacity: Some(20), active: Some(false), ..PractitionerEdit::default() };
        let changed = p.edited(1, edit()).unwrap();
        assert_eq!((changed.daily_capacity, changed.active, changed.name), (20, false, p.name.clone()));
        assert!(matches!(p.edited(2, edit()), Err(Rejection::Stale(_))));
        let bad = PractitionerEdit { daily_capacity: Some(501), ..PractitionerEdit::default() };
        assert_eq!(fields(p.edited(1, bad)), ["daily_capacity"]);
    }
}

//! Rows as the tables hold them, and their conversion to the domain's records. A stored word
//! (or instant) this version cannot read is [`StoreError::Corrupt`], naming its table and
//! column, never a default.

use medcov_store::{StoreError, decode};
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::access::AccessEntry;
use crate::domain::appointment::{Appointment, AppointmentChange};
use crate::domain::coverage::Coverage;
use crate::domain::encounter::{CatalogEntry, Encounter, EncounterRecord};
use crate::domain::hospital::{Address, Hospital};
use crate::domain::patient::{HistoryEntry, Patient, PatientDetails};
use crate::domain::practitioner::Practitioner;
use crate::domain::schedule::WorkingHours;

/// An instant kept as Unix seconds.
fn instant(table: &'static str, column: &'static str, seconds: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| StoreError::Corrupt {
        table,
        column,
        value: seconds.to_string(),
    })
}

pub(super) const HOSPITAL_COLUMNS: &str =
    "id, code, name, timezone, currency, address, opening_hours, active, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct HospitalRow {
    id: Uuid,
    code: String,
    name: String,
    timezone: String,
    currency: String,
    address: Json<Address>,
    opening_hours: Json<Vec<WorkingHours>>,
    active: bool,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<HospitalRow> for Hospital {
    fn from(row: HospitalRow) -> Self {
        Hospital {
            id: row.id,
            code: row.code,
            name: row.name,
            timezone: row.timezone,
            currency: row.currency,
            address: row.address.0,
            opening_hours: row.opening_hours.0,
            active: row.active,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub(super) const PATIENT_COLUMNS: &str = "id, hospital_id, mrn, details, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct PatientRow {
    id: Uuid,
    hospital_id: Uuid,
    mrn: String,
    details: Json<PatientDetails>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<PatientRow> for Patient {
    fn from(row: PatientRow) -> Self {
        Patient {
            id: row.id,
            hospital_id: row.hospital_id,
            mrn: row.mrn,
            details: row.details.0,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct HistoryRow {
    version: i64,
    changed_at: OffsetDateTime,
    changed_by: Uuid,
    request_id: Option<String>,
    record: Json<serde_json::Value>,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(row: HistoryRow) -> Self {
        HistoryEntry {
            version: row.version,
            changed_at: row.changed_at,
            changed_by: row.changed_by,
            request_id: row.request_id,
            record: row.record.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccessRow {
    id: Uuid,
    at: OffsetDateTime,
    user_id: Uuid,
    patient_id: Uuid,
    hospital_id: Uuid,
    action: String,
    request_id: Option<String>,
}

impl TryFrom<AccessRow> for AccessEntry {
    type Error = StoreError;

    fn try_from(row: AccessRow) -> Result<AccessEntry, StoreError> {
        Ok(AccessEntry {
            id: row.id,
            at: row.at,
            user_id: row.user_id,
            patient_id: row.patient_id,
            hospital_id: row.hospital_id,
            action: decode("access_log", "action", &row.action)?,
            request_id: row.request_id,
        })
    }
}

pub(super) const PRACTITIONER_COLUMNS: &str =
    "id, hospital_id, name, specialty, working_hours, daily_capacity, active, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct PractitionerRow {
    id: Uuid,
    hospital_id: Uuid,
    name: String,
    specialty: String,
    working_hours: Json<Vec<WorkingHours>>,
    daily_capacity: i32,
    active: bool,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<PractitionerRow> for Practitioner {
    fn from(row: PractitionerRow) -> Self {
        Practitioner {
            id: row.id,
            hospital_id: row.hospital_id,
            name: row.name,
            specialty: row.specialty,
            working_hours: row.working_hours.0,
            daily_capacity: row.daily_capacity,
            active: row.active,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub(super) const APPOINTMENT_COLUMNS: &str =
    "id, hospital_id, practitioner_id, patient_id, category, starts_at, ends_at, status, reason, version";

#[derive(sqlx::FromRow)]
pub(super) struct AppointmentRow {
    id: Uuid,
    hospital_id: Uuid,
    practitioner_id: Uuid,
    patient_id: Uuid,
    category: String,
    starts_at: i64,
    ends_at: i64,
    status: String,
    reason: Option<String>,
    version: i64,
}

impl TryFrom<AppointmentRow> for Appointment {
    type Error = StoreError;

    fn try_from(row: AppointmentRow) -> Result<Appointment, StoreError> {
        Ok(Appointment {
            id: row.id,
            hospital_id: row.hospital_id,
            practitioner_id: row.practitioner_id,
            patient_id: row.patient_id,
            category: row.category,
            starts_at: instant("appointments", "starts_at", row.starts_at)?,
            ends_at: instant("appointments", "ends_at", row.ends_at)?,
            status: decode("appointments", "status", &row.status)?,
            reason: row.reason,
            version: row.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AppointmentChangeRow {
    appointment_id: Uuid,
    version: i64,
    at: OffsetDateTime,
    by_user: Uuid,
    status: String,
    starts_at: i64,
    ends_at: i64,
    reason: Option<String>,
}

impl TryFrom<AppointmentChangeRow> for AppointmentChange {
    type Error = StoreError;

    fn try_from(row: AppointmentChangeRow) -> Result<AppointmentChange, StoreError> {
        Ok(AppointmentChange {
            appointment_id: row.appointment_id,
            version: row.version,
            at: row.at,
            by_user: row.by_user,
            status: decode("appointment_history", "status", &row.status)?,
            starts_at: instant("appointment_history", "starts_at", row.starts_at)?,
            ends_at: instant("appointment_history", "ends_at", row.ends_at)?,
            reason: row.reason,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CatalogRow {
    hospital_id: Uuid,
    code: String,
    category: String,
    description: String,
    active: bool,
}

impl From<CatalogRow> for CatalogEntry {
    fn from(row: CatalogRow) -> Self {
        CatalogEntry {
            hospital_id: row.hospital_id,
            code: row.code,
            category: row.category,
            description: row.description,
            active: row.active,
        }
    }
}

pub(super) const ENCOUNTER_COLUMNS: &str = "id, hospital_id, patient_id, practitioner_id, appointment_id, visit_type, \
     status, record, version, opened_at, closed_at";

#[derive(sqlx::FromRow)]
pub(super) struct EncounterRow {
    id: Uuid,
    hospital_id: Uuid,
    patient_id: Uuid,
    practitioner_id: Uuid,
    appointment_id: Option<Uuid>,
    visit_type: String,
    status: String,
    record: Json<EncounterRecord>,
    version: i64,
    opened_at: OffsetDateTime,
    closed_at: Option<OffsetDateTime>,
}

impl TryFrom<EncounterRow> for Encounter {
    type Error = StoreError;

    fn try_from(row: EncounterRow) -> Result<Encounter, StoreError> {
        Ok(Encounter {
            id: row.id,
            hospital_id: row.hospital_id,
            patient_id: row.patient_id,
            practitioner_id: row.practitioner_id,
            appointment_id: row.appointment_id,
            visit_type: decode("encounters", "visit_type", &row.visit_type)?,
            status: decode("encounters", "status", &row.status)?,
            record: row.record.0,
            version: row.version,
            opened_at: row.opened_at,
            closed_at: row.closed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CoverageRow {
    member_number: String,
    status: String,
    reason: Option<String>,
    insurer_id: Option<Uuid>,
    policy_id: Option<Uuid>,
    checked_on: Date,
}

impl From<CoverageRow> for Coverage {
    fn from(row: CoverageRow) -> Self {
        Coverage {
            member_number: row.member_number,
            status: row.status,
            reason: row.reason,
            insurer_id: row.insurer_id,
            policy_id: row.policy_id,
            checked_on: row.checked_on,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_appointment_status_is_corrupt_not_a_default() {
        let row = |status: &str| AppointmentRow {
            id: Uuid::nil(),
            hospital_id: Uuid::nil(),
            practitioner_id: Uuid::nil(),
            patient_id: Uuid::nil(),
            category: "consultation".into(),
            starts_at: 0,
            ends_at: 1800,
            status: status.into(),
            reason: None,
            version: 1,
        };
        assert!(Appointment::try_from(row("checked_in")).is_ok());
        let error = Appointment::try_from(row("postponed")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "appointments.status holds \"postponed\", which is not a value this version knows"
        );
        let change = AppointmentChangeRow {
            appointment_id: Uuid::nil(),
            version: 1,
            at: OffsetDateTime::UNIX_EPOCH,
            by_user: Uuid::nil(),
            status: "postponed".into(),
            starts_at: 0,
            ends_at: 1800,
            reason: None,
        };
        assert!(matches!(
            AppointmentChange::try_from(change),
            Err(StoreError::Corrupt { table: "appointment_history", column: "status", .. })
        ));
        let far = AppointmentRow { starts_at: i64::MAX, ..row("booked") };
        assert!(matches!(
            Appointment::try_from(far),
            Err(StoreError::Corrupt { table: "appointments", column: "starts_at", .. })
        ));
    }

    #[test]
    fn an_unknown_encounter_word_is_corrupt() {
        let row = |visit_type: &str, status: &str| EncounterRow {
            id: Uuid::nil(),
            hospital_id: Uuid::nil(),
            patient_id: Uuid::nil(),
            practitioner_id: Uuid::nil(),
            appointment_id: None,
            visit_type: visit_type.into(),
            status: status.into(),
            record: Json(EncounterRecord::default()),
            version: 1,
            opened_at: OffsetDateTime::UNIX_EPOCH,
            closed_at: None,
        };
        assert!(Encounter::try_from(row("normal", "closed")).is_ok());
        assert!(matches!(
            Encounter::try_from(row("house_call", "open")),
            Err(StoreError::Corrupt { column: "visit_type", .. })
        ));
        assert!(matches!(
            Encounter::try_from(row("normal", "archived")),
            Err(StoreError::Corrupt { column: "status", .. })
        ));
    }
}

//! The hospital service's domain events, one type each, written to its outbox with
//! [`medcov_store::outbox::write`] in the transaction of the change they report. The payload is
//! the type's JSON form: other services and the event log read these field names (see
//! docs/events.md), so they do not change within a version.
//!
//! Events carry identifiers and codes, never names or contact details.

use medcov_store::outbox::DomainEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::appointment::{Appointment, AppointmentStatus};
use crate::domain::encounter::{Diagnosis, VisitType};
use crate::domain::patient::{MemberNumber, Patient, PatientStatus};

/// `hospital.patient_registered.v1`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientRegistered {
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    pub mrn: String,
    pub member_numbers: Vec<MemberNumber>,
}

impl PatientRegistered {
    pub fn of(patient: &Patient) -> PatientRegistered {
        PatientRegistered {
            patient_id: patient.id,
            hospital_id: patient.hospital_id,
            mrn: patient.mrn.clone(),
            member_numbers: patient.details.member_numbers.clone(),
        }
    }
}

impl DomainEvent for PatientRegistered {
    const TYPE: &'static str = "hospital.patient_registered.v1";
    const AGGREGATE: &'static str = "patient";
    fn aggregate_id(&self) -> Uuid {
        self.patient_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

/// `hospital.patient_updated.v1`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientUpdated {
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    pub version: i64,
    pub status: PatientStatus,
    pub member_numbers: Vec<MemberNumber>,
}

impl PatientUpdated {
    pub fn of(patient: &Patient) -> PatientUpdated {
        PatientUpdated {
            patient_id: patient.id,
            hospital_id: patient.hospital_id,
            version: patient.version,
            status: patient.details.status,
            member_numbers: patient.details.member_numbers.clone(),
        }
    }
}

impl DomainEvent for PatientUpdated {
    const TYPE: &'static str = "hospital.patient_updated.v1";
    const AGGREGATE: &'static str = "patient";
    fn aggregate_id(&self) -> Uuid {
        self.patient_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

/// Where and when an appointment is: the payload of `appointment_booked` and
/// `appointment_rescheduled`. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppointmentSlot {
    pub appointment_id: Uuid,
    pub hospital_id: Uuid,
    pub practitioner_id: Uuid,
    pub patient_id: Uuid,
    pub category: String,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl AppointmentSlot {
    fn of(appointment: &Appointment) -> AppointmentSlot {
        AppointmentSlot {
            appointment_id: appointment.id,
            hospital_id: appointment.hospital_id,
            practitioner_id: appointment.practitioner_id,
            patient_id: appointment.patient_id,
            category: appointment.category.clone(),
            starts_at: appointment.starts_at.unix_timestamp(),
            ends_at: appointment.ends_at.unix_timestamp(),
        }
    }
}

/// `hospital.appointment_booked.v1`
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AppointmentBooked(pub AppointmentSlot);

impl AppointmentBooked {
    pub fn of(appointment: &Appointment) -> AppointmentBooked {
        AppointmentBooked(AppointmentSlot::of(appointment))
    }
}

impl DomainEvent for AppointmentBooked {
    const TYPE: &'static str = "hospital.appointment_booked.v1";
    const AGGREGATE: &'static str = "appointment";
    fn aggregate_id(&self) -> Uuid {
        self.0.appointment_id
    }
    fn tenant_id(&self) -> Uuid {
        self.0.hospital_id
    }
}

/// `hospital.appointment_rescheduled.v1`: as booked, with the new times.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AppointmentRescheduled(pub AppointmentSlot);

impl AppointmentRescheduled {
    pub fn of(appointment: &Appointment) -> AppointmentRescheduled {
        AppointmentRescheduled(AppointmentSlot::of(appointment))
    }
}

impl DomainEvent for AppointmentRescheduled {
    const TYPE: &'static str = "hospital.appointment_rescheduled.v1";
    const AGGREGATE: &'static str = "appointment";
    fn aggregate_id(&self) -> Uuid {
        self.0.appointment_id
    }
    fn tenant_id(&self) -> Uuid {
        self.0.hospital_id
    }
}

/// `hospital.appointment_status_changed.v1`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppointmentStatusChanged {
    pub appointment_id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub from: AppointmentStatus,
    pub to: AppointmentStatus,
}

impl DomainEvent for AppointmentStatusChanged {
    const TYPE: &'static str = "hospital.appointment_status_changed.v1";
    const AGGREGATE: &'static str = "appointment";
    fn aggregate_id(&self) -> Uuid {
        self.appointment_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

/// `hospital.encounter_completed.v1`: everything billing needs to price and claim the care.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncounterCompleted {
    pub encounter_id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
    /// The day the encounter opened, `YYYY-MM-DD`, in the hospital's time zone.
    pub date_of_service: String,
    /// The hospital's currency: every price of the invoice is in it.
    pub currency: String,
    /// The hospital's IANA time zone, by which its days are counted.
    pub timezone: String,
    pub member_numbers: Vec<MemberNumber>,
    pub diagnoses: Vec<Diagnosis>,
    pub services: Vec<RenderedService>,
}

/// A service line with what the catalog says of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedService {
    pub code: String,
    pub category: String,
    pub description: String,
    pub quantity: u32,
    /// The approved pre-authorisation the claim cites for it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preauth_id: Option<Uuid>,
}

impl DomainEvent for EncounterCompleted {
    const TYPE: &'static str = "hospital.encounter_completed.v1";
    const AGGREGATE: &'static str = "encounter";
    fn aggregate_id(&self) -> Uuid {
        self.encounter_id
    }
    fn tenant_id(&self) -> Uuid {
        self.hospital_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_keep_their_field_names() {
        let id = Uuid::nil();
        let slot = AppointmentSlot {
            appointment_id: id,
            hospital_id: id,
            practitioner_id: id,
            patient_id: id,
            category: "consultation".into(),
            starts_at: 60,
            ends_at: 1860,
        };
        let expected = json!({"appointment_id": id, "hospital_id": id, "practitioner_id": id, "patient_id": id,
            "category": "consultation", "starts_at": 60, "ends_at": 1860});
        assert_eq!(serde_json::to_value(AppointmentBooked(slot.clone())).unwrap(), expected);
        assert_eq!(serde_json::to_value(AppointmentRescheduled(slot)).unwrap(), expected);
        let changed = AppointmentStatusChanged {
            appointment_id: id,
            hospital_id: id,
            patient_id: id,
            from: AppointmentStatus::CheckedIn,
            to: AppointmentStatus::Fulfilled,
        };
        assert_eq!(
            serde_json::to_value(changed).unwrap(),
            json!({"appointment_id": id, "hospital_id": id, "patient_id": id, "from": "checked_in", "to": "fulfilled"})
        );
        let completed = EncounterCompleted {
            encounter_id: id,
            hospital_id: id,
            patient_id: id,
            practitioner_id: id,
            appointment_id: None,
            visit_type: VisitType::Emergency,
            date_of_service: "2026-11-30".into(),
            currency: "KES".into(),
            timezone: "Africa/Nairobi".into(),
            member_numbers: vec![MemberNumber { insurer_id: id, member_number: "MC-1".into() }],
            diagnoses: vec![Diagnosis { code: "J06.9".into(), primary: true }],
            services: vec![RenderedService {
                code: "CONS-GP".into(),
                category: "consultation".into(),
                description: "GP".into(),
                quantity: 1,
                preauth_id: None,
            }],
        };
        assert_eq!(
            serde_json::to_value(completed).unwrap(),
            json!({"encounter_id": id, "hospital_id": id, "patient_id": id, "practitioner_id": id,
                "appointment_id": null, "visit_type": "emergency", "date_of_service": "2026-11-30",
                "currency": "KES", "timezone": "Africa/Nairobi",
                "member_numbers": [{"insurer_id": id, "member_number": "MC-1"}],
                "diagnoses": [{"code": "J06.9", "primary": true}],
                "services": [{"code": "CONS-GP", "category": "consultation", "description": "GP", "quantity": 1}]})
        );
    }
}

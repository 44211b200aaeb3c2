//! Encounters: what care was given, for which diagnosis, from which catalog.

use std::collections::BTreeMap;

use medcov_domain::{FieldError, Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::appointment::AppointmentStatus;

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
pub enum VisitType {
    Normal,
    Emergency,
    Referral,
}

impl TextEnum for VisitType {}

/// Open while care is recorded; closed and frozen once complete.
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
pub enum EncounterStatus {
    Open,
    Closed,
}

impl TextEnum for EncounterStatus {}

/// What the clinician records (kept as one JSON document).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EncounterRecord {
    pub diagnoses: Vec<Diagnosis>,
    pub services: Vec<ServiceLine>,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Encounter {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub status: EncounterStatus,
    pub record: EncounterRecord,
    pub version: i64,
    pub opened_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
}

/// The parties of a new encounter.
#[derive(Debug, Clone, Copy)]
pub struct Visit {
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
}

impl Encounter {
    /// A new, empty, open encounter at version 1.
    pub fn open(id: Uuid, visit: Visit, now: OffsetDateTime) -> Encounter {
        Encounter {
            id,
            hospital_id: visit.hospital_id,
            patient_id: visit.patient_id,
            practitioner_id: visit.practitioner_id,
            appointment_id: visit.appointment_id,
            visit_type: visit.visit_type,
            status: EncounterStatus::Open,
            record: EncounterRecord::default(),
            version: 1,
            opened_at: now,
            closed_at: None,
        }
    }

    /// The encounter with `edit` applied (codes in upper case); a closed one is frozen.
    pub fn recorded(&self, edit: CareEdit) -> Result<Encounter, Rejection> {
        if self.status == EncounterStatus::Closed {
            return Err(Rejection::conflict("a closed encounter is frozen"));
        }
        let mut encounter = self.clone();
        if let Some(v) = edit.diagnoses {
            encounter.record.diagnoses =
                v.into_iter().map(|d| Diagnosis { code: d.code.trim().to_uppercase(), ..d }).collect();
        }
        if let Some(v) = edit.services {
            encounter.record.services =
                v.into_iter().map(|s| ServiceLine { code: s.code.trim().to_uppercase(), ..s }).collect();
        }
        if let Some(v) = edit.notes {
            encounter.record.notes = v;
        }
        Ok(encounter)
    }

    /// Whether it can be closed as it stands: open, with a closable record.
    pub fn check_closable(&self) -> Result<(), Rejection> {
        if self.status == EncounterStatus::Closed {
            return Err(Rejection::conflict("the encounter is already closed"));
        }
        Rejection::check(check_closable(&self.record.diagnoses, &self.record.services))
    }

    /// The encounter as saved at its next version: still open, or closed at `now`.
    pub fn saved(&self, expected: i64, close: bool, now: OffsetDateTime) -> Encounter {
        Encounter {
            version: expected + 1,
            status: if close { EncounterStatus::Closed } else { EncounterStatus::Open },
            closed_at: close.then_some(now),
            ..self.clone()
        }
    }
}

/// A change to what an encounter records: fields left out keep their value.
#[derive(Debug, Clone, Default)]
pub struct CareEdit {
    pub diagnoses: Option<Vec<Diagnosis>>,
    pub services: Option<Vec<ServiceLine>>,
    pub notes: Option<String>,
}

/// Whether an encounter may be opened for an appointment in `status`: a fulfilled one is seen
/// as it is (`Ok(false)`), an arrived or checked-in one becomes fulfilled (`Ok(true)`).
pub fn seeing(status: AppointmentStatus) -> Result<bool, Rejection> {
    match status {
        AppointmentStatus::Fulfilled => Ok(false),
        AppointmentStatus::CheckedIn | AppointmentStatus::Arrived => Ok(true),
        other => Err(Rejection::conflict(format!("an appointment that is {} cannot be seen", other.as_str()))),
    }
}

/// A service a hospital renders, by code.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub hospital_id: Uuid,
    pub code: String,
    /// consultation, laboratory, imaging, procedure, inpatient, pharmacy, ...
    pub category: String,
    pub description: String,
    pub active: bool,
}

impl CatalogEntry {
    /// A new, active entry: the code in upper case, the category in lower case, both checked.
    pub fn new(hospital_id: Uuid, code: &str, category: &str, description: &str) -> Result<CatalogEntry, Rejection> {
        let code = code.trim().to_uppercase();
        let mut errors = Vec::new();
        if !(2..=20).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            errors.push(FieldError::new("code", "must be 2 to 20 of A-Z, 0-9, `-` and `.`"));
        }
        let category = category.trim().to_lowercase();
        if category.is_empty() || category.len() > 40 || !category.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            errors.push(FieldError::new("category", "must be 1 to 40 of a-z and `_`, such as `laboratory`"));
        }
        if description.trim().is_empty() || description.chars().count() > 200 {
            errors.push(FieldError::new("description", "must be 1 to 200 characters"));
        } else if let Some(problem) = medcov_domain::text::display_problem("description", description) {
            errors.push(problem);
        }
        Rejection::check(errors)?;
        Ok(CatalogEntry { hospital_id, code, category, description: description.trim().to_owned(), active: true })
    }
}

/// The active entries of a catalog, by code.
pub fn active_catalog(entries: Vec<CatalogEntry>) -> BTreeMap<String, CatalogEntry> {
    entries.into_iter().filter(|e| e.active).map(|e| (e.code.clone(), e)).collect()
}

/// Checks a record, and that every service is in the hospital's active `catalog`.
pub fn check_care(record: &EncounterRecord, catalog: &BTreeMap<String, CatalogEntry>) -> Result<(), Rejection> {
    let mut errors = check_record(&record.diagnoses, &record.services, &record.notes);
    for (i, line) in record.services.iter().enumerate() {
        if !catalog.contains_key(&line.code) {
            errors.push(FieldError::new(format!("services[{i}].code"), "is not in the hospital's service catalog"));
        }
    }
    Rejection::check(errors)
}

/// A diagnosis, as an ICD-10 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    #[schema(example = "J06.9")]
    pub code: String,
    /// The main reason for the encounter; exactly one diagnosis is primary.
    #[serde(default)]
    pub primary: bool,
}

/// A service rendered, from the hospital's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLine {
    #[schema(example = "CONS-GP")]
    pub code: String,
    #[schema(example = 1)]
    pub quantity: u32,
    /// An approved pre-authorisation for this service, checked when the care is recorded (422
    /// unless the insurer granted it for this service, at this hospital, to one of the
    /// patient's member numbers, valid on the day); the claim raised when the encounter closes
    /// cites it on this line, and the insurer pays by it if it is still unused (otherwise the
    /// line is `preauth_missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preauth_id: Option<Uuid>,
}

/// Whether a code has the shape of ICD-10: a letter, two digits, then optionally a dot and up
/// to four more characters (`J06.9`, `S72.001A`). The code list itself is not checked.
pub fn is_icd10(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.len() < 3 || !bytes[0].is_ascii_uppercase() || !bytes[1].is_ascii_digit() {
        return false;
    }
    if !(bytes[2].is_ascii_digit() || bytes[2] == b'A' || bytes[2] == b'B') {
        return false;
    }
    match &code[3..] {
        "" => true,
        rest => {
            let Some(tail) = rest.strip_prefix('.') else { return false };
            (1..=4).contains(&tail.len()) && tail.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        }
    }
}

/// Checks what a clinician records, before the catalog is consulted.
pub fn check_record(diagnoses: &[Diagnosis], services: &[ServiceLine], notes: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, d) in diagnoses.iter().enumerate() {
        if !is_icd10(&d.code) {
            errors.push(FieldError::new(format!("diagnoses[{i}].code"), "must be an ICD-10 code such as J06.9"));
        }
        if diagnoses[..i].iter().any(|o| o.code == d.code) {
            errors.push(FieldError::new(format!("diagnoses[{i}].code"), "appears twice"));
        }
    }
    if diagnoses.iter().filter(|d| d.primary).count() > 1 {
        errors.push(FieldError::new("diagnoses", "only one diagnosis may be primary"));
    }
    for (i, s) in services.iter().enumerate() {
        if !(1..=1000).contains(&s.quantity) {
            errors.push(FieldError::new(format!("services[{i}].quantity"), "must be between 1 and 1000"));
        }
    }
    if notes.chars().count() > 20_000 {
        errors.push(FieldError::new("notes", "must be at most 20000 characters"));
    }
    errors
}

/// What closing needs: at least one diagnosis, exactly one of them primary, and one service.
pub fn check_closable(diagnoses: &[Diagnosis], services: &[ServiceLine]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if diagnoses.is_empty() {
        errors.push(FieldError::new("diagnoses", "at least one diagnosis is needed to close"));
    } else if diagnoses.iter().filter(|d| d.primary).count() != 1 {
        errors.push(FieldError::new("diagnoses", "exactly one diagnosis must be primary to close"));
    }
    if services.is_empty() {
        errors.push(FieldError::new("services", "at least one service is needed to close"));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_shapes() {
        for ok in ["J06", "J06.9", "S72.001A", "O9A.1", "Z00.00"] {
            assert!(is_icd10(ok), "{ok}");
        }
        for bad in ["j06.9", "J6", "J06.", "J06.12345", "106.9", "J0X", "J06-9"] {
            assert!(!is_icd10(bad), "{bad}");
        }
    }

    #[test]
    fn records_and_closing() {
        let d = |code: &str, primary| Diagnosis { code: code.into(), primary };
        let s = |q| ServiceLine { code: "CONS".into(), quantity: q, preauth_id: None };
        let errors = check_record(&[d("J06.9", true), d("J06.9", true)], &[s(0)], "");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["diagnoses[1].code", "diagnoses", "services[0].quantity"]);
        assert!(check_closable(&[d("J06.9", true)], &[s(1)]).is_empty());
        assert_eq!(check_closable(&[d("J06.9", false)], &[s(1)])[0].field, "diagnoses");
        assert_eq!(check_closable(&[], &[]).len(), 2);
    }

    #[test]
    fn care_is_recorded_in_upper_case_against_the_active_catalog() {
        let visit = Visit {
            hospital_id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            practitioner_id: Uuid::now_v7(),
            appointment_id: None,
            visit_type: VisitType::Normal,
        };
        let open = Encounter::open(Uuid::now_v7(), visit, OffsetDateTime::UNIX_EPOCH);
        let edit = CareEdit {
            diagnoses: Some(vec![Diagnosis { code: " j06.9".into(), primary: true }]),
            services: Some(vec![
                ServiceLine { code: "cons-gp ".into(), quantity: 1, preauth_id: None },
                ServiceLine { code: "XRAY".into(), quantity: 1, preauth_id: None },
            ]),
            notes: None,
        };
        let recorded = open.recorded(edit).unwrap();
        assert_eq!(
            (recorded.record.diagnoses[0].code.as_str(), recorded.record.services[0].code.as_str()),
            ("J06.9", "CONS-GP")
        );
        let hospital = visit.hospital_id;
        let mut retired = CatalogEntry::new(hospital, "xray", "imaging", "X-ray").unwrap();
        retired.active = false;
        let catalog =
            active_catalog(vec![CatalogEntry::new(hospital, "CONS-GP", "consultation", "GP").unwrap(), retired]);
        let refused = check_care(&recorded.record, &catalog).unwrap_err();
        assert!(
            matches!(&refused, Rejection::Invalid(e) if e.len() == 1 && e[0].field == "services[1].code"),
            "{refused:?}"
        );
        // Closing: a closable record, then frozen.
        assert!(recorded.check_closable().is_ok());
        let closed = recorded.saved(1, true, OffsetDateTime::UNIX_EPOCH);
        assert_eq!((closed.version, closed.status, closed.closed_at.is_some()), (2, EncounterStatus::Closed, true));
        assert_eq!(closed.recorded(CareEdit::default()), Err(Rejection::conflict("a closed encounter is frozen")));
        assert_eq!(closed.check_closable(), Err(Rejection::conflict("the encounter is already closed")));
    }

    #[test]
    fn an_appointment_is_seen_once_checked_in() {
        use AppointmentStatus::*;
        let table = [(Fulfilled, Ok(false)), (CheckedIn, Ok(true)), (Arrived, Ok(true))];
        for (status, seen) in table {
            assert_eq!(seeing(status), seen);
        }
        for status in [Booked, Cancelled, NoShow] {
            assert_eq!(
                seeing(status),
                Err(Rejection::conflict(format!("an appointment that is {} cannot be seen", status.as_str())))
            );
        }
    }

    #[test]
    fn catalog_entries_are_checked_and_normalised() {
        let hospital = Uuid::now_v7();
        let entry = CatalogEntry::new(hospital, " lab-fbc ", " Laboratory ", " Full blood count ").unwrap();
        assert_eq!(
            (entry.code.as_str(), entry.category.as_str(), entry.description.as_str(), entry.active),
            ("LAB-FBC", "laboratory", "Full blood count", true)
        );
        let fields = |r: Result<CatalogEntry, Rejection>| match r {
            Err(Rejection::Invalid(e)) => e.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(CatalogEntry::new(hospital, "X", "lab 1", "")), ["code", "category", "description"]);
    }

    #[test]
    fn visit_types_and_statuses_are_words() {
        assert_eq!(VisitType::parse("referral"), Some(VisitType::Referral));
        assert_eq!(EncounterStatus::parse("closed"), Some(EncounterStatus::Closed));
        assert_eq!(EncounterStatus::parse("archived"), None);
    }
}

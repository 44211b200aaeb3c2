//! Patients: what registration needs, what makes it valid, how a record changes, and how
//! records are found.

use medcov_domain::{FieldError, Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    Other,
    Unknown,
}

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
pub enum IdentifierKind {
    NationalId,
    Passport,
    BirthCertificate,
    Other,
}

impl TextEnum for IdentifierKind {}

/// A national or other identifier of the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    pub kind: IdentifierKind,
    #[schema(example = "27845123")]
    pub value: String,
}

/// An insurance membership the patient presents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberNumber {
    pub insurer_id: Uuid,
    #[schema(example = "MC-0000123-4")]
    pub member_number: String,
}

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
pub enum PatientStatus {
    Active,
    Inactive,
    Deceased,
}

impl TextEnum for PatientStatus {}

/// Everything known about a patient that a clerk can change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PatientDetails {
    #[schema(example = "Amina")]
    pub given_name: String,
    #[schema(example = "Okafor")]
    pub family_name: String,
    #[schema(value_type = String, format = Date, example = "1984-03-09")]
    pub date_of_birth: Date,
    pub sex: Sex,
    #[schema(example = "+254 712 345678")]
    pub phone: Option<String>,
    #[schema(example = "amina@example.org")]
    pub email: Option<String>,
    pub identifiers: Vec<Identifier>,
    pub member_numbers: Vec<MemberNumber>,
    pub status: PatientStatus,
    /// Set when `status` is `deceased`.
    #[schema(value_type = Option<String>, format = Date)]
    pub deceased_on: Option<Date>,
}

impl PatientDetails {
    /// Every problem, field by field, as a person at the desk would expect them checked.
    pub fn validate(&self, today: Date) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (field, value) in [("given_name", &self.given_name), ("family_name", &self.family_name)] {
            if let Err(reason) = medcov_domain::values::person_name(value) {
                errors.push(FieldError::new(field, reason));
            } else if let Some(problem) = medcov_domain::text::display_problem(field, value) {
                errors.push(problem);
            }
        }
        if self.date_of_birth > today {
            errors.push(FieldError::new("date_of_birth", "must not be in the future"));
        }
        if self.date_of_birth.year() < 1880 {
            errors.push(FieldError::new("date_of_birth", "must be after 1880"));
        }
        if let Some(Err(reason)) = self.phone.as_deref().map(medcov_domain::values::phone) {
            errors.push(FieldError::new("phone", reason));
        }
        if let Some(Err(reason)) = self.email.as_deref().map(medcov_domain::values::email) {
            errors.push(FieldError::new("email", reason));
        }
        for (i, identifier) in self.identifiers.iter().enumerate() {
            if let Err(reason) = check_identifier(identifier) {
                errors.push(FieldError::new(format!("identifiers[{i}].value"), reason));
            }
            if self.identifiers[..i].iter().any(|other| other.kind == identifier.kind) {
                errors.push(FieldError::new(format!("identifiers[{i}].kind"), "appears twice"));
            }
        }
        for (i, member) in self.member_numbers.iter().enumerate() {
            let value = member.member_number.trim();
            let ok = (3..=40).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                errors.push(FieldError::new(
                    format!("member_numbers[{i}].member_number"),
                    "must be 3 to 40 letters, digits or `-`",
                ));
            }
        }
        match (self.status, self.deceased_on) {
            (PatientStatus::Deceased, None) => {
                errors.push(FieldError::new("deceased_on", "is required when the status is deceased"));
            }
            (PatientStatus::Deceased, Some(on)) => {
                if on < self.date_of_birth {
                    errors.push(FieldError::new("deceased_on", "must not be before the date of birth"));
                }
                if on > today {
                    errors.push(FieldError::new("deceased_on", "must not be in the future"));
                }
            }
            (_, Some(_)) => errors.push(FieldError::new("deceased_on", "may only be set when the status is deceased")),
            (_, None) => {}
        }
        errors
    }

    /// Trims what people type around names and contact details.
    pub fn tidy(mut self) -> PatientDetails {
        self.given_name = self.given_name.trim().to_owned();
        self.family_name = self.family_name.trim().to_owned();
        self.phone = self.phone.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty());
        self.email = self.email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        for identifier in &mut self.identifiers {
            identifier.value = identifier.value.trim().to_uppercase();
        }
        for member in &mut self.member_numbers {
            member.member_number = member.member_number.trim().to_uppercase();
        }
        self
    }
}

/// Registration or changed details, tidied and then checked as of `today`.
pub fn checked(details: PatientDetails, today: Date) -> Result<PatientDetails, Rejection> {
    let details = details.tidy();
    Rejection::check(details.validate(today))?;
    Ok(details)
}

/// A patient record.
///
/// Its JSON form is also how each version is kept in the record's history (and cached):
/// change it only with a way to read what is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub id: Uuid,
    pub hospital_id: Uuid,
    /// Medical record number, unique in the hospital, with a check digit.
    pub mrn: String,
    #[serde(flatten)]
    pub details: PatientDetails,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Patient {
    /// A newly registered patient, the `sequence`th of the hospital whose code is
    /// `hospital_code`.
    pub fn registered(
        id: Uuid,
        hospital_id: Uuid,
        (hospital_code, sequence): (&str, i64),
        details: PatientDetails,
        now: OffsetDateTime,
    ) -> Patient {
        Patient {
            id,
            hospital_id,
            mrn: medical_record_number(hospital_code, sequence),
            details,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// The record with `edit` applied at its next version, when it was read at `expected` and
    /// the result is valid.
    pub fn edited(
        &self,
        expected: i64,
        edit: PatientEdit,
        today: Date,
        now: OffsetDateTime,
    ) -> Result<Patient, Rejection> {
        if self.version != expected {
            return Err(Rejection::Stale("the record changed since you read it; read it again".into()));
        }
        let details = checked(edit.apply(&self.details), today)?;
        Ok(Patient { details, version: expected + 1, updated_at: now, ..self.clone() })
    }
}

/// A change to a record: fields left out keep their value.
#[derive(Debug, Clone, Default)]
pub struct PatientEdit {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub date_of_birth: Option<Date>,
    pub sex: Option<Sex>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub identifiers: Option<Vec<Identifier>>,
    pub member_numbers: Option<Vec<MemberNumber>>,
    pub status: Option<PatientStatus>,
    pub deceased_on: Option<Date>,
}

impl PatientEdit {
    /// `details` with the change: a status other than deceased clears the date of death.
    pub fn apply(self, details: &PatientDetails) -> PatientDetails {
        let mut details = details.clone();
        if let Some(v) = self.given_name {
            details.given_name = v;
        }
        if let Some(v) = self.family_name {
            details.family_name = v;
        }
        if let Some(v) = self.date_of_birth {
            details.date_of_birth = v;
        }
        if let Some(v) = self.sex {
            details.sex = v;
        }
        if let Some(v) = self.phone {
            details.phone = Some(v);
        }
        if let Some(v) = self.email {
            details.email = Some(v);
        }
        if let Some(v) = self.identifiers {
            details.identifiers = v;
        }
        if let Some(v) = self.member_numbers {
            details.member_numbers = v;
        }
        if let Some(v) = self.status {
            details.status = v;
            if v != PatientStatus::Deceased {
                details.deceased_on = None;
            }
        }
        if let Some(v) = self.deceased_on {
            details.deceased_on = Some(v);
        }
        details
    }
}

/// A registration is refused when the hospital has patients with the same folded names and
/// date of birth (their record numbers `found`), unless the clerk says to go ahead.
pub fn refuse_duplicates(found: &[String]) -> Result<(), Rejection> {
    if found.is_empty() {
        return Ok(());
    }
    Err(possible_duplicate(found))
}

/// The refusal of a registration like the records numbered `found` (one at least).
pub fn possible_duplicate(found: &[String]) -> Rejection {
    Rejection::conflict(format!(
        "possible duplicate of {} (same name and date of birth); check, then resend with allow_duplicate=true to register anyway",
        found.join(", ")
    ))
}

/// What two registrations that could be duplicates of each other share: the hospital, the
/// folded names and the date of birth (what [`refuse_duplicates`] compares). Registrations
/// with one key take turns, so each one's duplicate check sees the others.
pub fn duplicate_key(hospital: Uuid, details: &PatientDetails) -> String {
    format!(
        "hospital.patient:{hospital}:{}:{}:{}",
        search_key(&details.family_name),
        search_key(&details.given_name),
        details.date_of_birth
    )
}

/// The lookup keys of a record: each identifier by its kind, each member number as
/// `member`.
pub fn lookup_keys(details: &PatientDetails) -> Vec<(&'static str, String)> {
    let mut keys: Vec<(&'static str, String)> =
        details.identifiers.iter().map(|i| (i.kind.as_str(), i.value.clone())).collect();
    keys.extend(details.member_numbers.iter().map(|m| ("member", m.member_number.clone())));
    keys.sort();
    keys.dedup();
    keys
}

/// What a search asks for; every given criterion must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// A prefix of the family or given name, folded by [`search_key`].
    pub name: Option<String>,
    pub date_of_birth: Option<Date>,
    pub mrn: Option<String>,
    pub identifier: Option<String>,
    pub member_number: Option<String>,
}

/// One version of a patient record, as its history keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub version: i64,
    pub changed_at: OffsetDateTime,
    pub changed_by: Uuid,
    pub request_id: Option<String>,
    /// The record at that version ([`Patient`]'s JSON form).
    pub record: serde_json::Value,
}

/// The format each kind of identifier must have.
fn check_identifier(identifier: &Identifier) -> Result<(), &'static str> {
    let value = identifier.value.trim();
    let alnum =
        |min: usize, max: usize| (min..=max).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric());
    match identifier.kind {
        IdentifierKind::NationalId if !alnum(5, 20) => Err("a national id is 5 to 20 letters or digits"),
        IdentifierKind::Passport if !alnum(6, 9) => Err("a passport number is 6 to 9 letters or digits"),
        IdentifierKind::BirthCertificate if !alnum(4, 20) => {
            Err("a birth certificate number is 4 to 20 letters or digits")
        }
        IdentifierKind::Other if value.is_empty() || value.len() > 40 => Err("must be 1 to 40 characters"),
        _ => Ok(()),
    }
}

/// The form names are searched by: lower case, accents removed, spaces collapsed. "Ñúñez"
/// and "nunez" are the same.
pub fn search_key(name: &str) -> String {
    let folded: String = name.nfd().filter(|c| !is_combining_mark(*c)).collect::<String>().to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first string after every string that starts with `prefix`, for an index range scan.
pub fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// A medical record number: the hospital code, the sequence, and a Luhn check digit, so a
/// mistyped number is caught at the desk.
pub fn medical_record_number(hospital_code: &str, sequence: i64) -> String {
    let digits = format!("{sequence:07}");
    format!("{hospital_code}-{digits}{}", luhn_digit(&digits))
}

fn luhn_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Whether an MRN's check digit is right.
pub fn mrn_is_well_formed(mrn: &str) -> bool {
    let Some((_, number)) = mrn.rsplit_once('-') else { return false };
    if number.len() < 2 || !number.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let (body, check) = number.split_at(number.len() - 1);
    check.parse::<u32>().ok() == Some(luhn_digit(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn details() -> PatientDetails {
        PatientDetails {
            given_name: "Amina".into(),
            family_name: "Okafor".into(),
            date_of_birth: date!(1984 - 03 - 09),
            sex: Sex::Female,
            phone: Some("+254 712 345678".into()),
            email: Some("amina@example.org".into()),
            identifiers: vec![Identifier { kind: IdentifierKind::NationalId, value: "27845123".into() }],
            member_numbers: vec![],
            status: PatientStatus::Active,
            deceased_on: None,
        }
    }

    const TODAY: Date = date!(2026 - 11 - 26);

    #[test]
    fn a_valid_patient_passes() {
        assert_eq!(details().validate(TODAY), vec![]);
    }

    #[test]
    fn each_rule_names_its_field() {
        let table: Vec<(PatientDetails, &str)> = vec![
            (PatientDetails { given_name: " ".into(), ..details() }, "given_name"),
            (PatientDetails { family_name: "Ok4for".into(), ..details() }, "family_name"),
            (PatientDetails { date_of_birth: date!(2027 - 01 - 01), ..details() }, "date_of_birth"),
            (PatientDetails { phone: Some("call me".into()), ..details() }, "phone"),
            (PatientDetails { phone: Some("+12".into()), ..details() }, "phone"),
            (PatientDetails { email: Some("amina@".into()), ..details() }, "email"),
            (PatientDetails { email: Some("amina example.org".into()), ..details() }, "email"),
            (
                PatientDetails {
                    identifiers: vec![Identifier { kind: IdentifierKind::Passport, value: "12".into() }],
                    ..details()
                },
                "identifiers[0].value",
            ),
            (PatientDetails { status: PatientStatus::Deceased, ..details() }, "deceased_on"),
            (
                PatientDetails {
                    status: PatientStatus::Deceased,
                    deceased_on: Some(date!(1980 - 01 - 01)),
                    ..details()
                },
                "deceased_on",
            ),
            (PatientDetails { deceased_on: Some(date!(2020 - 01 - 01)), ..details() }, "deceased_on"),
        ];
        for (input, field) in table {
            let errors = input.validate(TODAY);
            assert_eq!(errors.len(), 1, "{field}: {errors:?}");
            assert_eq!(errors[0].field, field);
        }
        let deceased =
            PatientDetails { status: PatientStatus::Deceased, deceased_on: Some(date!(2025 - 01 - 01)), ..details() };
        assert_eq!(deceased.validate(TODAY), vec![]);
    }

    #[test]
    fn names_fold_case_and_accents() {
        assert_eq!(search_key("  Ñúñez  de la Peña "), "nunez de la pena");
        assert_eq!(search_key("ØKAFOR"), "økafor");
        assert_eq!(search_key("Zoë"), search_key("zoe"));
        let upper = prefix_upper_bound("oka");
        assert!("okafor" < upper.as_str() && "okb" > upper.as_str());
    }

    #[test]
    fn record_numbers_carry_a_check_digit() {
        // Luhn of 0000017: digits from the right 7,1 → 7*2=14→5, 1 → 6; check = 4.
        assert_eq!(medical_record_number("SMG", 17), "SMG-00000174");
        assert!(mrn_is_well_formed("SMG-00000174"));
        assert!(!mrn_is_well_formed("SMG-00000175"));
        assert!(!mrn_is_well_formed("SMG-00000147"), "a transposition is caught");
        for n in [1, 42, 999_999, 1_234_567] {
            assert!(mrn_is_well_formed(&medical_record_number("ABC-1", n)));
        }
    }

    #[test]
    fn an_edit_needs_the_version_read_and_a_valid_result() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let patient = Patient::registered(Uuid::now_v7(), Uuid::now_v7(), ("SMG", 17), details(), now);
        assert_eq!((patient.mrn.as_str(), patient.version), ("SMG-00000174", 1));
        let phone = || PatientEdit { phone: Some(" +254 700 000000 ".into()), ..PatientEdit::default() };
        let changed = patient.edited(1, phone(), TODAY, now).unwrap();
        assert_eq!((changed.details.phone.as_deref(), changed.version), (Some("+254 700 000000"), 2));
        assert_eq!(
            patient.edited(2, phone(), TODAY, now),
            Err(Rejection::Stale("the record changed since you read it; read it again".into()))
        );
        let deceased = PatientEdit { status: Some(PatientStatus::Deceased), ..PatientEdit::default() };
        assert!(
            matches!(patient.edited(1, deceased, TODAY, now), Err(Rejection::Invalid(e)) if e[0].field == "deceased_on")
        );
        // Back to active clears the date of death.
        let dead =
            PatientDetails { status: PatientStatus::Deceased, deceased_on: Some(date!(2025 - 01 - 01)), ..details() };
        let alive = PatientEdit { status: Some(PatientStatus::Active), ..PatientEdit::default() }.apply(&dead);
        assert_eq!((alive.status, alive.deceased_on), (PatientStatus::Active, None));
    }

    #[test]
    fn duplicates_are_named_and_keys_are_kept_once() {
        assert_eq!(refuse_duplicates(&[]), Ok(()));
        let refusal = refuse_duplicates(&["SMG-00000174".into(), "SMG-00000182".into()]).unwrap_err();
        assert!(refusal.to_string().starts_with("possible duplicate of SMG-00000174, SMG-00000182 "), "{refusal}");
        let mut d = details();
        d.identifiers.push(Identifier { kind: IdentifierKind::Passport, value: "A1234567".into() });
        d.member_numbers = vec![MemberNumber { insurer_id: Uuid::nil(), member_number: "MC-1".into() }; 2];
        assert_eq!(
            lookup_keys(&d),
            [
                ("member", "MC-1".to_owned()),
                ("national_id", "27845123".to_owned()),
                ("passport", "A1234567".to_owned())
            ]
        );
    }

    #[test]
    fn kinds_and_statuses_are_words() {
        assert_eq!(IdentifierKind::BirthCertificate.as_str(), "birth_certificate");
        assert_eq!(PatientStatus::parse("deceased"), Some(PatientStatus::Deceased));
        assert_eq!(PatientStatus::parse("gone"), None);
    }
}

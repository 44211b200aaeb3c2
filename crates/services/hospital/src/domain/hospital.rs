//! A hospital: the tenant of the hospital side.

use medcov_domain::{FieldError, Rejection};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::schedule::WorkingHours;

/// A hospital.
#[derive(Debug, Clone, PartialEq)]
pub struct Hospital {
    pub id: Uuid,
    /// Short code; it prefixes the hospital's medical record numbers.
    pub code: String,
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// ISO 4217 currency of its prices.
    pub currency: String,
    pub address: Address,
    /// When it takes appointments, per weekday, in its time zone; empty: always open.
    pub opening_hours: Vec<WorkingHours>,
    pub active: bool,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What describes a hospital, as an administrator gives it.
#[derive(Debug, Clone)]
pub struct HospitalFields {
    pub name: String,
    /// 2 to 12 of A-Z, 0-9 and `-`.
    pub code: String,
    pub timezone: String,
    pub currency: String,
    pub address: Address,
    pub opening_hours: Vec<WorkingHours>,
}

/// A change to a hospital: fields left out keep their value. Its code, time zone and
/// currency never change.
#[derive(Debug, Clone, Default)]
pub struct HospitalEdit {
    pub name: Option<String>,
    pub address: Option<Address>,
    pub opening_hours: Option<Vec<WorkingHours>>,
}

impl Hospital {
    /// A new, active hospital at version 1, when the fields are valid.
    pub fn new(id: Uuid, fields: HospitalFields, now: OffsetDateTime) -> Result<Hospital, Rejection> {
        Rejection::check(fields.validate())?;
        Ok(Hospital {
            id,
            code: fields.code,
            name: fields.name.trim().to_owned(),
            timezone: fields.timezone,
            currency: fields.currency,
            address: fields.address,
            opening_hours: fields.opening_hours,
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// The hospital with `edit` applied, when it was read at `expected` and the result is
    /// valid.
    pub fn edited(&self, expected: i64, edit: HospitalEdit, now: OffsetDateTime) -> Result<Hospital, Rejection> {
        if self.version != expected {
            return Err(Rejection::Stale("the hospital changed since you read it".into()));
        }
        let fields = HospitalFields {
            name: edit.name.unwrap_or_else(|| self.name.clone()),
            code: self.code.clone(),
            timezone: self.timezone.clone(),
            currency: self.currency.clone(),
            address: edit.address.unwrap_or_else(|| self.address.clone()),
            opening_hours: edit.opening_hours.unwrap_or_else(|| self.opening_hours.clone()),
        };
        Rejection::check(fields.validate())?;
        Ok(Hospital {
            name: fields.name.trim().to_owned(),
            address: fields.address,
            opening_hours: fields.opening_hours,
            updated_at: now,
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default)]
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: String,
}

impl HospitalFields {
    /// Every problem with the input, field by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new("name", "must be 1 to 200 characters"));
        } else if let Some(problem) = medcov_domain::text::display_problem("name", name) {
            errors.push(problem);
        }
        let code_ok = (2..=12).contains(&self.code.len())
            && self.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !code_ok {
            errors.push(FieldError::new("code", "must be 2 to 12 of A-Z, 0-9 and `-`"));
        }
        if super::schedule::zone(&self.timezone).is_err() {
            errors.push(FieldError::new("timezone", "must be an IANA time zone such as `Africa/Nairobi` or `UTC`"));
        }
        if let Err(reason) = medcov_money::Currency::parse(&self.currency) {
            errors.push(FieldError::new("currency", reason));
        }
        let country = &self.address.country;
        let country_ok = country.is_empty() || (country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
        if !country_ok {
            errors.push(FieldError::new("address.country", "must be an ISO 3166-1 alpha-2 code such as `KE`"));
        }
        errors.extend(super::schedule::check_week("opening_hours", &self.opening_hours));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> HospitalFields {
        HospitalFields {
            name: "St. Mary's".into(),
            code: "SMG".into(),
            timezone: "Africa/Nairobi".into(),
            currency: "KES".into(),
            address: Address::default(),
            opening_hours: Vec::new(),
        }
    }

    #[test]
    fn a_valid_hospital_passes() {
        assert!(input().validate().is_empty());
        let utc = HospitalFields { timezone: "UTC".into(), ..input() };
        assert!(utc.validate().is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let table: [(HospitalFields, &str); 6] = [
            (HospitalFields { name: " ".into(), ..input() }, "name"),
            (HospitalFields { code: "smg".into(), ..input() }, "code"),
            (HospitalFields { code: "S".into(), ..input() }, "code"),
            (HospitalFields { timezone: "nairobi".into(), ..input() }, "timezone"),
            (HospitalFields { currency: "Kes".into(), ..input() }, "currency"),
            (
                HospitalFields { address: Address { country: "Kenya".into(), ..Address::default() }, ..input() },
                "address.country",
            ),
        ];
        for (input, field) in table {
            let errors = input.validate();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, field);
        }
    }

    #[test]
    fn a_change_needs_the_version_read_and_keeps_code_zone_and_currency() {
        let hospital = Hospital::new(
            Uuid::now_v7(),
            HospitalFields { name: " St. Mary's ".into(), ..input() },
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!((hospital.name.as_str(), hospital.version, hospital.active), ("St. Mary's", 1, true));
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        let renamed = hospital
            .edited(1, HospitalEdit { name: Some("St. Mary's General ".into()), ..HospitalEdit::default() }, now)
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.code.as_str(), renamed.updated_at),
            ("St. Mary's General", "SMG", now)
        );
        assert_eq!(
            hospital.edited(2, HospitalEdit::default(), now),
            Err(Rejection::Stale("the hospital changed since you read it".into()))
        );
        let bad = HospitalEdit { name: Some(String::new()), ..HospitalEdit::default() };
        assert!(matches!(hospital.edited(1, bad, now), Err(Rejection::Invalid(e)) if e[0].field == "name"));
        assert!(Hospital::new(Uuid::now_v7(), HospitalFields { code: "x".into(), ..input() }, now).is_err());
    }
}

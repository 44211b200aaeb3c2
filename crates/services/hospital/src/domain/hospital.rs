//! A hospital: the tenant of the hospital side.

use medcov_http::FieldError;
use serde::{Deserialize, Serialize};

/// A new hospital, as an administrator sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "St. Mary's General", "code": "SMG", "timezone": "Africa/Nairobi", "currency": "KES", "address": {"line1": "Langata Road", "city": "Nairobi", "country": "KE"}}))]
pub struct HospitalInput {
    /// Shown everywhere.
    #[schema(example = "St. Mary's General")]
    pub name: String,
    /// Short code, 2 to 12 of A-Z, 0-9 and `-`; it prefixes the hospital's medical record numbers.
    #[schema(example = "SMG")]
    pub code: String,
    /// IANA time zone, e.g. `Africa/Nairobi`.
    #[schema(example = "Africa/Nairobi")]
    pub timezone: String,
    /// ISO 4217 currency of its prices.
    #[schema(example = "KES")]
    pub currency: String,
    #[serde(default)]
    pub address: Address,
    /// When the hospital takes appointments, per weekday, in its time zone; none: always open.
    #[serde(default)]
    pub opening_hours: Vec<super::schedule::WorkingHours>,
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

impl HospitalInput {
    /// Every problem with the input, field by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new("name", "must be 1 to 200 characters"));
        }
        let code_ok = (2..=12).contains(&self.code.len())
            && self.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !code_ok {
            errors.push(FieldError::new("code", "must be 2 to 12 of A-Z, 0-9 and `-`"));
        }
        if super::schedule::zone(&self.timezone).is_err() {
            errors.push(FieldError::new("timezone", "must be an IANA time zone such as `Africa/Nairobi` or `UTC`"));
        }
        if !(self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            errors.push(FieldError::new("currency", "must be an ISO 4217 code such as `KES` or `USD`"));
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

    fn input() -> HospitalInput {
        HospitalInput {
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
        let utc = HospitalInput { timezone: "UTC".into(), ..input() };
        assert!(utc.validate().is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let table: [(HospitalInput, &str); 6] = [
            (HospitalInput { name: " ".into(), ..input() }, "name"),
            (HospitalInput { code: "smg".into(), ..input() }, "code"),
            (HospitalInput { code: "S".into(), ..input() }, "code"),
            (HospitalInput { timezone: "nairobi".into(), ..input() }, "timezone"),
            (HospitalInput { currency: "Kes".into(), ..input() }, "currency"),
            (
                HospitalInput { address: Address { country: "Kenya".into(), ..Address::default() }, ..input() },
                "address.country",
            ),
        ];
        for (input, field) in table {
            let errors = input.validate();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, field);
        }
    }
}

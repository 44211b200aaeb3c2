//! Encounters: what care was given, for which diagnosis.

use medcov_http::FieldError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitType {
    Normal,
    Emergency,
    Referral,
}

impl VisitType {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitType::Normal => "normal",
            VisitType::Emergency => "emergency",
            VisitType::Referral => "referral",
        }
    }

    pub fn parse(s: &str) -> Option<VisitType> {
        [VisitType::Normal, VisitType::Emergency, VisitType::Referral].into_iter().find(|v| v.as_str() == s)
    }
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
        let s = |q| ServiceLine { code: "CONS".into(), quantity: q };
        let errors = check_record(&[d("J06.9", true), d("J06.9", true)], &[s(0)], "");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["diagnoses[1].code", "diagnoses", "services[0].quantity"]);
        assert!(check_closable(&[d("J06.9", true)], &[s(1)]).is_empty());
        assert_eq!(check_closable(&[d("J06.9", false)], &[s(1)])[0].field, "diagnoses");
        assert_eq!(check_closable(&[], &[]).len(), 2);
    }
}

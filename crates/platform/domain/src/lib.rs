//! What the domain code of every service shares. No I/O, no HTTP: the HTTP kit maps these to
//! problem documents, the stores to rows.
//!
//! - [`FieldError`]: one field that breaks a rule, named by its JSON path.
//! - [`Rejection`]: why a rule says no (invalid input, nothing there, a conflict with the
//!   current state, not allowed, a stale version). Domain functions return it; the API turns
//!   it into the matching 4xx.
//! - [`calendar`]: the local date of an instant in a tenant's time zone.
//! - [`text`]: names and descriptions show what they are (no bidirectional controls).
//! - [`TextEnum`]: enums stored and sent as fixed lowercase words (derived with `strum`), so
//!   that reading an unknown word is an error that says where it came from, never a default.

#![forbid(unsafe_code)]

pub mod calendar;
pub mod text;

use serde::{Deserialize, Serialize};

pub use strum;

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where the field is: a JSON path such as `members[2].date_of_birth`, or a query or
    /// path parameter name.
    pub field: String,
    /// Why it was refused, in words a person can act on.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }
}

/// Why a domain rule refused a request. Each kind maps to one HTTP status in the HTTP kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Fields break rules (422), each named.
    Invalid(Vec<FieldError>),
    /// The thing asked about does not exist, or is outside the caller's scope (404).
    NotFound(String),
    /// The request conflicts with the current state (409).
    Conflict(String),
    /// The caller may not do this (403).
    Forbidden(String),
    /// The change was made against a version that is no longer current (412).
    Stale(String),
}

impl Rejection {
    /// One invalid field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection::Invalid(vec![FieldError::new(field, reason)])
    }

    /// `Ok(())` when `errors` is empty, the invalid fields otherwise.
    pub fn check(errors: Vec<FieldError>) -> Result<(), Rejection> {
        if errors.is_empty() { Ok(()) } else { Err(Rejection::Invalid(errors)) }
    }

    pub fn not_found(what: impl Into<String>) -> Rejection {
        Rejection::NotFound(what.into())
    }

    pub fn conflict(why: impl Into<String>) -> Rejection {
        Rejection::Conflict(why.into())
    }
}

impl From<FieldError> for Rejection {
    fn from(error: FieldError) -> Self {
        Rejection::Invalid(vec![error])
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Invalid(errors) => {
                let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect();
                write!(f, "invalid: {}", fields.join("; "))
            }
            Rejection::NotFound(what) => write!(f, "{what}"),
            Rejection::Conflict(why) | Rejection::Forbidden(why) | Rejection::Stale(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Rejection {}

/// An enum kept as one of a fixed set of words (in a column, in JSON, in a query string).
///
/// Derive the conversions with `strum` and implement this marker:
///
/// ```
/// use medcov_domain::{TextEnum, strum};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
/// #[strum(serialize_all = "snake_case")]
/// enum Method { Cash, MobileMoney }
/// impl TextEnum for Method {}
///
/// assert_eq!(Method::MobileMoney.as_str(), "mobile_money");
/// assert_eq!(Method::parse("cash"), Some(Method::Cash));
/// assert_eq!(Method::parse("bitcoin"), None);
/// ```
pub trait TextEnum:
    Copy + std::str::FromStr + Into<&'static str> + strum::VariantArray + std::fmt::Debug + 'static
{
    /// The word for this value.
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// The value for a word; `None` for any other word.
    fn parse(word: &str) -> Option<Self> {
        word.parse().ok()
    }

    /// Every word, in declaration order (for error messages and documentation).
    fn words() -> Vec<&'static str> {
        Self::VARIANTS.iter().map(|v| (*v).into()).collect()
    }
}

/// Sets read from a JSON array that refuse a repeated element, instead of silently dropping
/// it: a list documented as unique (`uniqueItems`) is unique, or the request is refused,
/// naming the field. Use as `#[serde(deserialize_with = "medcov_domain::unique::set")]` (or
/// `unique::optional_set` for an `Option`, with `#[serde(default)]`).
pub mod unique {
    use std::collections::BTreeSet;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    struct Unique<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Ord> Visitor<'de> for Unique<T> {
        type Value = BTreeSet<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array without repeated elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut set = BTreeSet::new();
            while let Some(item) = seq.next_element::<T>()? {
                if set.contains(&item) {
                    return Err(A::Error::custom("repeats an element; each may appear once"));
                }
                set.insert(item);
            }
            Ok(set)
        }
    }

    pub fn set<'de, D, T>(deserializer: D) -> Result<BTreeSet<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Ord,
    {
        deserializer.deserialize_seq(Unique(PhantomData))
    }

    pub fn optional_set<'de, D, T>(deserializer: D) -> Result<Option<BTreeSet<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Ord,
    {
        struct Wrapped<T>(BTreeSet<T>);
        impl<'de, T: Deserialize<'de> + Ord> Deserialize<'de> for Wrapped<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                set(d).map(Wrapped)
            }
        }
        Option::<Wrapped<T>>::deserialize(deserializer).map(|o| o.map(|w| w.0))
    }
}

/// The rules of the kinds of data every service keeps, written once so the same data has the
/// same rules everywhere (a name the hospital refuses, insurance refuses too). Each returns
/// the reason to give with the field's name; the `*_PATTERN` constants are the same rules as
/// the OpenAPI documents state them.
pub mod values {
    /// A person's given or family name: 1 to 100 characters, no digits, no control characters
    /// (surrounding spaces are not counted: callers store it trimmed).
    pub fn person_name(value: &str) -> Result<(), &'static str> {
        let value = value.trim();
        if value.is_empty() || value.chars().count() > 100 {
            return Err("must be 1 to 100 characters");
        }
        if value.chars().any(|c| c.is_control() || c.is_ascii_digit()) {
            return Err("must not contain digits or control characters");
        }
        Ok(())
    }

    /// A phone number: digits, spaces, `-`, `(`, `)`, an optional leading `+`, 7 to 15 digits.
    pub fn phone(value: &str) -> Result<(), &'static str> {
        let body = value.trim().strip_prefix('+').unwrap_or(value.trim());
        let digits = body.chars().filter(char::is_ascii_digit).count();
        let shape = body.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'));
        if (7..=15).contains(&digits) && shape {
            Ok(())
        } else {
            Err("must be a phone number: digits, spaces, `-`, `(`, `)`, an optional leading `+`, 7 to 15 digits")
        }
    }

    /// An e-mail address: a local part, `@`, and a domain with a dot; at most 254 characters,
    /// no spaces.
    pub fn email(value: &str) -> Result<(), &'static str> {
        let reason = "must be an email address such as name@example.org";
        let Some((local, domain)) = value.trim().rsplit_once('@') else { return Err(reason) };
        let ok = !local.is_empty()
            && value.len() <= 254
            && !value.chars().any(char::is_whitespace)
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty());
        if ok { Ok(()) } else { Err(reason) }
    }

    /// A person name as a JSON Schema pattern (no ASCII digits or control characters).
    pub const PERSON_NAME_PATTERN: &str = "^[^0-9\\x00-\\x1F\\x7F]{1,100}$";
    /// A phone number as a JSON Schema pattern.
    pub const PHONE_PATTERN: &str = "^\\+?[0-9 ()-]{7,30}$";

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_rule_per_kind_of_data() {
            for ok in ["Amina", "O'Brien", "Nguyễn", " Otieno "] {
                assert_eq!(person_name(ok), Ok(()), "{ok}");
            }
            for bad in ["", "   ", "R2D2", "A\u{7}", &"x".repeat(101)] {
                assert!(person_name(bad).is_err(), "{bad}");
            }
            for ok in ["+254 712 345 678", "(020) 123-4567", "0712345678"] {
                assert_eq!(phone(ok), Ok(()), "{ok}");
            }
            for bad in ["12345", "+254-abc-1234567", "1234567890123456"] {
                assert!(phone(bad).is_err(), "{bad}");
            }
            for ok in ["amina@example.org", "a.b+c@mail.example.co.ke"] {
                assert_eq!(email(ok), Ok(()), "{ok}");
            }
            for bad in ["amina", "amina@", "@example.org", "a@example", "a b@example.org", "a@.org", "a@example."] {
                assert!(email(bad).is_err(), "{bad}");
            }
        }
    }
}

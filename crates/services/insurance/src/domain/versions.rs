//! Plans and their versions: each version's rules apply to the policies starting within its
//! period, and never change once written (claims keep the rules they were adjudicated under).
//! Only the last day of an open-ended version is set, when a later version takes over.

use medcov_domain::{FieldError, Rejection};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::plan::PlanRules;

/// A plan (a benefit product of an insurer) and its versions, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub code: String,
    pub name: String,
    pub versions: Vec<PlanVersion>,
}

/// One version of a plan's rules, effective over a period of policy start dates. Cached as
/// JSON (its rules never change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanVersion {
    pub id: Uuid,
    pub plan_id: Uuid,
    pub version: i32,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
    pub rules: PlanRules,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Plan {
    /// The version in effect on a day.
    pub fn version_on(&self, day: Date) -> Option<&PlanVersion> {
        self.versions.iter().find(|v| v.effective_from <= day && v.effective_to.is_none_or(|to| day <= to))
    }
}

/// Whether a new version's period `[from, to]` overlaps an existing one's.
pub fn overlaps(a_from: Date, a_to: Option<Date>, b_from: Date, b_to: Option<Date>) -> bool {
    let a_ends_before_b = a_to.is_some_and(|t| t < b_from);
    let b_ends_before_a = b_to.is_some_and(|t| t < a_from);
    !(a_ends_before_b || b_ends_before_a)
}

/// What a version's period and rules must satisfy, for an insurer pricing in `currency`.
pub fn check_version(
    currency: &str,
    effective_from: Date,
    effective_to: Option<Date>,
    rules: &PlanRules,
) -> Vec<FieldError> {
    let mut errors = rules.validate();
    if rules.currency.as_str() != currency {
        errors.push(FieldError::new("rules.currency", format!("must be the insurer's currency, {currency}")));
    }
    if effective_to.is_some_and(|to| to < effective_from) {
        errors.push(FieldError::new("effective_to", "must not be before effective_from"));
    }
    errors
}

/// A new plan with its first version, for an insurer pricing in `currency`: the version's
/// checks, then a code of 2 to 30 of A-Z, 0-9 and `-` (already upper-cased) and a name.
pub fn check_new_plan(
    currency: &str,
    code: &str,
    name: &str,
    effective_from: Date,
    effective_to: Option<Date>,
    rules: &PlanRules,
) -> Result<(), Rejection> {
    let mut errors = check_version(currency, effective_from, effective_to, rules);
    if !(2..=30).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        errors.push(FieldError::new("code", "must be 2 to 30 of A-Z, 0-9 and `-`"));
    }
    if name.trim().is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    } else if let Some(problem) = medcov_domain::text::display_problem("name", name) {
        errors.push(problem);
    }
    Rejection::check(errors)
}

/// Where a new version goes among the existing ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its number: one above the highest so far.
    pub number: i32,
    /// The open-ended latest version it ends, and that version's new last day.
    pub closes: Option<(Uuid, Date)>,
}

/// Places a version `[from, to]` after `existing`: one that starts after the open-ended latest
/// version ends that version the day before (its rules never change, only the last day new
/// policies are written under it); any other overlap is refused (409).
pub fn place(existing: &[PlanVersion], from: Date, to: Option<Date>) -> Result<Placement, Rejection> {
    let latest = existing.iter().max_by_key(|v| v.effective_from);
    let mut closes = None;
    if let Some(latest) = latest
        && latest.effective_to.is_none()
        && from > latest.effective_from
    {
        closes = Some((latest.id, from.previous_day().unwrap_or(from)));
    }
    if let Some(clash) = existing
        .iter()
        .filter(|v| closes.is_none_or(|(id, _)| id != v.id))
        .find(|v| overlaps(from, to, v.effective_from, v.effective_to))
    {
        return Err(Rejection::conflict(format!(
            "the period overlaps version {} (from {}{}); end that version first or start after it",
            clash.version,
            clash.effective_from,
            clash.effective_to.map(|t| format!(" to {t}")).unwrap_or_default()
        )));
    }
    Ok(Placement { number: existing.iter().map(|v| v.version).max().unwrap_or(0) + 1, closes })
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn version_periods() {
        assert!(overlaps(date!(2026 - 01 - 01), None, date!(2027 - 01 - 01), None));
        assert!(!overlaps(date!(2026 - 01 - 01), Some(date!(2026 - 12 - 31)), date!(2027 - 01 - 01), None));
        assert!(overlaps(date!(2026 - 01 - 01), Some(date!(2027 - 01 - 01)), date!(2027 - 01 - 01), None));
    }

    fn version(number: i32, from: Date, to: Option<Date>) -> PlanVersion {
        PlanVersion {
            id: Uuid::from_u128(number as u128),
            plan_id: Uuid::from_u128(99),
            version: number,
            effective_from: from,
            effective_to: to,
            rules: super::super::plan::example(),
            created_at: datetime!(2026 - 01 - 01 0:00 UTC),
        }
    }

    #[test]
    fn where_a_new_version_goes() {
        let open = [version(1, date!(2026 - 01 - 01), None)];
        // After the open-ended latest: it ends the day before.
        assert_eq!(
            place(&open, date!(2027 - 01 - 01), None),
            Ok(Placement { number: 2, closes: Some((Uuid::from_u128(1), date!(2026 - 12 - 31))) })
        );
        // On the same first day, or inside a closed one: refused.
        let refused = place(&open, date!(2026 - 01 - 01), None).unwrap_err();
        assert_eq!(
            refused,
            Rejection::conflict(
                "the period overlaps version 1 (from 2026-01-01); end that version first or start after it"
            )
        );
        let closed = [version(1, date!(2026 - 01 - 01), Some(date!(2026 - 06 - 30)))];
        assert!(matches!(place(&closed, date!(2026 - 06 - 01), None), Err(Rejection::Conflict(_))));
        assert_eq!(place(&closed, date!(2026 - 07 - 01), None), Ok(Placement { number: 2, closes: None }));
        assert_eq!(place(&[], date!(2026 - 07 - 01), None), Ok(Placement { number: 1, closes: None }));
    }

    #[test]
    fn the_version_on_a_day() {
        let plan = Plan {
            id: Uuid::from_u128(99),
            insurer_id: Uuid::from_u128(98),
            code: "GOLD".into(),
            name: "Gold".into(),
            versions: vec![
                version(1, date!(2026 - 01 - 01), Some(date!(2026 - 12 - 31))),
                version(2, date!(2027 - 01 - 01), None),
            ],
        };
        assert_eq!(plan.version_on(date!(2025 - 12 - 31)).map(|v| v.version), None);
        assert_eq!(plan.version_on(date!(2026 - 12 - 31)).map(|v| v.version), Some(1));
        assert_eq!(plan.version_on(date!(2030 - 01 - 01)).map(|v| v.version), Some(2));
    }
}

//! Member verification: what the insurer says of a member number a hospital holds for a
//! patient (on registration, and when the patient's record changes).

use medcov_domain::TextEnum;
use serde::Serialize;
use time::Date;
use uuid::Uuid;

use super::policy::{Coverage, NotCovered, member_number_valid};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    /// The check digits do not match.
    Invalid,
    /// No member has the number.
    Unknown,
    Covered,
    NotCovered,
}

impl TextEnum for Status {}

/// The answer for one member number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub member_number: String,
    pub status: Status,
    /// Why not covered: `no_active_policy`, `member_inactive`, or a sentence.
    pub reason: Option<String>,
    pub insurer_id: Option<Uuid>,
    pub policy_id: Option<Uuid>,
    pub member_id: Option<Uuid>,
    /// The day it was answered for: the insurer's local date (`YYYY-MM-DD`).
    pub checked_on: Date,
}

/// The code of the insurer that issued a member number: its prefix (`AAR` of
/// `AAR-0000000195`).
pub fn insurer_code(member_number: &str) -> &str {
    member_number.trim().split('-').next().unwrap_or_default()
}

/// The insurer's local date at `now`, in its IANA time `zone`; UTC for a number whose code no
/// insurer has (`None`).
pub fn insurer_day(zone: Option<&str>, now: time::OffsetDateTime) -> Date {
    medcov_domain::calendar::local_date_in(now, zone.unwrap_or("UTC"))
}

/// What the insurer says of `number` on `today`, given the coverage found for it (looked up
/// only for a number whose check digits match).
pub fn verify(number: &str, coverage: Option<&Coverage>, today: Date) -> Verification {
    let (status, reason, coverage) = if !member_number_valid(number) {
        (Status::Invalid, Some("the check digits do not match".to_owned()), None)
    } else {
        match coverage {
            None => (Status::Unknown, Some("no member has this number".to_owned()), None),
            Some(coverage) => match coverage.cover.on(today) {
                Ok(()) => (Status::Covered, None, Some(coverage)),
                Err(NotCovered::NoActivePolicy) => {
                    (Status::NotCovered, Some("no_active_policy".to_owned()), Some(coverage))
                }
                Err(NotCovered::MemberInactive) => {
                    (Status::NotCovered, Some("member_inactive".to_owned()), Some(coverage))
                }
            },
        }
    };
    Verification {
        member_number: number.to_owned(),
        status,
        reason,
        insurer_id: coverage.map(|c| c.policy.insurer_id),
        policy_id: coverage.map(|c| c.policy.id),
        member_id: coverage.map(|c| c.member.member_id),
        checked_on: today,
    }
}

/// The members found covered.
pub fn covered(answers: &[Verification]) -> Vec<Uuid> {
    answers.iter().filter(|a| a.status == Status::Covered).filter_map(|a| a.member_id).collect()
}

/// Why a registration cannot link any member, when none is covered. It names statuses, never
/// the numbers (it reaches the saga's record).
pub fn none_covered(answers: &[Verification]) -> Option<String> {
    if !covered(answers).is_empty() {
        return None;
    }
    let why: Vec<&str> = answers.iter().map(|a| a.reason.as_deref().unwrap_or(a.status.as_str())).collect();
    Some(format!("no member number is covered today ({})", why.join("; ")))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::domain::policy::tests::sample_policy;
    use crate::domain::policy::{MemberStatus, PolicyStatus, member_number};

    /// A member number is checked on its insurer's day, on either side of local midnight at
    /// UTC+14 and UTC−10 (the same instant is a day apart there).
    #[test]
    fn a_number_is_checked_on_its_insurers_day() {
        use time::macros::datetime;
        let insurers =
            [("KIR".to_owned(), "Pacific/Kiritimati".to_owned()), ("HNL".to_owned(), "Pacific/Honolulu".to_owned())];
        let cases = [
            ("KIR-0000000195", datetime!(2026-11-30 09:59 UTC), date!(2026 - 11 - 30)),
            ("KIR-0000000195", datetime!(2026-11-30 10:00 UTC), date!(2026 - 12 - 01)),
            ("HNL-0000000195", datetime!(2026-12-01 09:59 UTC), date!(2026 - 11 - 30)),
            ("HNL-0000000195", datetime!(2026-12-01 10:00 UTC), date!(2026 - 12 - 01)),
            // An insurer it does not know: UTC.
            ("XYZ-0000000195", datetime!(2026-11-30 23:59 UTC), date!(2026 - 11 - 30)),
        ];
        for (number, at, day) in cases {
            let zone = insurers.iter().find(|(code, _)| code == insurer_code(number)).map(|(_, zone)| zone.as_str());
            assert_eq!(insurer_day(zone, at), day, "{number} at {at}");
            assert_eq!(verify(number, None, day).checked_on, day);
        }
    }

    #[test]
    fn numbers_are_checked_then_looked_up() {
        let today = date!(2026 - 03 - 01);
        let policy = sample_policy();
        let number = policy.members[0].member_number.clone();
        let covered_now = Coverage::of(policy.clone(), policy.members[0].member_id).unwrap();
        let answer = verify(&number, Some(&covered_now), today);
        assert_eq!((answer.status, answer.reason.as_deref()), (Status::Covered, None));
        assert_eq!(answer.member_id, Some(policy.members[0].member_id));

        let bad = verify("AAR-0000000196", None, today);
        assert_eq!((bad.status, bad.reason.as_deref()), (Status::Invalid, Some("the check digits do not match")));
        assert_eq!(bad.insurer_id, None);
        let unknown = verify(&member_number("AAR", 7), None, today);
        assert_eq!(unknown.status, Status::Unknown);

        let mut pending = policy.clone();
        pending.status = PolicyStatus::Pending;
        let pending = Coverage::of(pending, policy.members[0].member_id).unwrap();
        let lapsed = verify(&number, Some(&pending), today);
        assert_eq!((lapsed.status, lapsed.reason.as_deref()), (Status::NotCovered, Some("no_active_policy")));
        assert_eq!(lapsed.policy_id, Some(policy.id));
        let mut gone = policy.clone();
        gone.members[0].status = MemberStatus::Inactive;
        gone.members[0].status_on = Some(date!(2026 - 02 - 01));
        let gone = Coverage::of(gone, policy.members[0].member_id).unwrap();
        assert_eq!(verify(&number, Some(&gone), today).reason.as_deref(), Some("member_inactive"));

        let answers = [answer.clone(), bad.clone()];
        assert_eq!(covered(&answers), [policy.members[0].member_id]);
        assert_eq!(none_covered(&answers), None);
        assert_eq!(
            none_covered(&[bad, unknown]).as_deref(),
            Some("no member number is covered today (the check digits do not match; no member has this number)")
        );
        // The payload form other services read.
        assert_eq!(serde_json::to_value(&answer).unwrap()["status"], "covered");
    }
}

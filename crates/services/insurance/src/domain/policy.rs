//! Policies and members: lifecycle, coverage on a date, premiums, member numbers.

use medcov_domain::{Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::plan::PremiumRule;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PolicyStatus {
    /// Awaiting its premium.
    Pending,
    Active,
    Suspended,
    Expired,
    Cancelled,
}

impl TextEnum for PolicyStatus {}

impl PolicyStatus {
    /// The moves a policy may make: pending to active (premium paid) or cancelled; active to
    /// suspended, expired or cancelled; a suspension lifted, expired or cancelled.
    pub fn can_become(self, next: PolicyStatus) -> bool {
        use PolicyStatus::*;
        matches!(
            (self, next),
            (Pending, Active | Cancelled)
                | (Active, Suspended | Expired | Cancelled)
                | (Suspended, Active | Expired | Cancelled)
        )
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Inactive,
    Deceased,
}

impl TextEnum for MemberStatus {}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Relationship {
    Holder,
    Spouse,
    Child,
    Parent,
    Other,
}

impl TextEnum for Relationship {}

/// A person on a policy period.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyMember {
    pub member_id: Uuid,
    /// Unique, with two check digits ([`member_number`]).
    pub member_number: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Date,
    pub relationship: Relationship,
    /// Waiting periods run from this day; kept across renewals.
    pub enrolled_on: Date,
    pub status: MemberStatus,
    /// From this day an inactive or deceased member is not covered.
    pub status_on: Option<Date>,
}

/// One policy period with its members (the holder first).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub number: String,
    pub plan_id: Uuid,
    /// The plan version whose rules this period is covered and adjudicated under.
    pub plan_version_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub start_date: Date,
    /// The last covered day.
    pub expiry_date: Date,
    /// The premium for the period, in minor units of `currency`.
    pub premium: i64,
    pub currency: String,
    pub status: PolicyStatus,
    /// From this day a suspended or cancelled policy covers nothing.
    pub ended_on: Option<Date>,
    /// The period this one renews.
    pub renewal_of: Option<Uuid>,
    pub version: i64,
    pub members: Vec<PolicyMember>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Policy {
    pub fn member_ids(&self) -> Vec<Uuid> {
        self.members.iter().map(|m| m.member_id).collect()
    }

    /// What decides whether `member` is covered by this period on a date.
    pub fn cover_of(&self, member: &PolicyMember) -> Cover {
        Cover {
            policy_status: self.status,
            policy_start: self.start_date,
            policy_expiry: self.expiry_date,
            policy_ended_on: self.ended_on,
            enrolled_on: member.enrolled_on,
            member_status: member.status,
            member_status_on: member.status_on,
        }
    }
}

/// What covers a member on a date: the member, their policy period, and what decides it.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub member: PolicyMember,
    pub policy: Policy,
    pub cover: Cover,
}

impl Coverage {
    /// The coverage of `member` by `policy`; `None` when the member is not on it.
    pub fn of(policy: Policy, member: Uuid) -> Option<Coverage> {
        let member = policy.members.iter().find(|m| m.member_id == member)?.clone();
        let cover = policy.cover_of(&member);
        Some(Coverage { member, policy, cover })
    }
}

/// Whether a policy may move from `from` to `to` (409 when not).
pub fn check_transition(from: PolicyStatus, to: PolicyStatus) -> Result<(), Rejection> {
    if from.can_become(to) {
        Ok(())
    } else {
        Err(Rejection::conflict(format!("a {} policy cannot become {}", from.as_str(), to.as_str())))
    }
}

/// From which day a policy moving to `next` stops covering: the chosen day (today by default)
/// for a suspension or cancellation, the day after its last for an expiry, none otherwise.
pub fn ended_on(policy: &Policy, next: PolicyStatus, effective_on: Option<Date>, today: Date) -> Option<Date> {
    match next {
        PolicyStatus::Suspended | PolicyStatus::Cancelled => Some(effective_on.unwrap_or(today)),
        PolicyStatus::Expired => Some(policy.expiry_date.next_day().unwrap_or(policy.expiry_date)),
        PolicyStatus::Active | PolicyStatus::Pending => None,
    }
}

/// What an administrator's status change must say: a day within the period, and a reason to
/// suspend or cancel.
pub fn check_status_change(
    policy: &Policy,
    next: PolicyStatus,
    effective_on: Option<Date>,
    reason: Option<&str>,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    if let Some(on) = effective_on
        && (on < policy.start_date || on > policy.expiry_date.next_day().unwrap_or(policy.expiry_date))
    {
        errors.push(medcov_domain::FieldError::new("effective_on", "must fall within the policy period"));
    }
    if matches!(next, PolicyStatus::Suspended | PolicyStatus::Cancelled) && reason.is_none_or(|r| r.trim().is_empty()) {
        errors.push(medcov_domain::FieldError::new("reason", "is required to suspend or cancel a policy"));
    }
    Rejection::check(errors)
}

/// A member status change: a date of death cannot be in the future.
pub fn check_member_status(status: MemberStatus, effective_on: Date, today: Date) -> Result<(), Rejection> {
    if status == MemberStatus::Deceased && effective_on > today {
        return Err(Rejection::field("effective_on", "a date of death cannot be in the future"));
    }
    Ok(())
}

/// The day from which a member in `status` is not covered: none while active.
pub fn member_status_on(status: MemberStatus, on: Date) -> Option<Date> {
    (status != MemberStatus::Active).then_some(on)
}

/// A policy number: the insurer's code, `-P` and the insurer's policy sequence in eight digits.
pub fn policy_number(insurer_code: &str, sequence: i64) -> String {
    format!("{insurer_code}-P{sequence:08}")
}

/// What decides whether a member is covered on a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cover {
    pub policy_status: PolicyStatus,
    pub policy_start: Date,
    /// The last covered day.
    pub policy_expiry: Date,
    /// From this day a suspended or cancelled policy covers nothing.
    pub policy_ended_on: Option<Date>,
    pub enrolled_on: Date,
    pub member_status: MemberStatus,
    /// From this day an inactive or deceased member is not covered.
    pub member_status_on: Option<Date>,
}

/// Why a member is not covered on a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCovered {
    NoActivePolicy,
    MemberInactive,
}

impl Cover {
    pub fn on(&self, date: Date) -> Result<(), NotCovered> {
        let in_period = self.policy_start <= date && date <= self.policy_expiry;
        let policy = match self.policy_status {
            PolicyStatus::Active | PolicyStatus::Expired => in_period,
            PolicyStatus::Suspended | PolicyStatus::Cancelled => {
                in_period && self.policy_ended_on.is_some_and(|ended| date < ended)
            }
            PolicyStatus::Pending => false,
        };
        if !policy {
            return Err(NotCovered::NoActivePolicy);
        }
        let member = date >= self.enrolled_on
            && match self.member_status {
                MemberStatus::Active => true,
                MemberStatus::Inactive | MemberStatus::Deceased => self.member_status_on.is_some_and(|on| date < on),
            };
        if member { Ok(()) } else { Err(NotCovered::MemberInactive) }
    }
}

/// Age in whole years on `on`.
pub fn age_on(date_of_birth: Date, on: Date) -> i32 {
    let mut years = on.year() - date_of_birth.year();
    if (on.month() as u8, on.day()) < (date_of_birth.month() as u8, date_of_birth.day()) {
        years -= 1;
    }
    years
}

/// The annual premium of a policy whose members were born on these dates, at its start.
pub fn premium(rule: &PremiumRule, births: &[Date], start: Date) -> i64 {
    match *rule {
        PremiumRule::PerMember { adult, child, child_until_age } => {
            births.iter().map(|b| if age_on(*b, start) < i32::from(child_until_age) { child } else { adult }).sum()
        }
        PremiumRule::LumpSum { amount, members_included, per_extra_member } => {
            let extra = (births.len() as i64 - i64::from(members_included)).max(0);
            amount + extra * per_extra_member
        }
    }
}

/// A member number: the insurer's code, a dash, the sequence in at least eight digits and two
/// check digits
/// by ISO 7064 MOD 97-10 (as in IBANs), which catch every single-digit error and every
/// transposition of adjacent digits. `AAR-0000000195` is the first member of insurer `AAR`.
pub fn member_number(insurer_code: &str, sequence: u64) -> String {
    let body = format!("{sequence:08}");
    let check = 98 - mod97(&format!("{body}00"));
    format!("{insurer_code}-{body}{check:02}")
}

/// Whether the digits after the dash carry the right check digits.
pub fn member_number_valid(number: &str) -> bool {
    let Some((code, digits)) = number.rsplit_once('-') else {
        return false;
    };
    !code.is_empty()
        && (10..=22).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && mod97(digits) == 1
}

fn mod97(digits: &str) -> u32 {
    digits.bytes().fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97)
}

#[cfg(test)]
pub(crate) mod tests {
    use strum::VariantArray;
    use time::macros::date;

    use super::*;

    #[test]
    fn member_numbers_check_out() {
        // By hand: 98 - (0000000100 mod 97 = 3) = 95.
        assert_eq!(member_number("AAR", 1), "AAR-0000000195");
        let n = member_number("AAR", 1234);
        assert_eq!(n.len(), "AAR-".len() + 10);
        assert!(member_number_valid(&n), "{n}");
        for seq in [0, 1, 9, 99_999_999, 100_000_000, 4_711] {
            assert!(member_number_valid(&member_number("X1", seq)));
        }
        // Every single-digit change and every adjacent swap of different digits is caught.
        let digits: Vec<u8> = n.as_bytes()[4..].to_vec();
        for i in 0..digits.len() {
            for d in b'0'..=b'9' {
                if d == digits[i] {
                    continue;
                }
                let mut changed = digits.clone();
                changed[i] = d;
                assert!(!member_number_valid(&format!("AAR-{}", String::from_utf8(changed).unwrap())));
            }
            if i + 1 < digits.len() && digits[i] != digits[i + 1] {
                let mut swapped = digits.clone();
                swapped.swap(i, i + 1);
                assert!(!member_number_valid(&format!("AAR-{}", String::from_utf8(swapped).unwrap())));
            }
        }
        assert!(!member_number_valid("AAR0000001234"));
    }

    #[test]
    fn premiums_by_hand() {
        let per_member = PremiumRule::PerMember { adult: 1_200_000, child: 600_000, child_until_age: 18 };
        let start = date!(2026 - 01 - 01);
        // Two adults and a child who turns 18 the day after the start: 12 000 + 12 000 + 6 000.
        let births = [date!(1980 - 05 - 01), date!(1985 - 01 - 01), date!(2008 - 01 - 02)];
        assert_eq!(premium(&per_member, &births, start), 3_000_000);
        // Turning 18 on the start day makes an adult.
        assert_eq!(premium(&per_member, &[date!(2008 - 01 - 01)], start), 1_200_000);
        let lump = PremiumRule::LumpSum { amount: 5_000_000, members_included: 4, per_extra_member: 700_000 };
        assert_eq!(premium(&lump, &births, start), 5_000_000);
        assert_eq!(premium(&lump, &[start; 6], start), 6_400_000);
    }

    #[test]
    fn words_round_trip() {
        for status in PolicyStatus::VARIANTS {
            assert_eq!(PolicyStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(Relationship::Holder.as_str(), "holder");
        assert_eq!(MemberStatus::parse("deceased"), Some(MemberStatus::Deceased));
        assert_eq!(MemberStatus::parse("gone"), None);
        assert_eq!(policy_number("AAR", 42), "AAR-P00000042");
    }

    #[test]
    fn transitions_and_end_days() {
        assert!(check_transition(PolicyStatus::Pending, PolicyStatus::Active).is_ok());
        assert_eq!(
            check_transition(PolicyStatus::Cancelled, PolicyStatus::Active),
            Err(Rejection::conflict("a cancelled policy cannot become active"))
        );
        let policy = sample_policy();
        let today = date!(2026 - 03 - 10);
        let cases = [
            (PolicyStatus::Suspended, None, Some(today)),
            (PolicyStatus::Cancelled, Some(date!(2026 - 04 - 01)), Some(date!(2026 - 04 - 01))),
            (PolicyStatus::Expired, None, Some(date!(2027 - 01 - 01))),
            (PolicyStatus::Active, Some(date!(2026 - 04 - 01)), None),
        ];
        for (next, effective_on, expected) in cases {
            assert_eq!(ended_on(&policy, next, effective_on, today), expected, "{next:?}");
        }
    }

    #[test]
    fn status_changes_need_a_day_in_the_period_and_a_reason() {
        let policy = sample_policy();
        let fields = |next, on, reason| match check_status_change(&policy, next, on, reason) {
            Ok(()) => Vec::new(),
            Err(Rejection::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("{other:?}"),
        };
        assert!(fields(PolicyStatus::Active, None, None).is_empty());
        assert_eq!(fields(PolicyStatus::Cancelled, None, Some(" ")), ["reason"]);
        assert_eq!(fields(PolicyStatus::Suspended, Some(date!(2025 - 12 - 31)), Some("x")), ["effective_on"]);
        assert!(fields(PolicyStatus::Expired, Some(date!(2027 - 01 - 01)), None).is_empty());
        assert_eq!(
            check_member_status(MemberStatus::Deceased, date!(2026 - 03 - 11), date!(2026 - 03 - 10)),
            Err(Rejection::field("effective_on", "a date of death cannot be in the future"))
        );
        assert_eq!(member_status_on(MemberStatus::Active, date!(2026 - 03 - 10)), None);
        assert_eq!(member_status_on(MemberStatus::Inactive, date!(2026 - 03 - 10)), Some(date!(2026 - 03 - 10)));
    }

    pub(crate) fn sample_policy() -> Policy {
        let at = time::macros::datetime!(2026 - 01 - 01 0:00 UTC);
        Policy {
            id: Uuid::from_u128(1),
            insurer_id: Uuid::from_u128(2),
            number: "AAR-P00000001".into(),
            plan_id: Uuid::from_u128(3),
            plan_version_id: Uuid::from_u128(4),
            holder_id: Uuid::from_u128(5),
            agent_id: None,
            start_date: date!(2026 - 01 - 01),
            expiry_date: date!(2026 - 12 - 31),
            premium: 1_800_000,
            currency: "KES".into(),
            status: PolicyStatus::Active,
            ended_on: None,
            renewal_of: None,
            version: 1,
            members: vec![PolicyMember {
                member_id: Uuid::from_u128(5),
                member_number: "AAR-0000000195".into(),
                given_name: "Amina".into(),
                family_name: "Otieno".into(),
                date_of_birth: date!(1988 - 04 - 12),
                relationship: Relationship::Holder,
                enrolled_on: date!(2026 - 01 - 01),
                status: MemberStatus::Active,
                status_on: None,
            }],
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn lifecycle() {
        use PolicyStatus::*;
        assert!(Pending.can_become(Active));
        assert!(Suspended.can_become(Active));
        assert!(!Cancelled.can_become(Active));
        assert!(!Expired.can_become(Active));
        assert!(!Pending.can_become(Suspended));
        assert!(!Active.can_become(Pending));
    }

    #[test]
    fn cover_on_a_date() {
        let cover = Cover {
            policy_status: PolicyStatus::Cancelled,
            policy_start: date!(2026 - 01 - 01),
            policy_expiry: date!(2026 - 12 - 31),
            policy_ended_on: Some(date!(2026 - 06 - 01)),
            enrolled_on: date!(2026 - 02 - 01),
            member_status: MemberStatus::Deceased,
            member_status_on: Some(date!(2026 - 05 - 01)),
        };
        assert_eq!(cover.on(date!(2026 - 01 - 15)), Err(NotCovered::MemberInactive)); // not yet enrolled
        assert_eq!(cover.on(date!(2026 - 03 - 01)), Ok(()));
        assert_eq!(cover.on(date!(2026 - 05 - 01)), Err(NotCovered::MemberInactive));
        assert_eq!(cover.on(date!(2026 - 06 - 01)), Err(NotCovered::NoActivePolicy));
        assert_eq!(cover.on(date!(2025 - 12 - 31)), Err(NotCovered::NoActivePolicy));
        let pending = Cover { policy_status: PolicyStatus::Pending, ..cover };
        assert_eq!(pending.on(date!(2026 - 03 - 01)), Err(NotCovered::NoActivePolicy));
    }
}

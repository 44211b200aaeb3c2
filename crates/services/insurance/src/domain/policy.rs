//! Policies and members: lifecycle, coverage on a date, premiums, member numbers.

use serde::{Deserialize, Serialize};
use time::Date;

use super::plan::PremiumRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyStatus {
    /// Awaiting its premium.
    Pending,
    Active,
    Suspended,
    Expired,
    Cancelled,
}

impl PolicyStatus {
    pub const ALL: [PolicyStatus; 5] = [
        PolicyStatus::Pending,
        PolicyStatus::Active,
        PolicyStatus::Suspended,
        PolicyStatus::Expired,
        PolicyStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyStatus::Pending => "pending",
            PolicyStatus::Active => "active",
            PolicyStatus::Suspended => "suspended",
            PolicyStatus::Expired => "expired",
            PolicyStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyStatus> {
        PolicyStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Inactive,
    Deceased,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Inactive => "inactive",
            MemberStatus::Deceased => "deceased",
        }
    }

    pub fn parse(s: &str) -> Option<MemberStatus> {
        [MemberStatus::Active, MemberStatus::Inactive, MemberStatus::Deceased].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    Holder,
    Spouse,
    Child,
    Parent,
    Other,
}

/// What decides whether a member is covered on a date.
#[derive(Debug, Clone, PartialEq, Eq)]
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
mod tests {
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

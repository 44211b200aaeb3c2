//! Agents' commissions: earned when a premium they sold is paid in full, at the rate of the
//! plan for the agent's tier; clawed back when the policy is cancelled or the premium refunded
//! within the clawback period; paid out in payouts.

use medcov_domain::{FieldError, Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::ledger::Method;
use super::premium::Premium;

/// The tier of an agent nobody gave one.
pub const DEFAULT_TIER: &str = "standard";

/// The highest commission rate, in basis points (50 %).
pub const MAX_RATE_BP: u32 = 5_000;

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
pub enum CommissionStatus {
    Earned,
    ClawedBack,
}

impl TextEnum for CommissionStatus {}

/// A commission, earned on a paid premium.
#[derive(Debug, Clone, PartialEq)]
pub struct Commission {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub agent_id: Uuid,
    pub policy_id: Uuid,
    pub premium_id: Uuid,
    pub premium_amount: i64,
    /// Basis points of the premium.
    pub rate_bp: i32,
    pub amount: i64,
    pub status: CommissionStatus,
    pub earned_at: OffsetDateTime,
    pub clawed_back_at: Option<OffsetDateTime>,
    pub clawback_reason: Option<String>,
}

/// A payout of commissions to an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Payout {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub agent_id: Uuid,
    pub amount: i64,
    /// The currency of the premiums whose commissions it pays: one payout, one currency.
    pub currency: String,
    pub method: Method,
    pub external_reference: String,
    pub created_at: OffsetDateTime,
}

/// An agent's tier, as given: 1 to 30 of a-z and `_` (lower-cased).
pub fn tier(word: &str) -> Result<String, FieldError> {
    let tier = word.trim().to_lowercase();
    if tier.is_empty() || tier.len() > 30 || !tier.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(FieldError::new("tier", "must be 1 to 30 of a-z and `_`"));
    }
    Ok(tier)
}

/// A commission rate, at most [`MAX_RATE_BP`].
pub fn rate(rate_bp: u32) -> Result<u32, FieldError> {
    if rate_bp > MAX_RATE_BP {
        return Err(FieldError::new("rate_bp", "must be at most 5000 (50 %)"));
    }
    Ok(rate_bp)
}

/// The commission `agent` earns on a premium just paid in full, at `rate_bp` (the plan's rate
/// for the agent's tier): none without a positive rate.
pub fn earn(premium: &Premium, agent: Uuid, rate_bp: Option<i32>, id: Uuid, now: OffsetDateTime) -> Option<Commission> {
    let rate = rate_bp.filter(|r| *r > 0)?;
    Some(Commission {
        id,
        insurer_id: premium.insurer_id,
        agent_id: agent,
        policy_id: premium.policy_id,
        premium_id: premium.id,
        premium_amount: premium.amount,
        rate_bp: rate,
        amount: medcov_money::share(premium.amount, rate.unsigned_abs()),
        status: CommissionStatus::Earned,
        earned_at: now,
        clawed_back_at: None,
        clawback_reason: None,
    })
}

impl Commission {
    /// Whether a cancellation or refund at `now` takes it back: it is still earned, and was
    /// earned within the last `clawback_days`.
    pub fn claws_back(&self, now: OffsetDateTime, clawback_days: u32) -> bool {
        self.status == CommissionStatus::Earned && self.earned_at >= now - Duration::days(i64::from(clawback_days))
    }
}

/// What a statement shows of commissions: (earned and kept, clawed back).
pub fn totals(commissions: &[Commission]) -> (i64, i64) {
    commissions.iter().fold((0, 0), |(earned, clawed_back), c| match c.status {
        CommissionStatus::Earned => (earned + c.amount, clawed_back),
        CommissionStatus::ClawedBack => (earned, clawed_back + c.amount),
    })
}

/// What a payout pays: the agent's earned, unpaid commissions (`owed`) less those clawed back
/// after they were paid (`recovered`); nothing owed is a conflict.
pub fn payout(owed: i64, recovered: i64) -> Result<i64, Rejection> {
    let amount = owed - recovered;
    if amount <= 0 {
        return Err(Rejection::conflict(format!(
            "nothing is owed to the agent (earned and unpaid {owed}, clawed back after payment {recovered})"
        )));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::invoice::Status;

    fn premium() -> Premium {
        Premium {
            id: Uuid::from_u128(1),
            insurer_id: Uuid::from_u128(2),
            policy_id: Uuid::from_u128(3),
            plan_id: Uuid::from_u128(4),
            holder_id: Uuid::from_u128(5),
            agent_id: Some(Uuid::from_u128(6)),
            number: "PRM-1".into(),
            amount: 1_200_000,
            currency: "KES".into(),
            status: Status::Paid,
            paid: 1_200_000,
            due_date: date!(2026 - 12 - 01),
            void_reason: None,
            created_at: datetime!(2026-11-01 00:00 UTC),
            paid_at: None,
        }
    }

    #[test]
    fn a_commission_is_the_rate_of_the_premium() {
        let now = datetime!(2026-11-26 10:00 UTC);
        let agent = Uuid::from_u128(6);
        let earned = earn(&premium(), agent, Some(1_250), Uuid::from_u128(7), now).unwrap();
        assert_eq!((earned.amount, earned.rate_bp, earned.status), (150_000, 1_250, CommissionStatus::Earned));
        assert_eq!(
            (earned.premium_id, earned.policy_id, earned.agent_id),
            (Uuid::from_u128(1), Uuid::from_u128(3), agent)
        );
        assert_eq!(earn(&premium(), agent, Some(0), Uuid::nil(), now), None, "a zero rate earns nothing");
        assert_eq!(earn(&premium(), agent, None, Uuid::nil(), now), None, "no rate, no commission");
    }

    #[test]
    fn the_clawback_period() {
        let earned_at = datetime!(2026-11-01 12:00 UTC);
        let commission =
            earn(&premium(), Uuid::from_u128(6), Some(1_000), Uuid::from_u128(7), earned_at).expect("earned");
        for (now, days, expected) in [
            (datetime!(2026-11-02 12:00 UTC), 30, true),
            (datetime!(2026-12-01 12:00 UTC), 30, true),
            (datetime!(2026-12-01 12:00:01 UTC), 30, false),
            (datetime!(2026-11-01 12:00 UTC), 0, true),
            (datetime!(2026-11-01 12:00:01 UTC), 0, false),
        ] {
            assert_eq!(commission.claws_back(now, days), expected, "{now} within {days} days");
        }
        let clawed = Commission { status: CommissionStatus::ClawedBack, ..commission };
        assert!(!clawed.claws_back(datetime!(2026-11-02 12:00 UTC), 30), "taken back once");
    }

    #[test]
    fn statements_and_payouts() {
        let one = earn(&premium(), Uuid::from_u128(6), Some(1_250), Uuid::from_u128(7), datetime!(2026-11-01 0:00 UTC))
            .unwrap();
        let two = Commission { status: CommissionStatus::ClawedBack, amount: 20_000, ..one.clone() };
        assert_eq!(totals(&[one, two]), (150_000, 20_000));
        assert_eq!(payout(150_000, 20_000), Ok(130_000));
        assert_eq!(
            payout(0, 150_000),
            Err(Rejection::conflict(
                "nothing is owed to the agent (earned and unpaid 0, clawed back after payment 150000)"
            ))
        );
        assert!(payout(10, 10).is_err());
    }

    #[test]
    fn tiers_and_rates() {
        assert_eq!(tier(" Gold "), Ok("gold".into()));
        assert_eq!(tier("gold-2").unwrap_err().field, "tier");
        assert!(tier("").is_err() && tier(&"a".repeat(31)).is_err());
        assert_eq!(rate(5_000), Ok(5_000));
        assert_eq!(rate(5_001).unwrap_err().reason, "must be at most 5000 (50 %)");
        assert_eq!(CommissionStatus::ClawedBack.as_str(), "clawed_back");
    }
}

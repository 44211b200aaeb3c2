//! Premiums: what a policy holder owes for a policy period, paid in one or more payments, voided
//! when the policy is cancelled unpaid. A premium's statuses are an invoice's, without `draft`.

use medcov_domain::Rejection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::invoice::{Status, apply, ladder};
use super::ledger::{self, Entry, Method};

/// A policy period's premium.
#[derive(Debug, Clone, PartialEq)]
pub struct Premium {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub plan_id: Uuid,
    pub holder_id: Uuid,
    /// The agent who sold the policy, who earns a commission once it is paid.
    pub agent_id: Option<Uuid>,
    pub number: String,
    pub amount: i64,
    pub currency: String,
    /// `issued`, `partially_paid`, `paid` or `void`.
    pub status: Status,
    pub paid: i64,
    pub due_date: Date,
    pub void_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub paid_at: Option<OffsetDateTime>,
}

/// A premium to invoice for a new policy period.
#[derive(Debug, Clone)]
pub struct NewPremium {
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub plan_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub amount: i64,
    pub currency: String,
    /// The insurer's IANA time zone: the premium is numbered and due by its days.
    pub timezone: String,
    /// How long after it is invoiced it is due (whole days count).
    pub due_in: time::Duration,
}

/// A premium payment.
#[derive(Debug, Clone, PartialEq)]
pub struct PremiumPayment {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub premium_id: Uuid,
    pub method: Method,
    pub amount: i64,
    pub applied: i64,
    pub credit: i64,
    pub external_reference: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A payment as it lands on a premium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PremiumSettlement {
    pub applied: i64,
    pub credit: i64,
    pub paid: i64,
    pub status: Status,
    /// This payment is the one that pays the premium in full (activating the policy and
    /// earning the agent's commission).
    pub completes: bool,
}

/// A premium after a refund made part of a payment owed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PremiumReopened {
    pub paid: i64,
    pub status: Status,
    /// A premium paid in full no longer is: the commission earned on it is clawed back.
    pub short: bool,
}

impl Premium {
    /// The premium invoiced for `new` at `now`, numbered by the insurer's day and due `due_in`
    /// after it (the insurer's local date, never the UTC date), nothing paid.
    pub fn invoice(new: NewPremium, id: Uuid, now: OffsetDateTime) -> Premium {
        let today = medcov_domain::calendar::local_date_in(now, &new.timezone);
        Premium {
            id,
            insurer_id: new.insurer_id,
            policy_id: new.policy_id,
            plan_id: new.plan_id,
            holder_id: new.holder_id,
            agent_id: new.agent_id,
            number: premium_number(id, today),
            amount: new.amount,
            currency: new.currency,
            status: Status::Issued,
            paid: 0,
            due_date: today + new.due_in,
            void_reason: None,
            created_at: now,
            paid_at: None,
        }
    }

    /// A payment of `amount`; a void premium takes none.
    pub fn settle(&self, amount: i64) -> Result<PremiumSettlement, Rejection> {
        if self.status == Status::Void {
            return Err(Rejection::conflict("a void premium takes no payment"));
        }
        let (applied, credit) = apply(self.amount - self.paid, amount);
        let paid = self.paid + applied;
        Ok(PremiumSettlement {
            applied,
            credit,
            paid,
            status: ladder(self.amount, paid),
            completes: paid >= self.amount && self.paid < self.amount,
        })
    }

    /// The premium after `from_applied` of a payment is refunded. A void premium stays void.
    pub fn reopen(&self, from_applied: i64) -> PremiumReopened {
        let paid = self.paid - from_applied;
        let status = if self.status == Status::Void { Status::Void } else { ladder(self.amount, paid) };
        let short = from_applied > 0 && self.paid >= self.amount && paid < self.amount;
        PremiumReopened { paid, status, short }
    }

    /// Its policy was cancelled: an unpaid premium is withdrawn (the entry reverses it); one
    /// with money on it stays as it is.
    pub fn cancel(&self) -> Option<Entry> {
        (self.paid == 0 && self.status == Status::Issued).then(|| ledger::premium_voided(self.amount))
    }
}

/// A premium number: the day it was invoiced and the last twelve hex digits of its id.
pub fn premium_number(id: Uuid, day: Date) -> String {
    let hex = id.simple().to_string().to_uppercase();
    format!("PRM-{}{:02}{:02}-{}", day.year(), day.month() as u8, day.day(), &hex[20..])
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn premium(amount: i64, paid: i64, status: Status) -> Premium {
        let new = NewPremium {
            insurer_id: Uuid::from_u128(1),
            policy_id: Uuid::from_u128(2),
            plan_id: Uuid::from_u128(3),
            holder_id: Uuid::from_u128(4),
            agent_id: Some(Uuid::from_u128(5)),
            amount,
            currency: "KES".into(),
            timezone: "Africa/Nairobi".into(),
            due_in: time::Duration::days(30),
        };
        let invoiced = Premium::invoice(new, Uuid::from_u128(0xabc_def0_1234), datetime!(2026-11-26 09:00 UTC));
        Premium { paid, status, ..invoiced }
    }

    #[test]
    fn a_premium_is_numbered_by_its_day() {
        let p = premium(1_200_000, 0, Status::Issued);
        assert_eq!(p.number, "PRM-20261126-0ABCDEF01234");
        assert_eq!(p.due_date, date!(2026 - 12 - 26));
        assert_eq!((p.status, p.paid, p.paid_at), (Status::Issued, 0, None));
    }

    /// A premium is numbered and due by the insurer's local day, on either side of its
    /// midnight: at UTC+14 (Kiritimati) and UTC−10 (Honolulu) the same instant is a day apart.
    #[test]
    fn a_premium_is_numbered_and_due_by_the_insurers_day() {
        let id = Uuid::from_u128(0xabc_def0_1234);
        // (zone, instant, number's day, due date 30 days later)
        let cases = [
            ("Pacific/Kiritimati", datetime!(2026-11-30 09:59 UTC), "20261130", date!(2026 - 12 - 30)),
            ("Pacific/Kiritimati", datetime!(2026-11-30 10:00 UTC), "20261201", date!(2026 - 12 - 31)),
            ("Pacific/Honolulu", datetime!(2026-12-01 09:59 UTC), "20261130", date!(2026 - 12 - 30)),
            ("Pacific/Honolulu", datetime!(2026-12-01 10:00 UTC), "20261201", date!(2026 - 12 - 31)),
            ("UTC", datetime!(2026-11-30 23:59 UTC), "20261130", date!(2026 - 12 - 30)),
        ];
        for (zone, at, day, due) in cases {
            let new = NewPremium {
                insurer_id: Uuid::from_u128(1),
                policy_id: Uuid::from_u128(2),
                plan_id: Uuid::from_u128(3),
                holder_id: Uuid::from_u128(4),
                agent_id: None,
                amount: 1,
                currency: "USD".into(),
                timezone: zone.into(),
                due_in: time::Duration::days(30),
            };
            let p = Premium::invoice(new, id, at);
            assert_eq!(
                (p.number.as_str(), p.due_date),
                (format!("PRM-{day}-0ABCDEF01234").as_str(), due),
                "{zone} {at}"
            );
        }
    }

    #[test]
    fn payments_climb_the_ladder_and_one_completes() {
        for (paid, amount, expected) in [
            (0, 400_000, (400_000, 0, 400_000, Status::PartiallyPaid, false)),
            (400_000, 800_000, (800_000, 0, 1_200_000, Status::Paid, true)),
            (400_000, 1_000_000, (800_000, 200_000, 1_200_000, Status::Paid, true)),
            (1_200_000, 5_000, (0, 5_000, 1_200_000, Status::Paid, false)),
        ] {
            let status = if paid == 0 { Status::Issued } else { super::ladder(1_200_000, paid) };
            let s = premium(1_200_000, paid, status).settle(amount).unwrap();
            assert_eq!((s.applied, s.credit, s.paid, s.status, s.completes), expected, "{amount} on {paid}");
        }
        assert_eq!(
            premium(1_200_000, 0, Status::Void).settle(1),
            Err(Rejection::conflict("a void premium takes no payment"))
        );
    }

    #[test]
    fn a_refund_reopens_and_may_leave_it_short() {
        let paid = premium(1_200_000, 1_200_000, Status::Paid);
        assert_eq!(
            paid.reopen(200_000),
            PremiumReopened { paid: 1_000_000, status: Status::PartiallyPaid, short: true }
        );
        assert_eq!(paid.reopen(0), PremiumReopened { paid: 1_200_000, status: Status::Paid, short: false });
        let partly = premium(1_200_000, 400_000, Status::PartiallyPaid);
        assert_eq!(partly.reopen(400_000), PremiumReopened { paid: 0, status: Status::Issued, short: false });
        let void = premium(1_200_000, 1_200_000, Status::Void);
        assert_eq!(void.reopen(100).status, Status::Void);
    }

    #[test]
    fn only_an_unpaid_premium_is_voided() {
        assert_eq!(premium(1_200_000, 0, Status::Issued).cancel(), Some(ledger::premium_voided(1_200_000)));
        assert_eq!(premium(1_200_000, 100, Status::PartiallyPaid).cancel(), None);
        assert_eq!(premium(1_200_000, 0, Status::Void).cancel(), None);
    }
}

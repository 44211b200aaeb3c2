//! Refunds of payments, of care (a payment of an invoice) or of a premium (a premium payment):
//! one person asks, a second one approves, and only the approval moves money. A refund comes
//! first out of the payment's credit (the overpaid part), then out of what it settled, which
//! is owed again; it never exceeds what the payment has left after other refunds.

use medcov_domain::{Rejection, TextEnum};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::invoice::Payer;
use super::ledger::Method;

/// What is refunded.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Kind {
    /// A payment of an invoice for care, in a hospital's books.
    Care,
    /// A premium payment, in an insurer's books.
    Premium,
}

impl TextEnum for Kind {}

impl Kind {
    /// What a refund of this kind is called in answers ("no such …").
    pub fn refund_noun(self) -> &'static str {
        match self {
            Kind::Care => "refund",
            Kind::Premium => "premium refund",
        }
    }

    /// What the refunded payment is called.
    pub fn payment_noun(self) -> &'static str {
        match self {
            Kind::Care => "payment",
            Kind::Premium => "premium payment",
        }
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
pub enum RefundStatus {
    Requested,
    Completed,
    Rejected,
}

impl TextEnum for RefundStatus {}

/// A refund of (part of) a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub id: Uuid,
    pub kind: Kind,
    /// The hospital (care) or the insurer (premium) whose books it is in.
    pub tenant_id: Uuid,
    /// The payment or premium payment refunded.
    pub payment_id: Uuid,
    /// What that payment settled: the invoice or the premium.
    pub owed_id: Uuid,
    pub amount: i64,
    /// Taken from the payment's credit (the overpaid part).
    pub from_credit: i64,
    /// Taken from what the payment settled (owed again).
    pub from_applied: i64,
    pub reason: String,
    pub status: RefundStatus,
    pub requested_by: Uuid,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    pub created_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
}

/// A payment as a refund sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refundable {
    pub kind: Kind,
    pub tenant_id: Uuid,
    pub payment_id: Uuid,
    /// The invoice or premium it settled.
    pub owed_id: Uuid,
    /// Who paid (a premium is paid by its holder, as a patient pays).
    pub payer: Payer,
    pub method: Method,
    pub applied: i64,
    pub credit: i64,
}

/// What other refunds (asked or completed) already took of a payment: (from credit, from
/// applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    pub from_credit: i64,
    pub from_applied: i64,
}

/// How a refund of `amount` splits between a payment's credit (first) and what it applied:
/// (from credit, from applied). `None` when more is asked than is left.
pub fn split(applied_left: i64, credit_left: i64, amount: i64) -> Option<(i64, i64)> {
    if amount <= 0 || amount > applied_left + credit_left {
        return None;
    }
    let from_credit = amount.min(credit_left);
    Some((from_credit, amount - from_credit))
}

/// Who asks for a refund, and why.
#[derive(Debug, Clone)]
pub struct Asked {
    pub id: Uuid,
    pub amount: i64,
    pub reason: String,
    pub by: Uuid,
    pub at: OffsetDateTime,
}

impl Refund {
    /// A refund of `asked.amount` of `payment`, of which other refunds took `taken`: credit
    /// first, never more than is left.
    pub fn request(payment: &Refundable, taken: Taken, asked: Asked) -> Result<Refund, Rejection> {
        let applied_left = payment.applied - taken.from_applied;
        let credit_left = payment.credit - taken.from_credit;
        let Some((from_credit, from_applied)) = split(applied_left, credit_left, asked.amount) else {
            return Err(Rejection::field(
                "amount",
                format!("must be 1 to {} (what the payment has left after other refunds)", applied_left + credit_left),
            ));
        };
        Ok(Refund {
            id: asked.id,
            kind: payment.kind,
            tenant_id: payment.tenant_id,
            payment_id: payment.payment_id,
            owed_id: payment.owed_id,
            amount: asked.amount,
            from_credit,
            from_applied,
            reason: asked.reason,
            status: RefundStatus::Requested,
            requested_by: asked.by,
            decided_by: None,
            decision_note: None,
            created_at: asked.at,
            decided_at: None,
        })
    }

    /// The status `by` gives a requested refund by approving it (`completed`) or not
    /// (`rejected`). A refund is decided once, and never by the person who asked for it.
    pub fn decide(&self, by: Uuid, approve: bool) -> Result<RefundStatus, Rejection> {
        if self.status != RefundStatus::Requested {
            return Err(Rejection::conflict(format!("the refund is already {}", self.status.as_str())));
        }
        if self.requested_by == by {
            return Err(Rejection::conflict("a refund is approved by someone other than who asked for it"));
        }
        Ok(if approve { RefundStatus::Completed } else { RefundStatus::Rejected })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn card_payment(kind: Kind) -> Refundable {
        // 4 000.00 paid on 2 500.00 owed: 1 500.00 credit.
        Refundable {
            kind,
            tenant_id: Uuid::from_u128(1),
            payment_id: Uuid::from_u128(2),
            owed_id: Uuid::from_u128(3),
            payer: Payer::Patient,
            method: Method::Card,
            applied: 250_000,
            credit: 150_000,
        }
    }

    fn asked(amount: i64, by: u128) -> Asked {
        Asked {
            id: Uuid::from_u128(9),
            amount,
            reason: "overpaid".into(),
            by: Uuid::from_u128(by),
            at: datetime!(2026-11-26 09:00 UTC),
        }
    }

    #[test]
    fn refunds_by_hand() {
        // A 2 000.00 refund takes the credit first, then 500.00 of what was applied.
        assert_eq!(split(250_000, 150_000, 200_000), Some((150_000, 50_000)));
        assert_eq!(split(250_000, 150_000, 100_000), Some((100_000, 0)));
        assert_eq!(split(250_000, 0, 250_000), Some((0, 250_000)));
        assert_eq!(split(250_000, 150_000, 400_001), None);
        assert_eq!(split(250_000, 150_000, 0), None);
    }

    #[test]
    fn a_request_takes_what_is_left() {
        for kind in [Kind::Care, Kind::Premium] {
            let refund = Refund::request(&card_payment(kind), Taken::default(), asked(200_000, 7)).unwrap();
            assert_eq!(
                (refund.from_credit, refund.from_applied, refund.status),
                (150_000, 50_000, RefundStatus::Requested)
            );
            assert_eq!(
                (refund.kind, refund.owed_id, refund.requested_by),
                (kind, Uuid::from_u128(3), Uuid::from_u128(7))
            );
            let taken = Taken { from_credit: 150_000, from_applied: 50_000 };
            assert_eq!(
                Refund::request(&card_payment(kind), taken, asked(200_001, 7)),
                Err(Rejection::field("amount", "must be 1 to 200000 (what the payment has left after other refunds)"))
            );
            let second = Refund::request(&card_payment(kind), taken, asked(200_000, 7)).unwrap();
            assert_eq!((second.from_credit, second.from_applied), (0, 200_000));
        }
    }

    #[test]
    fn the_approver_is_not_the_requester() {
        let refund = Refund::request(&card_payment(Kind::Care), Taken::default(), asked(100, 7)).unwrap();
        let (asker, other) = (Uuid::from_u128(7), Uuid::from_u128(8));
        for (by, approve, expected) in [
            (other, true, Ok(RefundStatus::Completed)),
            (other, false, Ok(RefundStatus::Rejected)),
            (asker, true, Err(Rejection::conflict("a refund is approved by someone other than who asked for it"))),
            (asker, false, Err(Rejection::conflict("a refund is approved by someone other than who asked for it"))),
        ] {
            assert_eq!(refund.decide(by, approve), expected, "{by} approving: {approve}");
        }
        for status in [RefundStatus::Completed, RefundStatus::Rejected] {
            let decided = Refund { status, ..refund.clone() };
            assert_eq!(
                decided.decide(other, true),
                Err(Rejection::conflict(format!("the refund is already {}", status.as_str())))
            );
        }
    }

    #[test]
    fn kinds_are_words() {
        assert_eq!((Kind::Care.as_str(), Kind::Premium.as_str()), ("care", "premium"));
        assert_eq!(Kind::parse("premium"), Some(Kind::Premium));
        assert_eq!(RefundStatus::parse("completed"), Some(RefundStatus::Completed));
        assert_eq!(RefundStatus::parse("approved"), None);
        assert_eq!((Kind::Premium.refund_noun(), Kind::Premium.payment_noun()), ("premium refund", "premium payment"));
    }

    proptest! {
        #[test]
        fn refunds_never_exceed_the_payment(applied in 0i64..1_000_000, credit in 0i64..1_000_000, amount in -10i64..3_000_000) {
            if let Some((c, a)) = split(applied, credit, amount) {
                prop_assert_eq!(c + a, amount);
                prop_assert!(c <= credit && a <= applied && c >= 0 && a >= 0);
            } else {
                prop_assert!(amount <= 0 || amount > applied + credit);
            }
        }
    }
}

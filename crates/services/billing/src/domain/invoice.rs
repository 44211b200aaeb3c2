//! Invoices: statuses, lines split between insurer and patient, payments applied.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Issued,
    PartiallyPaid,
    Paid,
    Void,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Issued => "issued",
            Status::PartiallyPaid => "partially_paid",
            Status::Paid => "paid",
            Status::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Draft, Status::Issued, Status::PartiallyPaid, Status::Paid, Status::Void]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Who pays a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Payer {
    Patient,
    Insurer,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    pub description: String,
    pub quantity: u32,
    /// Minor units, from the price list valid on the date of service.
    pub unit_price: i64,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    /// The service had no price on the date of service; the invoice cannot be issued.
    #[serde(default)]
    pub unpriced: bool,
}

impl Line {
    pub fn priced(
        service_code: &str,
        category: &str,
        description: &str,
        quantity: u32,
        unit_price: Option<i64>,
    ) -> Line {
        let total = unit_price.unwrap_or(0).saturating_mul(i64::from(quantity));
        Line {
            service_code: service_code.to_owned(),
            category: category.to_owned(),
            description: description.to_owned(),
            quantity,
            unit_price: unit_price.unwrap_or(0),
            total,
            insurer_share: 0,
            patient_share: total,
            unpriced: unit_price.is_none(),
        }
    }
}

/// What the insurer said about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjudicated {
    pub insurer_pays: i64,
}

/// Splits each line by the insurer's answer for it: the insurer's share is what it pays (never
/// more than the line), the patient's the rest, so the shares add up to the line to the cent.
/// Lines the claim does not answer stay with the patient.
pub fn split(lines: &mut [Line], adjudicated: &[Adjudicated]) {
    for (i, line) in lines.iter_mut().enumerate() {
        let insurer = adjudicated.get(i).map(|a| a.insurer_pays.clamp(0, line.total)).unwrap_or(0);
        line.insurer_share = insurer;
        line.patient_share = line.total - insurer;
    }
}

/// Totals of (all, insurer, patient).
pub fn totals(lines: &[Line]) -> (i64, i64, i64) {
    lines.iter().fold((0, 0, 0), |(t, i, p), l| (t + l.total, i + l.insurer_share, p + l.patient_share))
}

/// A payment of `amount` against `outstanding`: (applied to the invoice, left as credit).
pub fn apply(outstanding: i64, amount: i64) -> (i64, i64) {
    let applied = amount.min(outstanding.max(0));
    (applied, amount - applied)
}

/// How a refund of `amount` splits between a payment's credit (first) and what it applied to
/// the invoice: (from credit, from applied). `None` when more is asked than is left.
pub fn refund_split(applied_left: i64, credit_left: i64, amount: i64) -> Option<(i64, i64)> {
    if amount <= 0 || amount > applied_left + credit_left {
        return None;
    }
    let from_credit = amount.min(credit_left);
    Some((from_credit, amount - from_credit))
}

/// The status of an issued invoice from what was paid of each share.
pub fn status(patient_share: i64, insurer_share: i64, paid_patient: i64, paid_insurer: i64) -> Status {
    let paid = paid_patient + paid_insurer;
    if paid >= patient_share + insurer_share {
        Status::Paid
    } else if paid > 0 {
        Status::PartiallyPaid
    } else {
        Status::Issued
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lines() -> Vec<Line> {
        vec![
            Line::priced("CONS", "consultation", "Consultation", 1, Some(300_000)),
            Line::priced("LAB", "laboratory", "Full blood count", 2, Some(125_000)),
            Line::priced("XR", "imaging", "X-ray", 1, None),
        ]
    }

    #[test]
    fn pricing_and_splits_by_hand() {
        let mut lines = lines();
        assert_eq!(lines[1].total, 250_000);
        assert!(lines[2].unpriced);
        assert_eq!(totals(&lines), (550_000, 0, 550_000));
        // The insurer pays 1 500.00 of the consultation and 2 000.00 of the tests.
        split(&mut lines, &[Adjudicated { insurer_pays: 150_000 }, Adjudicated { insurer_pays: 200_000 }]);
        assert_eq!((lines[0].insurer_share, lines[0].patient_share), (150_000, 150_000));
        assert_eq!((lines[1].insurer_share, lines[1].patient_share), (200_000, 50_000));
        assert_eq!((lines[2].insurer_share, lines[2].patient_share), (0, 0));
        assert_eq!(totals(&lines), (550_000, 350_000, 200_000));
        // An insurer answer above the line is capped at the line.
        split(&mut lines, &[Adjudicated { insurer_pays: 900_000 }]);
        assert_eq!((lines[0].insurer_share, lines[0].patient_share), (300_000, 0));
    }

    #[test]
    fn payments_by_hand() {
        assert_eq!(apply(10_000, 4_000), (4_000, 0)); // partial
        assert_eq!(apply(10_000, 10_000), (10_000, 0)); // exact
        assert_eq!(apply(10_000, 12_500), (10_000, 2_500)); // overpayment becomes credit
        assert_eq!(apply(0, 500), (0, 500));
        assert_eq!(status(2_000, 8_000, 0, 0), Status::Issued);
        assert_eq!(status(2_000, 8_000, 2_000, 0), Status::PartiallyPaid);
        assert_eq!(status(2_000, 8_000, 2_000, 8_000), Status::Paid);
    }

    #[test]
    fn refunds_by_hand() {
        // 4 000.00 paid on 2 500.00 owed (1 500.00 credit): a 2 000.00 refund takes the credit
        // first, then 500.00 of what was applied.
        assert_eq!(refund_split(250_000, 150_000, 200_000), Some((150_000, 50_000)));
        assert_eq!(refund_split(250_000, 150_000, 100_000), Some((100_000, 0)));
        assert_eq!(refund_split(250_000, 0, 250_000), Some((0, 250_000)));
        assert_eq!(refund_split(250_000, 150_000, 400_001), None);
        assert_eq!(refund_split(250_000, 150_000, 0), None);
    }

    proptest! {
        #[test]
        fn refunds_never_exceed_the_payment(applied in 0i64..1_000_000, credit in 0i64..1_000_000, amount in -10i64..3_000_000) {
            if let Some((c, a)) = refund_split(applied, credit, amount) {
                prop_assert_eq!(c + a, amount);
                prop_assert!(c <= credit && a <= applied && c >= 0 && a >= 0);
            } else {
                prop_assert!(amount <= 0 || amount > applied + credit);
            }
        }

        #[test]
        fn shares_always_add_up(totals_in in prop::collection::vec((1u32..5, 0i64..10_000_000), 1..10),
                                 pays in prop::collection::vec(-1_000i64..20_000_000, 0..10)) {
            let mut lines: Vec<Line> = totals_in.iter().map(|(q, p)| Line::priced("S", "c", "d", *q, Some(*p))).collect();
            let adjudicated: Vec<Adjudicated> = pays.iter().map(|p| Adjudicated { insurer_pays: *p }).collect();
            split(&mut lines, &adjudicated);
            for line in &lines {
                prop_assert_eq!(line.insurer_share + line.patient_share, line.total);
                prop_assert!(line.insurer_share >= 0 && line.patient_share >= 0);
            }
            let (t, i, p) = totals(&lines);
            prop_assert_eq!(i + p, t);
        }

        #[test]
        fn payments_never_vanish(outstanding in 0i64..1_000_000_000, amount in 0i64..1_000_000_000) {
            let (applied, credit) = apply(outstanding, amount);
            prop_assert_eq!(applied + credit, amount);
            prop_assert!(applied <= outstanding && applied >= 0 && credit >= 0);
        }
    }
}

//! Reports and statements, computed from what the store reads: cash by day and method,
//! receivables by age, and a payer's statement of their invoices.

use std::collections::BTreeMap;

use medcov_domain::TextEnum;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::invoice::{Invoice, Payer, Status};
use super::ledger::Method;

/// Money received and refunded on one day (UTC) by one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashDay {
    pub date: Date,
    pub method: Method,
    pub received: i64,
    pub refunded: i64,
    pub net: i64,
}

/// One movement of money: when, how, and how much came in (a payment) or went out (a refund).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub at: OffsetDateTime,
    pub method: Method,
    pub received: i64,
    pub refunded: i64,
}

/// Movements summed per day and method, by day, then by the method's word.
pub fn daily_cash(movements: &[Movement]) -> Vec<CashDay> {
    let mut sums: BTreeMap<(Date, &'static str), (Method, i64, i64)> = BTreeMap::new();
    for m in movements {
        let entry = sums.entry((m.at.date(), m.method.as_str())).or_insert((m.method, 0, 0));
        entry.1 += m.received;
        entry.2 += m.refunded;
    }
    sums.into_iter()
        .map(|((date, _), (method, received, refunded))| CashDay {
            date,
            method,
            received,
            refunded,
            net: received - refunded,
        })
        .collect()
}

/// What one payer (a patient, or an insurer) owes, by how long ago the invoices were issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aged {
    pub payer: Payer,
    /// The patient or the insurer.
    pub party_id: Option<Uuid>,
    /// Issued 0 to 30 days before the report date.
    pub current: i64,
    pub days_31_60: i64,
    pub days_61_90: i64,
    pub over_90: i64,
    pub total: i64,
}

/// What is still owed on one issued invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owed {
    pub patient_id: Uuid,
    pub insurer_id: Option<Uuid>,
    pub issued_at: OffsetDateTime,
    pub patient_due: i64,
    pub insurer_due: i64,
}

/// What each payer owes as of `as_of`, in buckets of 0–30, 31–60, 61–90 and over 90 days since
/// issue; by payer (`insurer` before `patient`), then party.
pub fn aged_receivables(owed: &[Owed], as_of: Date) -> Vec<Aged> {
    // By the payer's word, so insurers come before patients; then the party.
    type Party = (&'static str, Option<Uuid>);
    let mut by_party: BTreeMap<Party, (Payer, [i64; 4])> = BTreeMap::new();
    for o in owed {
        let bucket = match (as_of - o.issued_at.date()).whole_days() {
            ..=30 => 0,
            31..=60 => 1,
            61..=90 => 2,
            _ => 3,
        };
        for (payer, party, due) in
            [(Payer::Patient, Some(o.patient_id), o.patient_due), (Payer::Insurer, o.insurer_id, o.insurer_due)]
        {
            if due > 0 {
                by_party.entry((payer.as_str(), party)).or_insert((payer, [0; 4])).1[bucket] += due;
            }
        }
    }
    by_party
        .into_iter()
        .map(|((_, party_id), (payer, b))| Aged {
            payer,
            party_id,
            current: b[0],
            days_31_60: b[1],
            days_61_90: b[2],
            over_90: b[3],
            total: b.iter().sum(),
        })
        .collect()
}

/// Commissions of one agent in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCommissions {
    pub agent_id: Uuid,
    pub commissions: i64,
    pub earned: i64,
    pub clawed_back: i64,
}

/// One invoice on a payer's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub invoice_id: Uuid,
    pub number: String,
    pub date_of_service: Date,
    pub currency: String,
    pub status: Status,
    pub total: i64,
    /// This payer's share of it.
    pub share: i64,
    pub paid: i64,
    pub outstanding: i64,
}

/// What a payer was billed, paid and owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The patient or the insurer.
    pub party_id: Uuid,
    pub billed: i64,
    pub paid: i64,
    pub outstanding: i64,
    /// Issued invoices with a share for this payer, newest first (drafts and void ones are
    /// left out).
    pub invoices: Vec<StatementLine>,
}

/// `party`'s statement, as `payer`, of `invoices` (newest first).
pub fn statement(party: Uuid, payer: Payer, invoices: Vec<Invoice>) -> Statement {
    let lines: Vec<StatementLine> = invoices
        .into_iter()
        .filter(|i| matches!(i.status, Status::Issued | Status::PartiallyPaid | Status::Paid))
        .map(|i| {
            let (share, paid) = match payer {
                Payer::Insurer => (i.insurer_share, i.paid_insurer),
                Payer::Patient => (i.patient_share, i.paid_patient),
            };
            StatementLine {
                invoice_id: i.id,
                number: i.number,
                date_of_service: i.date_of_service,
                currency: i.currency,
                status: i.status,
                total: i.total,
                share,
                paid,
                outstanding: share - paid,
            }
        })
        .filter(|l| l.share > 0)
        .collect();
    Statement {
        party_id: party,
        billed: lines.iter().map(|l| l.share).sum(),
        paid: lines.iter().map(|l| l.paid).sum(),
        outstanding: lines.iter().map(|l| l.outstanding).sum(),
        invoices: lines,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::invoice::{Draft, Line};

    #[test]
    fn cash_by_day_and_method() {
        let at = datetime!(2026-11-26 09:00 UTC);
        let next = datetime!(2026-11-27 00:00 UTC);
        let movements = [
            Movement { at, method: Method::MobileMoney, received: 100_000, refunded: 0 },
            Movement { at, method: Method::Cash, received: 200_000, refunded: 0 },
            Movement { at, method: Method::Card, received: 400_000, refunded: 0 },
            Movement { at, method: Method::Card, received: 0, refunded: 200_000 },
            Movement { at: next, method: Method::Cash, received: 5, refunded: 0 },
        ];
        let days = daily_cash(&movements);
        let rows: Vec<(Date, Method, i64)> = days.iter().map(|d| (d.date, d.method, d.net)).collect();
        assert_eq!(
            rows,
            [
                (date!(2026 - 11 - 26), Method::Card, 200_000),
                (date!(2026 - 11 - 26), Method::Cash, 200_000),
                (date!(2026 - 11 - 26), Method::MobileMoney, 100_000),
                (date!(2026 - 11 - 27), Method::Cash, 5),
            ]
        );
        assert_eq!((days[0].received, days[0].refunded), (400_000, 200_000));
    }

    #[test]
    fn receivables_by_age() {
        let (patient, insurer) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let owed = |days_ago: i64, patient_due, insurer_due| Owed {
            patient_id: patient,
            insurer_id: Some(insurer),
            issued_at: datetime!(2026-11-26 23:00 UTC) - time::Duration::days(days_ago),
            patient_due,
            insurer_due,
        };
        let aged = aged_receivables(
            &[owed(0, 50_000, 0), owed(30, 1, 0), owed(31, 2, 0), owed(61, 0, 450_000), owed(91, 3, 0)],
            date!(2026 - 11 - 26),
        );
        assert_eq!(
            aged,
            [
                Aged {
                    payer: Payer::Insurer,
                    party_id: Some(insurer),
                    current: 0,
                    days_31_60: 0,
                    days_61_90: 450_000,
                    over_90: 0,
                    total: 450_000
                },
                Aged {
                    payer: Payer::Patient,
                    party_id: Some(patient),
                    current: 50_001,
                    days_31_60: 2,
                    days_61_90: 0,
                    over_90: 3,
                    total: 50_006
                },
            ]
        );
    }

    #[test]
    fn a_statement_shows_a_payers_shares_of_issued_invoices() {
        let invoice = |status, patient_share, insurer_share, paid_patient| {
            let lines =
                vec![Line::priced("CONS", "consultation", "Consultation", 1, Some(patient_share + insurer_share))];
            let draft = Draft {
                id: Uuid::now_v7(),
                hospital_id: Uuid::from_u128(1),
                patient_id: Uuid::from_u128(2),
                encounter_id: None,
                member_number: None,
                currency: "KES".into(),
                date_of_service: date!(2026 - 11 - 20),
                lines,
            };
            let drafted = Invoice::draft(draft, datetime!(2026-11-20 10:00 UTC));
            Invoice { status, patient_share, insurer_share, paid_patient, ..drafted }
        };
        let invoices = vec![
            invoice(Status::Paid, 100_000, 450_000, 100_000),
            invoice(Status::PartiallyPaid, 50_000, 0, 20_000),
            invoice(Status::Draft, 70_000, 0, 0),
            invoice(Status::Void, 70_000, 0, 0),
            invoice(Status::Issued, 0, 300_000, 0),
        ];
        let patient = statement(Uuid::from_u128(2), Payer::Patient, invoices.clone());
        assert_eq!((patient.billed, patient.paid, patient.outstanding), (150_000, 120_000, 30_000));
        assert_eq!(patient.invoices.len(), 2, "no drafts, no void ones, no invoice without a patient share");
        let insurer = statement(Uuid::from_u128(3), Payer::Insurer, invoices);
        assert_eq!((insurer.billed, insurer.paid, insurer.outstanding), (750_000, 0, 750_000));
    }
}

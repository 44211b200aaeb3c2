//! Reports and statements, computed from what the store reads: cash by day and method,
//! receivables by age, and a payer's statement of their invoices.
//!
//! Every sum is per currency: two currencies are never added. A day is the local day of the
//! tenant whose books the money is in (`medcov_domain::calendar`).

use std::collections::BTreeMap;

use medcov_domain::TextEnum;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::commission::CommissionStatus;
use super::invoice::{Invoice, LineAdjustment, Payer, Status};
use super::ledger::Method;

/// Money received, refunded and paid out (commissions) on one local day by one method, in
/// one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashDay {
    pub currency: String,
    pub date: Date,
    pub method: Method,
    pub received: i64,
    pub refunded: i64,
    /// Commissions paid out to agents.
    pub paid_out: i64,
    /// received - refunded - paid out: what the day moved in or out of the account.
    pub net: i64,
}

/// Whose books: a hospital's (care) or an insurer's (premiums, commissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Books {
    Hospital,
    Insurer,
}

/// One movement of money: when, in whose books, in which currency, how, and how much came in
/// (a payment) or went out (a refund, a commission payout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub at: OffsetDateTime,
    /// The hospital or the insurer whose books it is in: its time zone says which day it is.
    pub tenant_id: Uuid,
    pub books: Books,
    pub currency: String,
    pub method: Method,
    pub received: i64,
    pub refunded: i64,
    pub paid_out: i64,
}

/// Movements summed per currency, local day (the tenant's zone in `zones`, UTC when absent)
/// and method, for the days `[from, to]`; by currency, day, then the method's word.
pub fn daily_cash(movements: &[Movement], zones: &BTreeMap<Uuid, String>, (from, to): (Date, Date)) -> Vec<CashDay> {
    // (currency, day, method's word) → (method, received, refunded, paid out)
    type Key<'a> = (&'a str, Date, &'static str);
    let mut sums: BTreeMap<Key<'_>, (Method, i64, i64, i64)> = BTreeMap::new();
    for m in movements {
        let zone = zones.get(&m.tenant_id).map(String::as_str).unwrap_or("UTC");
        let date = medcov_domain::calendar::local_date_in(m.at, zone);
        if date < from || date > to {
            continue;
        }
        let entry = sums.entry((m.currency.as_str(), date, m.method.as_str())).or_insert((m.method, 0, 0, 0));
        entry.1 += m.received;
        entry.2 += m.refunded;
        entry.3 += m.paid_out;
    }
    sums.into_iter()
        .map(|((currency, date, _), (method, received, refunded, paid_out))| CashDay {
            currency: currency.to_owned(),
            date,
            method,
            received,
            refunded,
            paid_out,
            net: received - refunded - paid_out,
        })
        .collect()
}

/// What one payer (a patient, or an insurer) owes, by how long ago the invoices were issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aged {
    pub currency: String,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    /// The hospital whose books it is in: its time zone says which day it was issued on.
    pub hospital_id: Uuid,
    pub currency: String,
    pub patient_id: Uuid,
    pub insurer_id: Option<Uuid>,
    pub issued_at: OffsetDateTime,
    pub patient_due: i64,
    pub insurer_due: i64,
}

/// What each payer owes as of `as_of` (each hospital's today at `now` when not given), in
/// buckets of 0–30, 31–60, 61–90 and over 90 days since issue, both days the hospital's local
/// dates (its zone in `zones`, UTC when absent); per currency, by payer (`insurer` before
/// `patient`), then party.
pub fn aged_receivables(
    owed: &[Owed],
    zones: &BTreeMap<Uuid, String>,
    as_of: Option<Date>,
    now: OffsetDateTime,
) -> Vec<Aged> {
    // By currency, then the payer's word, so insurers come before patients; then the party.
    type Party<'a> = (&'a str, &'static str, Option<Uuid>);
    let mut by_party: BTreeMap<Party<'_>, (Payer, [i64; 4])> = BTreeMap::new();
    for o in owed {
        let zone = zones.get(&o.hospital_id).map(String::as_str).unwrap_or("UTC");
        let as_of = as_of.unwrap_or_else(|| medcov_domain::calendar::local_date_in(now, zone));
        let issued_on = medcov_domain::calendar::local_date_in(o.issued_at, zone);
        let bucket = match (as_of - issued_on).whole_days() {
            ..=30 => 0,
            31..=60 => 1,
            61..=90 => 2,
            _ => 3,
        };
        for (payer, party, due) in
            [(Payer::Patient, Some(o.patient_id), o.patient_due), (Payer::Insurer, o.insurer_id, o.insurer_due)]
        {
            if due > 0 {
                by_party.entry((o.currency.as_str(), payer.as_str(), party)).or_insert((payer, [0; 4])).1[bucket] +=
                    due;
            }
        }
    }
    by_party
        .into_iter()
        .map(|((currency, _, party_id), (payer, b))| Aged {
            currency: currency.to_owned(),
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

/// Commissions of one agent in a period, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommissions {
    pub agent_id: Uuid,
    pub currency: String,
    pub commissions: i64,
    pub earned: i64,
    pub clawed_back: i64,
}

/// One commission as the commissions report reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earned {
    pub agent_id: Uuid,
    /// The insurer whose books it is in: its time zone says which day it was earned on.
    pub insurer_id: Uuid,
    pub currency: String,
    pub status: CommissionStatus,
    pub amount: i64,
    pub earned_at: OffsetDateTime,
}

/// Commissions earned on the insurer's local days `[from, to]` (its zone in `zones`, UTC when
/// absent), per agent and currency: how many, what is still earned and what was clawed back;
/// by agent, then currency.
pub fn commissions_by_agent(
    commissions: &[Earned],
    zones: &BTreeMap<Uuid, String>,
    (from, to): (Date, Date),
) -> Vec<AgentCommissions> {
    let mut sums: BTreeMap<(Uuid, &str), (i64, i64, i64)> = BTreeMap::new();
    for c in commissions {
        let zone = zones.get(&c.insurer_id).map(String::as_str).unwrap_or("UTC");
        let day = medcov_domain::calendar::local_date_in(c.earned_at, zone);
        if day < from || day > to {
            continue;
        }
        let sum = sums.entry((c.agent_id, c.currency.as_str())).or_default();
        sum.0 += 1;
        match c.status {
            CommissionStatus::Earned => sum.1 += c.amount,
            CommissionStatus::ClawedBack => sum.2 += c.amount,
        }
    }
    sums.into_iter()
        .map(|((agent_id, currency), (commissions, earned, clawed_back))| AgentCommissions {
            agent_id,
            currency: currency.to_owned(),
            commissions,
            earned,
            clawed_back,
        })
        .collect()
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
    /// On an insurer's statement: of its share, what it pays ex gratia, beyond the plan's
    /// limits (never covered benefit); 0 on a patient's.
    pub ex_gratia: i64,
    pub paid: i64,
    pub outstanding: i64,
    /// On a patient's statement: why they pay their share, the insurer's adjustments of the
    /// invoice's lines summed by code.
    pub adjustments: Vec<LineAdjustment>,
}

/// What a payer was billed, paid and owes in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub currency: String,
    pub billed: i64,
    /// Of `billed`, what an insurer pays ex gratia (`billed - ex_gratia` is covered benefit).
    pub ex_gratia: i64,
    pub paid: i64,
    pub outstanding: i64,
}

/// What a payer was billed, paid and owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The patient or the insurer.
    pub party_id: Uuid,
    /// Per currency, by currency code: amounts in two currencies are never added.
    pub totals: Vec<Totals>,
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
            let (share, ex_gratia, paid) = match payer {
                Payer::Insurer => (i.insurer_share, i.ex_gratia, i.paid_insurer),
                Payer::Patient => (i.patient_share, 0, i.paid_patient),
            };
            let mut adjustments: Vec<LineAdjustment> = Vec::new();
            if payer == Payer::Patient {
                for a in i.lines.iter().flat_map(|l| &l.adjustments) {
                    match adjustments.iter_mut().find(|s| s.code == a.code) {
                        Some(sum) => sum.amount += a.amount,
                        None => adjustments.push(a.clone()),
                    }
                }
            }
            StatementLine {
                invoice_id: i.id,
                number: i.number,
                date_of_service: i.date_of_service,
                currency: i.currency,
                status: i.status,
                total: i.total,
                share,
                ex_gratia,
                paid,
                outstanding: share - paid,
                adjustments,
            }
        })
        // A share this payer paid on stays on the statement even when an adjudication since
        // took the share away (what they overpaid shows as a negative outstanding).
        .filter(|l| l.share > 0 || l.paid > 0)
        .collect();
    let mut totals: BTreeMap<&str, Totals> = BTreeMap::new();
    for l in &lines {
        let t = totals.entry(l.currency.as_str()).or_insert_with(|| Totals {
            currency: l.currency.clone(),
            billed: 0,
            ex_gratia: 0,
            paid: 0,
            outstanding: 0,
        });
        t.billed += l.share;
        t.ex_gratia += l.ex_gratia;
        t.paid += l.paid;
        t.outstanding += l.outstanding;
    }
    let totals = totals.into_values().collect();
    Statement { party_id: party, totals, invoices: lines }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::invoice::{Draft, Line};
    use crate::domain::ledger::{self, Account, Entry};

    fn moved(at: OffsetDateTime, method: Method, received: i64, refunded: i64) -> Movement {
        Movement {
            at,
            tenant_id: Uuid::from_u128(7),
            books: Books::Hospital,
            currency: "KES".into(),
            method,
            received,
            refunded,
            paid_out: 0,
        }
    }

    #[test]
    fn cash_by_day_and_method() {
        let at = datetime!(2026-11-26 09:00 UTC);
        let next = datetime!(2026-11-27 00:00 UTC);
        let movements = [
            moved(at, Method::MobileMoney, 100_000, 0),
            moved(at, Method::Cash, 200_000, 0),
            moved(at, Method::Card, 400_000, 0),
            moved(at, Method::Card, 0, 200_000),
            moved(next, Method::Cash, 5, 0),
        ];
        let days = daily_cash(&movements, &BTreeMap::new(), (date!(2026 - 11 - 01), date!(2026 - 11 - 30)));
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
    fn cash_is_counted_on_the_tenants_local_day_and_per_currency() {
        let (kiritimati, honolulu) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let zones: BTreeMap<Uuid, String> =
            [(kiritimati, "Pacific/Kiritimati".to_owned()), (honolulu, "Pacific/Honolulu".to_owned())].into();
        // 10:30 UTC on 30 November: 1 December 00:30 at Kiritimati, 30 November 00:30 at
        // Honolulu. A minute earlier, both are on the day before.
        let (after, before) = (datetime!(2026-11-30 10:30 UTC), datetime!(2026-11-30 09:59 UTC));
        let at = |tenant, at, currency: &str, received, paid_out| Movement {
            at,
            tenant_id: tenant,
            books: Books::Hospital,
            currency: currency.into(),
            method: Method::BankTransfer,
            received,
            refunded: 0,
            paid_out,
        };
        let movements = [
            at(kiritimati, after, "AUD", 10_000, 0),
            at(kiritimati, before, "AUD", 700, 0),
            at(honolulu, after, "USD", 30_000, 2_000),
            at(honolulu, before, "USD", 900, 0),
            at(honolulu, after, "KES", 5_000_000, 0),
        ];
        let days = daily_cash(&movements, &zones, (date!(2026 - 11 - 29), date!(2026 - 12 - 01)));
        let rows: Vec<(&str, Date, i64, i64, i64)> =
            days.iter().map(|d| (d.currency.as_str(), d.date, d.received, d.paid_out, d.net)).collect();
        assert_eq!(
            rows,
            [
                ("AUD", date!(2026 - 11 - 30), 700, 0, 700),
                ("AUD", date!(2026 - 12 - 01), 10_000, 0, 10_000),
                ("KES", date!(2026 - 11 - 30), 5_000_000, 0, 5_000_000),
                ("USD", date!(2026 - 11 - 29), 900, 0, 900),
                ("USD", date!(2026 - 11 - 30), 30_000, 2_000, 28_000),
            ]
        );
        // Only the days asked for.
        let one = daily_cash(&movements, &zones, (date!(2026 - 12 - 01), date!(2026 - 12 - 01)));
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn receivables_by_age() {
        let (patient, insurer) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let owed = |days_ago: i64, patient_due, insurer_due| Owed {
            hospital_id: Uuid::from_u128(7),
            currency: "KES".into(),
            patient_id: patient,
            insurer_id: Some(insurer),
            issued_at: datetime!(2026-11-26 23:00 UTC) - time::Duration::days(days_ago),
            patient_due,
            insurer_due,
        };
        let aged = aged_receivables(
            &[owed(0, 50_000, 0), owed(30, 1, 0), owed(31, 2, 0), owed(61, 0, 450_000), owed(91, 3, 0)],
            &BTreeMap::new(),
            Some(date!(2026 - 11 - 26)),
            datetime!(2026-11-26 23:00 UTC),
        );
        assert_eq!(
            aged,
            [
                Aged {
                    currency: "KES".into(),
                    payer: Payer::Insurer,
                    party_id: Some(insurer),
                    current: 0,
                    days_31_60: 0,
                    days_61_90: 450_000,
                    over_90: 0,
                    total: 450_000
                },
                Aged {
                    currency: "KES".into(),
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

    /// Age is counted in the hospital's days: an invoice issued just after local midnight at
    /// UTC+14 (Kiritimati) and one just before it at UTC−10 (Honolulu), 30 and 31 local days
    /// before the hospital's today.
    #[test]
    fn receivables_age_by_the_hospitals_local_days() {
        let (kiritimati, honolulu) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let zones: BTreeMap<Uuid, String> =
            [(kiritimati, "Pacific/Kiritimati".to_owned()), (honolulu, "Pacific/Honolulu".to_owned())].into();
        let owed = |hospital, issued_at, due| Owed {
            hospital_id: hospital,
            currency: "KES".into(),
            patient_id: hospital,
            insurer_id: None,
            issued_at,
            patient_due: due,
            insurer_due: 0,
        };
        // Now: 2026-12-31 10:30 UTC = 2027-01-01 00:30 at Kiritimati, 2026-12-31 00:30 at
        // Honolulu. On UTC dates, the Honolulu invoice of 2026-12-01 09:59 UTC would be 30 days
        // old (current); on Honolulu's it was issued on 30 November, 31 days before.
        let now = datetime!(2026-12-31 10:30 UTC);
        let rows = [
            owed(kiritimati, datetime!(2026-11-30 10:00 UTC), 100),
            owed(kiritimati, datetime!(2026-12-02 09:59 UTC), 7),
            owed(honolulu, datetime!(2026-12-01 09:59 UTC), 20_000),
            owed(honolulu, datetime!(2026-12-01 10:00 UTC), 3),
        ];
        let aged = aged_receivables(&rows, &zones, None, now);
        let buckets: Vec<(Uuid, i64, i64)> =
            aged.iter().map(|a| (a.party_id.unwrap(), a.current, a.days_31_60)).collect();
        // Kiritimati: 100 issued its 1 December (31 days before its 1 January), 7 issued its
        // 2 December (30 days): 7 current, 100 at 31–60. Honolulu: 20 000 issued its 30
        // November (31 days before its 31 December), 3 its 1 December (30 days).
        assert_eq!(buckets, [(kiritimati, 7, 100), (honolulu, 3, 20_000)]);
        // Asked for a day, that day is every hospital's "as of".
        let aged = aged_receivables(&rows, &zones, Some(date!(2026 - 12 - 31)), now);
        let buckets: Vec<(Uuid, i64, i64)> =
            aged.iter().map(|a| (a.party_id.unwrap(), a.current, a.days_31_60)).collect();
        // Kiritimati: 1 December → 30 days, 2 December → 29: both current.
        assert_eq!(buckets, [(kiritimati, 107, 0), (honolulu, 3, 20_000)]);
    }

    #[test]
    fn a_statement_shows_a_payers_shares_of_issued_invoices() {
        let invoice_in = |currency: &str, status, patient_share, insurer_share, paid_patient| {
            let lines =
                vec![Line::priced("CONS", "consultation", "Consultation", 1, Some(patient_share + insurer_share))];
            let draft = Draft {
                id: Uuid::now_v7(),
                hospital_id: Uuid::from_u128(1),
                patient_id: Uuid::from_u128(2),
                encounter_id: None,
                member_number: None,
                currency: currency.into(),
                date_of_service: date!(2026 - 11 - 20),
                lines,
            };
            let drafted = Invoice::draft(draft, datetime!(2026-11-20 10:00 UTC));
            Invoice { status, patient_share, insurer_share, paid_patient, ..drafted }
        };
        let invoice = |status, patient_share, insurer_share, paid_patient| {
            invoice_in("KES", status, patient_share, insurer_share, paid_patient)
        };
        let invoices = vec![
            invoice(Status::Paid, 100_000, 450_000, 100_000),
            invoice(Status::PartiallyPaid, 50_000, 0, 20_000),
            invoice(Status::Draft, 70_000, 0, 0),
            invoice(Status::Void, 70_000, 0, 0),
            invoice(Status::Issued, 0, 300_000, 0),
        ];
        let totals = |s: &Statement| -> Vec<(String, i64, i64, i64)> {
            s.totals.iter().map(|t| (t.currency.clone(), t.billed, t.paid, t.outstanding)).collect()
        };
        let patient = statement(Uuid::from_u128(2), Payer::Patient, invoices.clone());
        assert_eq!(totals(&patient), [("KES".into(), 150_000, 120_000, 30_000)]);
        assert_eq!(patient.invoices.len(), 2, "no drafts, no void ones, no invoice without a patient share");
        let insurer = statement(Uuid::from_u128(3), Payer::Insurer, invoices.clone());
        assert_eq!(totals(&insurer), [("KES".into(), 750_000, 0, 750_000)]);
        // A USD invoice is totalled on its own, never added to the KES ones.
        let mut both = invoices;
        both.push(invoice_in("USD", Status::PartiallyPaid, 4_000, 0, 1_000));
        let patient = statement(Uuid::from_u128(2), Payer::Patient, both);
        assert_eq!(totals(&patient), [("KES".into(), 150_000, 120_000, 30_000), ("USD".into(), 4_000, 1_000, 3_000)]);
    }

    /// Commissions count on the insurer's local day: at UTC+14 one earned at 10:00 UTC on 30
    /// November is on 1 December, at UTC−10 one earned at 09:59 UTC on 1 December is on 30
    /// November.
    #[test]
    fn commissions_are_reported_on_the_insurers_local_days() {
        let (east, west, agent) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(9));
        let zones: BTreeMap<Uuid, String> =
            [(east, "Pacific/Kiritimati".to_owned()), (west, "Pacific/Honolulu".to_owned())].into();
        let earned = |insurer, currency: &str, status, amount, earned_at| Earned {
            agent_id: agent,
            insurer_id: insurer,
            currency: currency.into(),
            status,
            amount,
            earned_at,
        };
        let commissions = [
            // Kiritimati, AUD: its 1 December (in), its 30 November (out).
            earned(east, "AUD", CommissionStatus::Earned, 1_000, datetime!(2026-11-30 10:00 UTC)),
            earned(east, "AUD", CommissionStatus::ClawedBack, 200, datetime!(2026-12-01 09:59 UTC)),
            earned(east, "AUD", CommissionStatus::Earned, 50_000, datetime!(2026-11-30 09:59 UTC)),
            // Honolulu, USD: 2026-12-02 09:59 UTC is its 1 December (in); 2026-12-01 09:59 UTC
            // its 30 November (out), though 1 December in UTC.
            earned(west, "USD", CommissionStatus::Earned, 3_000, datetime!(2026-12-02 09:59 UTC)),
            earned(west, "USD", CommissionStatus::Earned, 70_000, datetime!(2026-12-01 09:59 UTC)),
        ];
        let report = commissions_by_agent(&commissions, &zones, (date!(2026 - 12 - 01), date!(2026 - 12 - 01)));
        let rows: Vec<(&str, i64, i64, i64)> =
            report.iter().map(|r| (r.currency.as_str(), r.commissions, r.earned, r.clawed_back)).collect();
        // AUD: 2 commissions, 10.00 earned, 2.00 clawed back; USD: 1, 30.00. Never added.
        assert_eq!(rows, [("AUD", 2, 1_000, 200), ("USD", 1, 3_000, 0)]);
    }

    use proptest::prelude::*;

    use crate::domain::commission::CommissionStatus as Cs;
    use crate::domain::invoice::Adjudicated;
    use crate::domain::ledger::{Derived, reconcile};
    use crate::domain::premium::{NewPremium, Premium};

    /// One step of a day's activity: care at a KES hospital, premiums and commissions at a USD
    /// insurer.
    #[derive(Debug, Clone)]
    enum Step {
        /// An invoice of `total` issued after its claim: the insurer pays `insurer` per mille of
        /// it, of which `gratia` per mille ex gratia.
        Issued(i64, u16, u16),
        /// The last issued invoice (paid or not) adjudicated again (per mille, as above).
        Readjudicated(u16, u16),
        /// The last invoice without payments voided.
        Voided,
        /// A payment of `amount` by the patient (true) or the insurer, on the oldest invoice
        /// the payer still owes on (or the last one: all of it is credit), by method.
        Paid(i64, bool, usize),
        /// A refund of part of the last payment.
        Refunded(i64),
        /// A premium invoiced, and paid by method when `Some`.
        Premium(i64, Option<usize>),
        /// The last unpaid premium's policy cancelled: the premium is voided.
        Cancelled,
        /// A commission earned, then kept (0), paid out (1) or clawed back (2).
        Commission(i64, u8, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1i64..900_000, 0u16..=1000, 0u16..=1000).prop_map(|(t, i, g)| Step::Issued(t, i, g)),
            (0u16..=1000, 0u16..=1000).prop_map(|(i, g)| Step::Readjudicated(i, g)),
            Just(Step::Voided),
            (1i64..400_000, any::<bool>(), 0usize..4).prop_map(|(a, p, m)| Step::Paid(a, p, m)),
            (1i64..100_000).prop_map(Step::Refunded),
            (1i64..900_000, prop::option::of(0usize..4)).prop_map(|(a, m)| Step::Premium(a, m)),
            Just(Step::Cancelled),
            (1i64..90_000, 0u8..3, 0usize..4).prop_map(|(a, o, m)| Step::Commission(a, o, m)),
        ]
    }

    const METHODS: [Method; 4] = [Method::Cash, Method::Card, Method::MobileMoney, Method::BankTransfer];

    /// `per_mille` thousandths of `amount`, rounded down.
    fn part(amount: i64, per_mille: u16) -> i64 {
        amount * i64::from(per_mille) / 1000
    }

    /// A payment as the model keeps it, for its refunds: the invoice, who paid, how, and what
    /// of it is still applied and still credit.
    struct Paid {
        invoice: usize,
        payer: Payer,
        method: Method,
        applied: i64,
        credit: i64,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Random days of activity at a KES hospital at UTC+14 and a USD insurer at UTC−10:
        /// invoices issued after their claims (with ex-gratia parts), adjudicated again, voided,
        /// paid by patients and insurers, refunded; premiums paid or cancelled; commissions
        /// kept, paid out or clawed back. Every report reconciles with the journal in each
        /// currency: the daily cash with each money account; aged receivables, the patient's
        /// and the insurer's statements with the receivables and the revenue (ex gratia on its
        /// own line); the commissions report with the commission accounts; and the
        /// reconciliation of the records agrees on every account. Nothing of one currency shows
        /// in the other's rows.
        #[test]
        fn reports_reconcile_with_the_journal_per_currency(
            days in prop::collection::vec((prop::collection::vec(step(), 0..10), 0u32..86_400), 1..6),
        ) {
            let (hospital, insurer, patient, agent) =
                (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
            let zones: BTreeMap<Uuid, String> =
                [(hospital, "Pacific/Kiritimati".to_owned()), (insurer, "Pacific/Honolulu".to_owned())].into();
            let currency = |tenant: Uuid| if tenant == hospital { "KES" } else { "USD" };
            let mut journal: BTreeMap<(&str, Account), i64> = BTreeMap::new();
            let mut post = |tenant: Uuid, entry: Entry| -> Result<(), TestCaseError> {
                prop_assert!(entry.balanced(), "{entry:?}");
                for p in entry.postings {
                    *journal.entry((currency(tenant), p.account)).or_default() += p.debit - p.credit;
                }
                Ok(())
            };
            let mut movements = Vec::new();
            let mut invoices: Vec<Invoice> = Vec::new();
            let mut payments: Vec<Paid> = Vec::new();
            let mut premiums: Vec<Premium> = Vec::new();
            let mut commissions: Vec<Earned> = Vec::new();
            let mut paid_out = 0;
            let start = datetime!(2026-11-28 00:00 UTC);
            for (day, (steps, second)) in days.iter().enumerate() {
                let at = start + time::Duration::days(day as i64) + time::Duration::seconds(i64::from(*second));
                let moved = |tenant: Uuid, method, received, refunded, paid_out| Movement {
                    at,
                    tenant_id: tenant,
                    books: if tenant == hospital { Books::Hospital } else { Books::Insurer },
                    currency: currency(tenant).into(),
                    method,
                    received,
                    refunded,
                    paid_out,
                };
                for s in steps {
                    match s.clone() {
                        Step::Issued(total, insurer_part, gratia_part) => {
                            let draft = Draft {
                                id: Uuid::now_v7(),
                                hospital_id: hospital,
                                patient_id: patient,
                                encounter_id: None,
                                member_number: Some("AAR-0000000195".into()),
                                currency: "KES".into(),
                                date_of_service: at.date(),
                                lines: vec![Line::priced("CONS", "consultation", "Consultation", 1, Some(total))],
                            };
                            let drafted = Invoice::draft(draft, at);
                            let insurer_pays = part(total, insurer_part);
                            let claim = [Adjudicated { insurer_pays, ex_gratia: part(insurer_pays, gratia_part), adjustments: Vec::new() }];
                            let split = drafted.resplit(&claim).unwrap();
                            prop_assert_eq!(&split.entry, &None, "a draft moves no receivable");
                            let invoice = Invoice {
                                insurer_share: split.insurer_share,
                                ex_gratia: split.ex_gratia,
                                patient_share: split.patient_share,
                                lines: split.lines,
                                insurer_id: Some(insurer),
                                ..drafted
                            };
                            post(hospital, invoice.issue().unwrap())?;
                            invoices.push(Invoice { status: Status::Issued, issued_at: Some(at), ..invoice });
                        }
                        Step::Readjudicated(insurer_part, gratia_part) => {
                            let Some(i) = invoices.iter().rposition(|i| i.status != Status::Void) else { continue };
                            let insurer_pays = part(invoices[i].total, insurer_part);
                            let claim = [Adjudicated { insurer_pays, ex_gratia: part(insurer_pays, gratia_part), adjustments: Vec::new() }];
                            let split = invoices[i].resplit(&claim).unwrap();
                            if let Some(entry) = split.entry {
                                post(hospital, entry)?;
                            }
                            let current = invoices[i].clone();
                            invoices[i] = Invoice { insurer_share: split.insurer_share, ex_gratia: split.ex_gratia, patient_share: split.patient_share, lines: split.lines, ..current };
                        }
                        Step::Voided => {
                            let Some(i) = invoices.iter().rposition(|i| i.status == Status::Issued) else { continue };
                            if let Some(entry) = invoices[i].void().unwrap() {
                                post(hospital, entry)?;
                            }
                            invoices[i].status = Status::Void;
                        }
                        Step::Paid(amount, by_patient, m) => {
                            let payer = if by_patient { Payer::Patient } else { Payer::Insurer };
                            let method = if by_patient { METHODS[m] } else { Method::InsurerRemittance };
                            let owes = |i: &Invoice| match payer {
                                Payer::Patient => i.patient_share - i.paid_patient,
                                Payer::Insurer => i.insurer_share - i.paid_insurer,
                            };
                            let open = |i: &Invoice| i.status != Status::Void;
                            let Some(i) = invoices.iter().position(|i| open(i) && owes(i) > 0)
                                .or_else(|| invoices.iter().rposition(open)) else { continue };
                            let settled = invoices[i].settle(payer, amount).unwrap();
                            post(hospital, ledger::payment_received(method, payer.receivable(), settled.applied, settled.credit))?;
                            let current = invoices[i].clone();
                            invoices[i] = Invoice { paid_patient: settled.paid_patient, paid_insurer: settled.paid_insurer, status: settled.status, ..current };
                            movements.push(moved(hospital, method, amount, 0, 0));
                            payments.push(Paid { invoice: i, payer, method, applied: settled.applied, credit: settled.credit });
                        }
                        Step::Refunded(amount) => {
                            let Some(last) = payments.last_mut() else { continue };
                            let from_credit = amount.min(last.credit);
                            let from_applied = (amount - from_credit).min(last.applied);
                            if from_credit + from_applied == 0 { continue; }
                            post(hospital, ledger::refund_paid(last.method, last.payer.receivable(), from_applied, from_credit))?;
                            let reopened = invoices[last.invoice].reopen(last.payer, from_applied);
                            let current = invoices[last.invoice].clone();
                            invoices[last.invoice] = Invoice { paid_patient: reopened.paid_patient, paid_insurer: reopened.paid_insurer, status: reopened.status, ..current };
                            movements.push(moved(hospital, last.method, 0, from_applied + from_credit, 0));
                            (last.applied, last.credit) = (last.applied - from_applied, last.credit - from_credit);
                        }
                        Step::Premium(amount, method) => {
                            let new = NewPremium {
                                insurer_id: insurer,
                                policy_id: Uuid::now_v7(),
                                plan_id: Uuid::from_u128(5),
                                holder_id: Uuid::from_u128(6),
                                agent_id: Some(agent),
                                amount,
                                currency: "USD".into(),
                                timezone: "Pacific/Honolulu".into(),
                                due_in: time::Duration::days(30),
                            };
                            let mut premium = Premium::invoice(new, Uuid::now_v7(), at);
                            post(insurer, ledger::premium_issued(amount))?;
                            if let Some(m) = method {
                                let settled = premium.settle(amount).unwrap();
                                post(insurer, ledger::payment_received(METHODS[m], Account::PremiumReceivable, settled.applied, settled.credit))?;
                                (premium.paid, premium.status) = (settled.paid, settled.status);
                                movements.push(moved(insurer, METHODS[m], amount, 0, 0));
                            }
                            premiums.push(premium);
                        }
                        Step::Cancelled => {
                            let Some(p) = premiums.iter_mut().rev().find(|p| p.paid == 0 && p.status == Status::Issued) else { continue };
                            post(insurer, p.cancel().unwrap())?;
                            p.status = Status::Void;
                        }
                        Step::Commission(amount, outcome, m) => {
                            post(insurer, ledger::commission_earned(amount))?;
                            let status = match outcome {
                                1 => {
                                    post(insurer, ledger::commission_paid_out(METHODS[m], amount))?;
                                    movements.push(moved(insurer, METHODS[m], 0, 0, amount));
                                    paid_out += amount;
                                    Cs::Earned
                                }
                                2 => {
                                    post(insurer, ledger::commission_clawed_back(amount))?;
                                    Cs::ClawedBack
                                }
                                _ => Cs::Earned,
                            };
                            commissions.push(Earned { agent_id: agent, insurer_id: insurer, currency: "USD".into(), status, amount, earned_at: at });
                        }
                    }
                }
            }
            let balance = |currency: &str, account| journal.get(&(currency, account)).copied().unwrap_or(0);
            // The daily cash, per currency and money account, is that account's journal balance.
            let days = daily_cash(&movements, &zones, (date!(2026 - 11 - 20), date!(2026 - 12 - 31)));
            let mut cash: BTreeMap<(&str, Account), i64> = BTreeMap::new();
            for d in &days {
                prop_assert_eq!(d.net, d.received - d.refunded - d.paid_out);
                *cash.entry((d.currency.as_str(), d.method.account())).or_default() += d.net;
            }
            for currency in ["KES", "USD"] {
                for account in [Account::Cash, Account::Card, Account::MobileMoney, Account::Bank] {
                    let from_cash = cash.get(&(currency, account)).copied().unwrap_or(0);
                    prop_assert_eq!(from_cash, balance(currency, account), "{} {:?}", currency, account);
                }
            }
            prop_assert!(days.iter().all(|d| d.currency == "KES" || d.currency == "USD"));

            // What is owed by age adds up to each receivable.
            let owed: Vec<Owed> = invoices
                .iter()
                .filter(|i| matches!(i.status, Status::Issued | Status::PartiallyPaid | Status::Paid))
                .map(|i| Owed {
                    hospital_id: hospital,
                    currency: i.currency.clone(),
                    patient_id: patient,
                    insurer_id: i.insurer_id,
                    issued_at: i.issued_at.unwrap(),
                    patient_due: i.patient_share - i.paid_patient,
                    insurer_due: i.insurer_share - i.paid_insurer,
                })
                .collect();
            let aged = aged_receivables(&owed, &zones, Some(date!(2027 - 01 - 31)), start);
            let aged_of = |payer| aged.iter().filter(|a| a.payer == payer).map(|a| a.total).sum::<i64>();
            // What was overpaid on a share an adjudication lowered after payment is no
            // receivable by age (it is to refund); it is in the journal's balance.
            let overpaid = |due: fn(&Invoice) -> i64| -> i64 {
                invoices.iter().filter(|i| i.status != Status::Void).map(|i| due(i).min(0)).sum()
            };
            let insurer_over = overpaid(|i| i.insurer_share - i.paid_insurer);
            let patient_over = overpaid(|i| i.patient_share - i.paid_patient);
            prop_assert_eq!(aged_of(Payer::Insurer) + insurer_over, balance("KES", Account::InsurerReceivable));
            prop_assert_eq!(aged_of(Payer::Patient) + patient_over, balance("KES", Account::PatientReceivable));
            prop_assert!(aged.iter().all(|a| a.currency == "KES"));

            // The statements: what is outstanding is each receivable; what was billed is the
            // revenue, of which the insurer's ex gratia is the ex-gratia account, on its own.
            let of = |s: &Statement| s.totals.iter().find(|t| t.currency == "KES").map(|t| (t.billed, t.ex_gratia, t.outstanding)).unwrap_or_default();
            let (patient_billed, patient_gratia, patient_owes) = of(&statement(patient, Payer::Patient, invoices.clone()));
            let (insurer_billed, insurer_gratia, insurer_owes) = of(&statement(insurer, Payer::Insurer, invoices.clone()));
            prop_assert_eq!(patient_owes, balance("KES", Account::PatientReceivable));
            prop_assert_eq!(insurer_owes, balance("KES", Account::InsurerReceivable));
            prop_assert_eq!(patient_gratia, 0);
            prop_assert_eq!(insurer_gratia, -balance("KES", Account::ExGratiaRevenue));
            prop_assert_eq!(patient_billed + insurer_billed - insurer_gratia, -balance("KES", Account::CareRevenue));
            for s in [statement(patient, Payer::Patient, invoices.clone()), statement(insurer, Payer::Insurer, invoices.clone())] {
                prop_assert!(s.totals.iter().all(|t| t.currency == "KES"), "{:?}", s.totals);
            }

            // The commissions report (every day there was): what is still earned is the
            // commission expense; earned less paid out is what is still payable.
            let report = commissions_by_agent(&commissions, &zones, (date!(2026 - 11 - 20), date!(2026 - 12 - 31)));
            prop_assert!(report.iter().all(|r| r.currency == "USD"));
            let earned: i64 = report.iter().map(|r| r.earned).sum();
            prop_assert_eq!(earned, balance("USD", Account::CommissionExpense));
            prop_assert_eq!(paid_out - earned, balance("USD", Account::CommissionPayable));
            prop_assert_eq!(report.iter().map(|r| r.commissions).sum::<i64>(), commissions.len() as i64);

            // The reconciliation of the records (as the store derives them) agrees with the
            // journal on every account of both currencies.
            let issued = || invoices.iter().filter(|i| i.status != Status::Void);
            let kes_credit: i64 = payments.iter().map(|p| p.credit).sum();
            let kes = Derived {
                currency: "KES".into(),
                patient_receivable: issued().map(|i| i.patient_share - i.paid_patient).sum(),
                insurer_receivable: issued().map(|i| i.insurer_share - i.paid_insurer).sum(),
                care_billed: issued().map(|i| i.total).sum(),
                ex_gratia_billed: issued().map(|i| i.ex_gratia).sum(),
                money: movements.iter().filter(|m| m.currency == "KES").map(|m| (m.method, m.received - m.refunded, 0)).chain([(Method::Cash, 0, kes_credit)]).collect(),
                ..Derived::default()
            };
            let live = || premiums.iter().filter(|p| p.status != Status::Void);
            let usd = Derived {
                currency: "USD".into(),
                premium_receivable: live().map(|p| p.amount - p.paid).sum(),
                premium_billed: live().map(|p| p.amount).sum(),
                commissions_earned: earned,
                paid_out,
                money: movements.iter().filter(|m| m.currency == "USD").map(|m| (m.method, m.received - m.paid_out, 0)).collect(),
                ..Derived::default()
            };
            let journal_rows: Vec<(String, Account, i64)> = journal.iter().map(|((c, a), b)| ((*c).to_owned(), *a, *b)).collect();
            let reconciled = reconcile(&journal_rows, &[kes, usd]);
            prop_assert!(reconciled.iter().all(|r| r.agrees), "{:?}", reconciled.iter().filter(|r| !r.agrees).collect::<Vec<_>>());
        }
    }
}

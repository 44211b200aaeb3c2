//! Reports and statements, computed from what the store reads: cash by day and method,
//! receivables by age, and a payer's statement of their invoices.
//!
//! Every sum is per currency: two currencies are never added. A day is the local day of the
//! tenant whose books the money is in (`medcov_domain::calendar`).

use std::collections::BTreeMap;

use medcov_domain::TextEnum;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

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
    pub currency: String,
    pub patient_id: Uuid,
    pub insurer_id: Option<Uuid>,
    pub issued_at: OffsetDateTime,
    pub patient_due: i64,
    pub insurer_due: i64,
}

/// What each payer owes as of `as_of`, in buckets of 0–30, 31–60, 61–90 and over 90 days since
/// issue; per currency, by payer (`insurer` before `patient`), then party.
pub fn aged_receivables(owed: &[Owed], as_of: Date) -> Vec<Aged> {
    // By currency, then the payer's word, so insurers come before patients; then the party.
    type Party<'a> = (&'a str, &'static str, Option<Uuid>);
    let mut by_party: BTreeMap<Party<'_>, (Payer, [i64; 4])> = BTreeMap::new();
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
        .filter(|l| l.share > 0)
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
            currency: "KES".into(),
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

    use proptest::prelude::*;

    /// One step of a day's activity in one tenant's books.
    #[derive(Debug, Clone)]
    enum Step {
        /// An invoice issued (patient, insurer shares).
        Issued(i64, i64),
        /// A payment by the patient of `amount`, by method.
        Paid(i64, usize),
        /// A refund of part of the last payment.
        Refunded(i64),
        /// A premium invoiced and paid by method.
        Premium(i64, usize),
        /// A commission earned, then paid out.
        Payout(i64, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0i64..500_000, 0i64..500_000).prop_map(|(p, i)| Step::Issued(p, i)),
            (1i64..400_000, 0usize..4).prop_map(|(a, m)| Step::Paid(a, m)),
            (1i64..100_000).prop_map(Step::Refunded),
            (1i64..900_000, 0usize..4).prop_map(|(a, m)| Step::Premium(a, m)),
            (1i64..90_000, 0usize..4).prop_map(|(a, m)| Step::Payout(a, m)),
        ]
    }

    const METHODS: [Method; 4] = [Method::Cash, Method::Card, Method::MobileMoney, Method::BankTransfer];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Random days of activity at a KES hospital at UTC+14 and a USD insurer at UTC−10: the
        /// daily cash of each currency, summed per money account, is that account's journal
        /// balance in the books of that currency; what is owed by age adds up to the
        /// receivables; nothing of one currency shows in the other's rows.
        #[test]
        fn reports_reconcile_with_the_journal_per_currency(
            days in prop::collection::vec((prop::collection::vec(step(), 0..8), 0u32..86_400), 1..6),
        ) {
            let (hospital, insurer) = (Uuid::from_u128(1), Uuid::from_u128(2));
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
            let (mut owed_patient, mut last_payment): (i64, Option<(i64, i64, Method)>) = (0, None);
            let mut owed = Vec::new();
            let start = datetime!(2026-11-28 00:00 UTC);
            for (day, (steps, second)) in days.iter().enumerate() {
                let at = start + time::Duration::days(day as i64) + time::Duration::seconds(i64::from(*second));
                for s in steps {
                    match s.clone() {
                        Step::Issued(patient, insurer_share) => {
                            post(hospital, ledger::invoice_issued(patient, insurer_share, 0))?;
                            owed_patient += patient;
                            owed.push(Owed { currency: "KES".into(), patient_id: hospital, insurer_id: Some(insurer), issued_at: at, patient_due: patient, insurer_due: insurer_share });
                        }
                        Step::Paid(amount, m) => {
                            let (applied, credit) = crate::domain::invoice::apply(owed_patient, amount);
                            owed_patient -= applied;
                            post(hospital, ledger::payment_received(METHODS[m], Account::PatientReceivable, applied, credit))?;
                            movements.push(Movement { at, tenant_id: hospital, books: Books::Hospital, currency: "KES".into(), method: METHODS[m], received: amount, refunded: 0, paid_out: 0 });
                            last_payment = Some((applied, credit, METHODS[m]));
                        }
                        Step::Refunded(amount) => {
                            let Some((applied, credit, method)) = last_payment else { continue };
                            let from_credit = amount.min(credit);
                            let from_applied = (amount - from_credit).min(applied);
                            if from_credit + from_applied == 0 { continue; }
                            owed_patient += from_applied;
                            post(hospital, ledger::refund_paid(method, Account::PatientReceivable, from_applied, from_credit))?;
                            movements.push(Movement { at, tenant_id: hospital, books: Books::Hospital, currency: "KES".into(), method, received: 0, refunded: from_applied + from_credit, paid_out: 0 });
                            last_payment = Some((applied - from_applied, credit - from_credit, method));
                        }
                        Step::Premium(amount, m) => {
                            post(insurer, ledger::premium_issued(amount))?;
                            post(insurer, ledger::payment_received(METHODS[m], Account::PremiumReceivable, amount, 0))?;
                            movements.push(Movement { at, tenant_id: insurer, books: Books::Insurer, currency: "USD".into(), method: METHODS[m], received: amount, refunded: 0, paid_out: 0 });
                        }
                        Step::Payout(amount, m) => {
                            post(insurer, ledger::commission_earned(amount))?;
                            post(insurer, ledger::commission_paid_out(METHODS[m], amount))?;
                            movements.push(Movement { at, tenant_id: insurer, books: Books::Insurer, currency: "USD".into(), method: METHODS[m], received: 0, refunded: 0, paid_out: amount });
                        }
                    }
                }
            }
            // Every day there was: the daily cash per currency and money account is the
            // journal's balance of that account in that currency's books.
            let days = daily_cash(&movements, &zones, (date!(2026 - 11 - 20), date!(2026 - 12 - 31)));
            let mut cash: BTreeMap<(&str, Account), i64> = BTreeMap::new();
            for d in &days {
                prop_assert_eq!(d.net, d.received - d.refunded - d.paid_out);
                *cash.entry((d.currency.as_str(), d.method.account())).or_default() += d.net;
            }
            for currency in ["KES", "USD"] {
                for account in [Account::Cash, Account::Card, Account::MobileMoney, Account::Bank] {
                    let from_cash = cash.get(&(currency, account)).copied().unwrap_or(0);
                    let from_journal = journal.get(&(currency, account)).copied().unwrap_or(0);
                    prop_assert_eq!(from_cash, from_journal, "{} {:?}", currency, account);
                }
            }
            // A row is in one currency, and the hospital's money is never in USD rows.
            prop_assert!(days.iter().all(|d| d.currency == "KES" || d.currency == "USD"));
            // What is owed by age adds up to the receivables the journal holds for the issue.
            let aged = aged_receivables(&owed, date!(2027 - 01 - 31));
            let insurer_due: i64 = aged.iter().filter(|a| a.payer == Payer::Insurer).map(|a| a.total).sum();
            prop_assert_eq!(insurer_due, journal.get(&("KES", Account::InsurerReceivable)).copied().unwrap_or(0));
            prop_assert!(aged.iter().all(|a| a.currency == "KES"));
        }
    }
}

//! Double entry: every money movement is a journal entry whose debits equal its credits.
//! Balances (of invoices, patients, insurers, cash) are derived from the journal.

use medcov_domain::TextEnum;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
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
pub enum Account {
    /// What patients owe.
    PatientReceivable,
    /// What insurers owe.
    InsurerReceivable,
    /// Income from care: what patients pay and insurers pay as covered benefit.
    CareRevenue,
    /// Income from care an insurer pays ex gratia, beyond the plan's limits: never covered
    /// benefit, so never in `care_revenue`.
    ExGratiaRevenue,
    Cash,
    Card,
    MobileMoney,
    Bank,
    /// Money received beyond what was owed: the payer's credit.
    PayerCredit,
    /// Premiums policy holders owe.
    PremiumReceivable,
    PremiumIncome,
    CommissionExpense,
    /// Commissions owed to agents.
    CommissionPayable,
}

impl TextEnum for Account {}

/// How money arrived.
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
pub enum Method {
    Cash,
    Card,
    MobileMoney,
    BankTransfer,
    InsurerRemittance,
}

impl TextEnum for Method {}

impl Method {
    /// Where the money lands.
    pub fn account(self) -> Account {
        match self {
            Method::Cash => Account::Cash,
            Method::Card => Account::Card,
            Method::MobileMoney => Account::MobileMoney,
            Method::BankTransfer | Method::InsurerRemittance => Account::Bank,
        }
    }
}

/// One side of one account in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    pub debit: i64,
    pub credit: i64,
}

impl Posting {
    fn debit(account: Account, amount: i64) -> Posting {
        Posting { account, debit: amount, credit: 0 }
    }

    fn credit(account: Account, amount: i64) -> Posting {
        Posting { account, debit: 0, credit: amount }
    }
}

/// A journal entry, without its zero postings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub memo: String,
    pub postings: Vec<Posting>,
}

impl Entry {
    fn new(memo: impl Into<String>, postings: Vec<Posting>) -> Entry {
        Entry { memo: memo.into(), postings: postings.into_iter().filter(|p| p.debit != 0 || p.credit != 0).collect() }
    }

    /// Debits equal credits, and each posting is one-sided and not negative.
    pub fn balanced(&self) -> bool {
        let one_sided = self.postings.iter().all(|p| p.debit >= 0 && p.credit >= 0 && (p.debit == 0 || p.credit == 0));
        one_sided
            && self.postings.iter().map(|p| p.debit).sum::<i64>() == self.postings.iter().map(|p| p.credit).sum::<i64>()
    }
}

/// Whose books an entry is in and what it is about: the hospital (care) or insurer (premiums,
/// commissions), the entry's one currency (the invoice's, the premium's, the payout's), the
/// invoice or premium, the payment, and the patient, holder or agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct About<'a> {
    pub tenant: Uuid,
    pub currency: &'a str,
    pub invoice: Option<Uuid>,
    pub payment: Option<Uuid>,
    pub party: Option<Uuid>,
}

/// Issuing an invoice: the receivables of both payers against care revenue, and against
/// ex-gratia revenue for the part of the insurer's share (`ex_gratia`) paid ex gratia.
pub fn invoice_issued(patient_share: i64, insurer_share: i64, ex_gratia: i64) -> Entry {
    Entry::new(
        "invoice issued",
        vec![
            Posting::debit(Account::PatientReceivable, patient_share),
            Posting::debit(Account::InsurerReceivable, insurer_share),
            Posting::credit(Account::CareRevenue, patient_share + insurer_share - ex_gratia),
            Posting::credit(Account::ExGratiaRevenue, ex_gratia),
        ],
    )
}

/// Voiding an issued invoice: the issue entry reversed.
pub fn invoice_voided(patient_share: i64, insurer_share: i64, ex_gratia: i64) -> Entry {
    Entry::new(
        "invoice voided",
        vec![
            Posting::credit(Account::PatientReceivable, patient_share),
            Posting::credit(Account::InsurerReceivable, insurer_share),
            Posting::debit(Account::CareRevenue, patient_share + insurer_share - ex_gratia),
            Posting::debit(Account::ExGratiaRevenue, ex_gratia),
        ],
    )
}

/// An adjudication moving shares between the payers of an issued invoice, from (insurer
/// share, of it ex gratia) `before` to `after`: the receivables move by the insurer's change,
/// and revenue moves between care and ex gratia by the ex-gratia change.
pub fn invoice_resplit(
    (insurer_before, gratia_before): (i64, i64),
    (insurer_after, gratia_after): (i64, i64),
) -> Entry {
    let mut postings = Vec::new();
    let moved = insurer_after - insurer_before;
    if moved >= 0 {
        postings.push(Posting::debit(Account::InsurerReceivable, moved));
        postings.push(Posting::credit(Account::PatientReceivable, moved));
    } else {
        postings.push(Posting::debit(Account::PatientReceivable, -moved));
        postings.push(Posting::credit(Account::InsurerReceivable, -moved));
    }
    let gratia = gratia_after - gratia_before;
    if gratia >= 0 {
        postings.push(Posting::debit(Account::CareRevenue, gratia));
        postings.push(Posting::credit(Account::ExGratiaRevenue, gratia));
    } else {
        postings.push(Posting::debit(Account::ExGratiaRevenue, -gratia));
        postings.push(Posting::credit(Account::CareRevenue, -gratia));
    }
    Entry::new("shares changed by the adjudication", postings)
}

/// A payment: the money's account against the payer's receivable, and any excess as credit.
pub fn payment_received(method: Method, receivable: Account, applied: i64, credit: i64) -> Entry {
    Entry::new(
        "payment received",
        vec![
            Posting::debit(method.account(), applied + credit),
            Posting::credit(receivable, applied),
            Posting::credit(Account::PayerCredit, credit),
        ],
    )
}

/// A refund paid out: taken first from the payer's credit, then from the receivable the payment
/// had settled (which the payer owes again).
pub fn refund_paid(method: Method, receivable: Account, from_applied: i64, from_credit: i64) -> Entry {
    Entry::new(
        "refund paid",
        vec![
            Posting::debit(receivable, from_applied),
            Posting::debit(Account::PayerCredit, from_credit),
            Posting::credit(method.account(), from_applied + from_credit),
        ],
    )
}

/// A premium invoiced to a policy holder.
pub fn premium_issued(amount: i64) -> Entry {
    Entry::new(
        "premium invoiced",
        vec![Posting::debit(Account::PremiumReceivable, amount), Posting::credit(Account::PremiumIncome, amount)],
    )
}

/// An unpaid premium withdrawn (its policy cancelled).
pub fn premium_voided(amount: i64) -> Entry {
    Entry::new(
        "premium voided",
        vec![Posting::credit(Account::PremiumReceivable, amount), Posting::debit(Account::PremiumIncome, amount)],
    )
}

/// A commission earned by an agent.
pub fn commission_earned(amount: i64) -> Entry {
    Entry::new(
        "commission earned",
        vec![Posting::debit(Account::CommissionExpense, amount), Posting::credit(Account::CommissionPayable, amount)],
    )
}

/// A commission taken back.
pub fn commission_clawed_back(amount: i64) -> Entry {
    Entry::new(
        "commission clawed back",
        vec![Posting::credit(Account::CommissionExpense, amount), Posting::debit(Account::CommissionPayable, amount)],
    )
}

/// Commissions paid out to an agent from a money account.
pub fn commission_paid_out(method: Method, amount: i64) -> Entry {
    Entry::new(
        "commission paid out",
        vec![Posting::debit(Account::CommissionPayable, amount), Posting::credit(method.account(), amount)],
    )
}

/// The balances the records (not the journal) give in one currency, for the reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    pub currency: String,
    /// Patient and insurer shares not yet paid, of issued invoices.
    pub patient_receivable: i64,
    pub insurer_receivable: i64,
    /// The totals of issued invoices.
    pub care_billed: i64,
    /// Of them, what insurers pay ex gratia.
    pub ex_gratia_billed: i64,
    /// Per payment method: money in (payments less refunds, less payouts) and the credit left.
    pub money: Vec<(Method, i64, i64)>,
    /// What premiums not void are still owed, and their totals.
    pub premium_receivable: i64,
    pub premium_billed: i64,
    /// Commissions earned (not clawed back), and what was paid out.
    pub commissions_earned: i64,
    pub paid_out: i64,
}

/// One account of the reconciliation, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub currency: String,
    pub account: Account,
    /// Debits minus credits in the journal.
    pub journal: i64,
    /// The same balance derived from the records.
    pub derived: i64,
    pub agrees: bool,
}

/// Each account's journal balance (debits minus credits) beside the balance the records give,
/// per currency (by its code, then account): two currencies are never added. A currency only
/// the journal has (or only the records) is reported against zeros, so it disagrees.
pub fn reconcile(journal: &[(String, Account, i64)], derived: &[Derived]) -> Vec<Reconciled> {
    let mut currencies: Vec<&str> =
        journal.iter().map(|(c, _, _)| c.as_str()).chain(derived.iter().map(|d| d.currency.as_str())).collect();
    currencies.sort_unstable();
    currencies.dedup();
    let none = Derived::default();
    let mut report = Vec::new();
    for currency in currencies {
        let derived = derived.iter().find(|d| d.currency == currency).unwrap_or(&none);
        let balance = |account: Account| {
            journal.iter().filter(|(c, a, _)| c == currency && *a == account).map(|(_, _, b)| *b).sum::<i64>()
        };
        for (account, derived) in derived_balances(derived) {
            let journal = balance(account);
            report.push(Reconciled {
                currency: currency.to_owned(),
                account,
                journal,
                derived,
                agrees: journal == derived,
            });
        }
    }
    report
}

/// Each account's balance as the records of one currency give it.
fn derived_balances(derived: &Derived) -> Vec<(Account, i64)> {
    let mut derived_by = vec![
        (Account::PatientReceivable, derived.patient_receivable),
        (Account::InsurerReceivable, derived.insurer_receivable),
        (Account::CareRevenue, derived.ex_gratia_billed - derived.care_billed),
        (Account::ExGratiaRevenue, -derived.ex_gratia_billed),
        (Account::PayerCredit, -derived.money.iter().map(|(_, _, credit)| credit).sum::<i64>()),
        (Account::PremiumReceivable, derived.premium_receivable),
        (Account::PremiumIncome, -derived.premium_billed),
        (Account::CommissionExpense, derived.commissions_earned),
        (Account::CommissionPayable, derived.paid_out - derived.commissions_earned),
    ];
    for account in [Account::Cash, Account::Card, Account::MobileMoney, Account::Bank] {
        let received =
            derived.money.iter().filter(|(m, _, _)| m.account() == account).map(|(_, amount, _)| amount).sum();
        derived_by.push((account, received));
    }
    derived_by
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strum::VariantArray;

    use super::*;

    #[test]
    fn entries_by_hand() {
        let issued = invoice_issued(2_000, 8_000, 0);
        assert_eq!(
            issued.postings,
            vec![
                Posting::debit(Account::PatientReceivable, 2_000),
                Posting::debit(Account::InsurerReceivable, 8_000),
                Posting::credit(Account::CareRevenue, 10_000),
            ]
        );
        // 25.00 paid in cash on 20.00 owed: 5.00 becomes credit.
        let paid = payment_received(Method::Cash, Account::PatientReceivable, 2_000, 500);
        assert_eq!(
            paid.postings,
            vec![
                Posting::debit(Account::Cash, 2_500),
                Posting::credit(Account::PatientReceivable, 2_000),
                Posting::credit(Account::PayerCredit, 500),
            ]
        );
        // Nothing insured: no insurer posting at all.
        assert_eq!(invoice_issued(4_000, 0, 0).postings.len(), 2);
        assert_eq!(
            invoice_resplit((8_000, 0), (6_000, 0)).postings,
            vec![Posting::debit(Account::PatientReceivable, 2_000), Posting::credit(Account::InsurerReceivable, 2_000),]
        );
    }

    #[test]
    fn accounts_and_methods_are_words() {
        for account in Account::VARIANTS {
            assert_eq!(Account::parse(account.as_str()), Some(*account));
        }
        assert_eq!(Account::PayerCredit.as_str(), "payer_credit");
        assert_eq!(Method::parse("mobile_money"), Some(Method::MobileMoney));
        assert_eq!(Method::parse("bitcoin"), None);
        assert_eq!(Method::InsurerRemittance.account(), Account::Bank);
    }

    #[test]
    fn reconciliation_by_hand() {
        // 5 500.00 issued, 3 000.00 paid in cash, 4 000.00 by card of which 1 500.00 is credit.
        let kes = |account, balance| ("KES".to_owned(), account, balance);
        let journal = [
            kes(Account::PatientReceivable, 550_000),
            kes(Account::PatientReceivable, -550_000),
            kes(Account::CareRevenue, -550_000),
            kes(Account::Cash, 300_000),
            kes(Account::Card, 400_000),
            kes(Account::PayerCredit, -150_000),
        ];
        let derived = Derived {
            currency: "KES".into(),
            care_billed: 550_000,
            money: vec![(Method::Cash, 300_000, 0), (Method::Card, 400_000, 150_000)],
            ..Derived::default()
        };
        let report = reconcile(&journal, std::slice::from_ref(&derived));
        assert_eq!(report.len(), 13);
        assert!(report.iter().all(|r| r.agrees), "{report:?}");
        let cash = report.iter().find(|r| r.account == Account::Cash).unwrap();
        assert_eq!((cash.journal, cash.derived), (300_000, 300_000));
        // A payment the journal does not have disagrees on its account, and only there.
        let mut derived = derived;
        derived.money.push((Method::MobileMoney, 100, 0));
        let report = reconcile(&journal, &[derived]);
        let disagree: Vec<Account> = report.iter().filter(|r| !r.agrees).map(|r| r.account).collect();
        assert_eq!(disagree, [Account::MobileMoney]);
    }

    /// Two currencies side by side: each account is reconciled per currency, and a balance is
    /// never the sum of two currencies.
    #[test]
    fn reconciliation_is_per_currency() {
        // KES books: an invoice of 5 500.00 (KES 550 000 cents) paid 3 000.00 in cash.
        // USD books: a premium of 120.00 (12 000) paid 100.00 by bank transfer, a commission
        // of 10.00 (1 000) earned and paid out by bank transfer: bank 10 000 - 1 000 = 9 000.
        let row = |currency: &str, account, balance| (currency.to_owned(), account, balance);
        let journal = [
            row("KES", Account::PatientReceivable, 550_000 - 300_000),
            row("KES", Account::CareRevenue, -550_000),
            row("KES", Account::Cash, 300_000),
            row("USD", Account::PremiumReceivable, 12_000 - 10_000),
            row("USD", Account::PremiumIncome, -12_000),
            row("USD", Account::Bank, 10_000 - 1_000),
            row("USD", Account::CommissionExpense, 1_000),
        ];
        let derived = [
            Derived {
                currency: "KES".into(),
                patient_receivable: 250_000,
                care_billed: 550_000,
                money: vec![(Method::Cash, 300_000, 0)],
                ..Derived::default()
            },
            Derived {
                currency: "USD".into(),
                premium_receivable: 2_000,
                premium_billed: 12_000,
                commissions_earned: 1_000,
                paid_out: 1_000,
                money: vec![(Method::BankTransfer, 10_000, 0), (Method::BankTransfer, -1_000, 0)],
                ..Derived::default()
            },
        ];
        let report = reconcile(&journal, &derived);
        assert_eq!(report.len(), 26, "13 accounts in each of two currencies");
        assert!(report.iter().all(|r| r.agrees), "{report:?}");
        let at = |currency: &str, account| {
            let r = report.iter().find(|r| r.currency == currency && r.account == account).unwrap();
            (r.journal, r.derived)
        };
        // (journal, derived) per currency, never 300 000 + 9 000 on one line.
        assert_eq!(at("KES", Account::Cash), (300_000, 300_000));
        assert_eq!(at("KES", Account::Bank), (0, 0));
        assert_eq!(at("USD", Account::Bank), (9_000, 9_000));
        assert_eq!(at("USD", Account::CareRevenue), (0, 0));
        assert_eq!(at("USD", Account::CommissionPayable), (0, 0));
        // A USD payment booked in the KES journal disagrees in both currencies.
        let mut misbooked = journal.to_vec();
        misbooked.push(row("KES", Account::Bank, 10_000));
        misbooked.push(row("USD", Account::Bank, -10_000));
        let report = reconcile(&misbooked, &derived);
        let disagree: Vec<(&str, Account)> =
            report.iter().filter(|r| !r.agrees).map(|r| (r.currency.as_str(), r.account)).collect();
        assert_eq!(disagree, [("KES", Account::Bank), ("USD", Account::Bank)]);
    }

    proptest! {
        #[test]
        fn every_entry_balances(a in 0i64..1_000_000_000, b in 0i64..1_000_000_000, c in 0i64..1_000_000_000) {
            let g = b / 3;
            prop_assert!(invoice_issued(a, b, g).balanced());
            prop_assert!(invoice_voided(a, b, g).balanced());
            prop_assert!(invoice_resplit((a, 0), (b, g)).balanced());
            prop_assert!(invoice_resplit((b, g), (a, 0)).balanced());
            prop_assert!(premium_issued(a).balanced());
            prop_assert!(premium_voided(a).balanced());
            prop_assert!(commission_earned(a).balanced());
            prop_assert!(commission_clawed_back(a).balanced());
            prop_assert!(commission_paid_out(Method::BankTransfer, a).balanced());
            for method in Method::VARIANTS.iter().copied() {
                prop_assert!(payment_received(method, Account::PatientReceivable, a, c).balanced());
                prop_assert!(refund_paid(method, Account::PatientReceivable, a, c).balanced());
            }
        }
    }
}

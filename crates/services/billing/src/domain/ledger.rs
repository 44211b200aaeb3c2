//! Double entry: every money movement is a journal entry whose debits equal its credits.
//! Balances (of invoices, patients, insurers, cash) are derived from the journal.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// What patients owe.
    PatientReceivable,
    /// What insurers owe.
    InsurerReceivable,
    /// Income from care.
    CareRevenue,
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

impl Account {
    pub const ALL: [Account; 12] = [
        Account::PatientReceivable,
        Account::InsurerReceivable,
        Account::CareRevenue,
        Account::Cash,
        Account::Card,
        Account::MobileMoney,
        Account::Bank,
        Account::PayerCredit,
        Account::PremiumReceivable,
        Account::PremiumIncome,
        Account::CommissionExpense,
        Account::CommissionPayable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Account::PatientReceivable => "patient_receivable",
            Account::InsurerReceivable => "insurer_receivable",
            Account::CareRevenue => "care_revenue",
            Account::Cash => "cash",
            Account::Card => "card",
            Account::MobileMoney => "mobile_money",
            Account::Bank => "bank",
            Account::PayerCredit => "payer_credit",
            Account::PremiumReceivable => "premium_receivable",
            Account::PremiumIncome => "premium_income",
            Account::CommissionExpense => "commission_expense",
            Account::CommissionPayable => "commission_payable",
        }
    }

    pub fn parse(s: &str) -> Option<Account> {
        Account::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How money arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Cash,
    Card,
    MobileMoney,
    BankTransfer,
    InsurerRemittance,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::Card => "card",
            Method::MobileMoney => "mobile_money",
            Method::BankTransfer => "bank_transfer",
            Method::InsurerRemittance => "insurer_remittance",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        [Method::Cash, Method::Card, Method::MobileMoney, Method::BankTransfer, Method::InsurerRemittance]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Issuing an invoice: the receivables of both payers against care revenue.
pub fn invoice_issued(patient_share: i64, insurer_share: i64) -> Entry {
    Entry::new(
        "invoice issued",
        vec![
            Posting::debit(Account::PatientReceivable, patient_share),
            Posting::debit(Account::InsurerReceivable, insurer_share),
            Posting::credit(Account::CareRevenue, patient_share + insurer_share),
        ],
    )
}

/// Voiding an issued invoice: the issue entry reversed.
pub fn invoice_voided(patient_share: i64, insurer_share: i64) -> Entry {
    Entry::new(
        "invoice voided",
        vec![
            Posting::credit(Account::PatientReceivable, patient_share),
            Posting::credit(Account::InsurerReceivable, insurer_share),
            Posting::debit(Account::CareRevenue, patient_share + insurer_share),
        ],
    )
}

/// An adjudication moving shares between the payers of an issued invoice.
pub fn invoice_resplit(insurer_before: i64, insurer_after: i64) -> Entry {
    let moved = insurer_after - insurer_before;
    let postings = if moved >= 0 {
        vec![Posting::debit(Account::InsurerReceivable, moved), Posting::credit(Account::PatientReceivable, moved)]
    } else {
        vec![Posting::debit(Account::PatientReceivable, -moved), Posting::credit(Account::InsurerReceivable, -moved)]
    };
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn entries_by_hand() {
        let issued = invoice_issued(2_000, 8_000);
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
        assert_eq!(invoice_issued(4_000, 0).postings.len(), 2);
        assert_eq!(
            invoice_resplit(8_000, 6_000).postings,
            vec![Posting::debit(Account::PatientReceivable, 2_000), Posting::credit(Account::InsurerReceivable, 2_000),]
        );
    }

    proptest! {
        #[test]
        fn every_entry_balances(a in 0i64..1_000_000_000, b in 0i64..1_000_000_000, c in 0i64..1_000_000_000) {
            prop_assert!(invoice_issued(a, b).balanced());
            prop_assert!(invoice_voided(a, b).balanced());
            prop_assert!(invoice_resplit(a, b).balanced());
            prop_assert!(premium_issued(a).balanced());
            prop_assert!(premium_voided(a).balanced());
            prop_assert!(commission_earned(a).balanced());
            prop_assert!(commission_clawed_back(a).balanced());
            prop_assert!(commission_paid_out(Method::BankTransfer, a).balanced());
            for method in [Method::Cash, Method::Card, Method::MobileMoney, Method::BankTransfer, Method::InsurerRemittance] {
                prop_assert!(payment_received(method, Account::PatientReceivable, a, c).balanced());
                prop_assert!(refund_paid(method, Account::PatientReceivable, a, c).balanced());
            }
        }
    }
}

//! The billing service's tables: price lists, invoices, payments, refunds, premiums, agents,
//! commissions and payouts, the journal, Idempotency-Keys and patients' accounts.
//!
//! Each function is one statement or a few that always go together, on the pool (reads) or on
//! the caller's transaction ([`Tx`], writes): the service layer opens the transaction, decides
//! with the domain's rules, and writes the change with its journal entry and its events before
//! committing. The SQL is in `sql/`, written once and compiled per backend by `sqlite.rs` and
//! `postgres.rs`; [`dispatch!`] picks the backend in use. Rows and their conversion to the
//! domain's records are in `rows.rs`.

mod postgres;
mod rows;
mod sqlite;

use medcov_store::{Database, Migrations, StoreError, Tx, dispatch};
use sqlx::migrate::Migrator;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::commission::{Commission, Payout};
use crate::domain::invoice::{Invoice, Line, Payment, Status};
use crate::domain::ledger::{About, Account, Derived, Entry};
use crate::domain::premium::{Premium, PremiumPayment};
use crate::domain::prices::Price;
use crate::domain::refund::{Kind, Refund, RefundStatus, Refundable, Taken};
use crate::domain::reports::{Earned, Movement, Owed};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

/// What a money movement recorded under an Idempotency-Key keeps of its request.
#[derive(Debug, Clone, Copy)]
pub struct Keyed<'a> {
    pub key: &'a str,
    /// A digest of the request, so another request under the key is told apart.
    pub request_hash: &'a str,
    pub created_by: Uuid,
}

/// The lines and shares a claim's adjudication gives an invoice.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    pub lines: &'a [Line],
    pub insurer_share: i64,
    /// Of the insurer share, what is paid ex gratia.
    pub ex_gratia: i64,
    pub patient_share: i64,
    pub claim_id: Uuid,
    pub insurer_id: Uuid,
}

// Prices.

/// The periods of the prices of `code` at a hospital.
pub async fn price_periods(tx: &mut Tx, hospital: Uuid, code: &str) -> Result<Vec<(Date, Option<Date>)>, StoreError> {
    dispatch!(tx, prices::periods(hospital, code))
}

pub async fn insert_price(tx: &mut Tx, price: &Price, created_by: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
    dispatch!(tx, prices::insert(price, created_by, at))
}

/// A hospital's prices, valid on `on` if given, by code.
pub async fn prices(db: &Database, hospital: Uuid, on: Option<Date>) -> Result<Vec<Price>, StoreError> {
    dispatch!(db, prices::list(hospital, on))
}

// Invoices.

/// Inserts a new invoice; a second one for the same encounter is a [`StoreError::Duplicate`].
pub async fn insert_invoice(tx: &mut Tx, invoice: &Invoice, created_by: Uuid) -> Result<(), StoreError> {
    dispatch!(tx, invoices::insert(invoice, created_by))
}

pub async fn invoice(db: &Database, id: Uuid) -> Result<Option<Invoice>, StoreError> {
    dispatch!(db, invoices::by_id(id))
}

/// The invoice, locked until the transaction ends.
pub async fn invoice_for_update(tx: &mut Tx, id: Uuid) -> Result<Option<Invoice>, StoreError> {
    dispatch!(tx, invoices::for_update(id))
}

/// The id of the invoice drafted from `encounter`, if there is one.
pub async fn invoice_id_of_encounter(tx: &mut Tx, encounter: Uuid) -> Result<Option<Uuid>, StoreError> {
    dispatch!(tx, invoices::id_of_encounter(encounter))
}

pub async fn invoice_of_encounter(db: &Database, encounter: Uuid) -> Result<Option<Invoice>, StoreError> {
    dispatch!(db, invoices::of_encounter(encounter))
}

pub async fn invoice_by_number(db: &Database, hospital: Uuid, number: &str) -> Result<Option<Invoice>, StoreError> {
    dispatch!(db, invoices::by_number(hospital, number))
}

/// Invoices of some hospitals (all with `None`), newest first.
pub async fn invoices(
    db: &Database,
    hospitals: Option<&[Uuid]>,
    status: Option<Status>,
    patient: Option<Uuid>,
    encounter: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Invoice>, StoreError> {
    dispatch!(db, invoices::list(hospitals, status, patient, encounter, limit, offset))
}

/// Invoices whose insurer share `insurer` owes, at some hospitals (all with `None`).
pub async fn invoices_of_insurer(
    db: &Database,
    insurer: Uuid,
    hospitals: Option<&[Uuid]>,
) -> Result<Vec<Invoice>, StoreError> {
    dispatch!(db, invoices::of_insurer(insurer, hospitals))
}

/// Issues the invoice if it is still at `version`; `false` when it changed meanwhile.
pub async fn mark_issued(tx: &mut Tx, id: Uuid, version: i64, at: OffsetDateTime) -> Result<bool, StoreError> {
    dispatch!(tx, invoices::mark_issued(id, version, at))
}

/// Voids the invoice if it is still at `version` and unpaid; `false` otherwise.
pub async fn mark_void(tx: &mut Tx, id: Uuid, version: i64, reason: &str) -> Result<bool, StoreError> {
    dispatch!(tx, invoices::mark_void(id, version, reason))
}

/// Splits the invoice as a claim's adjudication says, if it is still at `version`.
pub async fn set_split(tx: &mut Tx, id: Uuid, version: i64, split: &Split<'_>) -> Result<bool, StoreError> {
    dispatch!(tx, invoices::set_split(id, version, split))
}

/// What is paid of each share of the invoice, and its status.
pub async fn set_invoice_paid(
    tx: &mut Tx,
    id: Uuid,
    paid_patient: i64,
    paid_insurer: i64,
    status: Status,
) -> Result<(), StoreError> {
    dispatch!(tx, invoices::set_paid(id, paid_patient, paid_insurer, status))
}

// Payments.

/// Records a payment; one already recorded under the key is a [`StoreError::Duplicate`].
pub async fn insert_payment(tx: &mut Tx, payment: &Payment, keyed: &Keyed<'_>) -> Result<(), StoreError> {
    dispatch!(tx, payments::insert(payment, keyed))
}

pub async fn payment(db: &Database, id: Uuid) -> Result<Option<Payment>, StoreError> {
    dispatch!(db, payments::by_id(id))
}

/// The payment recorded under a hospital's Idempotency-Key.
pub async fn payment_under_key(db: &Database, hospital: Uuid, key: &str) -> Result<Option<Payment>, StoreError> {
    dispatch!(db, payments::under_key(hospital, key))
}

/// The payments of an invoice, oldest first.
pub async fn payments_of_invoice(db: &Database, invoice: Uuid) -> Result<Vec<Payment>, StoreError> {
    dispatch!(db, payments::of_invoice(invoice))
}

/// Records a premium payment; one already recorded under the key is a
/// [`StoreError::Duplicate`].
pub async fn insert_premium_payment(
    tx: &mut Tx,
    payment: &PremiumPayment,
    keyed: &Keyed<'_>,
) -> Result<(), StoreError> {
    dispatch!(tx, payments::insert_premium(payment, keyed))
}

pub async fn premium_payment(db: &Database, id: Uuid) -> Result<Option<PremiumPayment>, StoreError> {
    dispatch!(db, payments::premium_by_id(id))
}

/// The premium payment recorded under an insurer's Idempotency-Key.
pub async fn premium_payment_under_key(
    db: &Database,
    insurer: Uuid,
    key: &str,
) -> Result<Option<PremiumPayment>, StoreError> {
    dispatch!(db, payments::premium_under_key(insurer, key))
}

// The journal.

/// Writes a balanced journal entry.
pub async fn append_entry(tx: &mut Tx, about: &About<'_>, entry: &Entry, at: OffsetDateTime) -> Result<(), StoreError> {
    debug_assert!(entry.balanced(), "an unbalanced entry: {entry:?}");
    dispatch!(tx, journal::append(about, entry, at))
}

// Premiums.

pub async fn insert_premium(tx: &mut Tx, premium: &Premium) -> Result<(), StoreError> {
    dispatch!(tx, premiums::insert(premium))
}

pub async fn premium(db: &Database, id: Uuid) -> Result<Option<Premium>, StoreError> {
    dispatch!(db, premiums::by_id(id))
}

/// The premium, locked until the transaction ends.
pub async fn premium_for_update(tx: &mut Tx, id: Uuid) -> Result<Option<Premium>, StoreError> {
    dispatch!(tx, premiums::for_update(id))
}

/// A policy's premium, locked until the transaction ends.
pub async fn premium_of_policy(tx: &mut Tx, policy: Uuid) -> Result<Option<Premium>, StoreError> {
    dispatch!(tx, premiums::of_policy(policy))
}

/// Premiums of an insurer (all with `None`) with a status word (any with `None`), newest
/// first.
pub async fn premiums(
    db: &Database,
    insurer: Option<Uuid>,
    status: Option<&str>,
    policy: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Premium>, StoreError> {
    dispatch!(db, premiums::list(insurer, status, policy, limit, offset))
}

/// What is paid of the premium, its status, and when it was paid in full (kept when `None`).
pub async fn set_premium_paid(
    tx: &mut Tx,
    id: Uuid,
    paid: i64,
    status: Status,
    paid_at: Option<OffsetDateTime>,
) -> Result<(), StoreError> {
    dispatch!(tx, premiums::set_paid(id, paid, status, paid_at))
}

pub async fn void_premium(tx: &mut Tx, id: Uuid, reason: &str) -> Result<(), StoreError> {
    dispatch!(tx, premiums::void(id, reason))
}

// Agents and commissions.

/// An agent's tier at an insurer, if one was set.
pub async fn agent_tier(tx: &mut Tx, agent: Uuid, insurer: Uuid) -> Result<Option<String>, StoreError> {
    dispatch!(tx, commissions::tier(agent, insurer))
}

/// The commission rate of a plan for a tier, if one was set.
pub async fn commission_rate(tx: &mut Tx, insurer: Uuid, plan: Uuid, tier: &str) -> Result<Option<i32>, StoreError> {
    dispatch!(tx, commissions::rate(insurer, plan, tier))
}

pub async fn set_agent_tier(
    tx: &mut Tx,
    agent: Uuid,
    insurer: Uuid,
    tier: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    dispatch!(tx, commissions::set_tier(agent, insurer, tier, at))
}

pub async fn set_commission_rate(
    tx: &mut Tx,
    insurer: Uuid,
    plan: Uuid,
    tier: &str,
    rate_bp: i32,
) -> Result<(), StoreError> {
    dispatch!(tx, commissions::set_rate(insurer, plan, tier, rate_bp))
}

pub async fn insert_commission(tx: &mut Tx, commission: &Commission) -> Result<(), StoreError> {
    dispatch!(tx, commissions::insert(commission))
}

/// The commissions on a policy that are still earned.
pub async fn earned_commissions(tx: &mut Tx, policy: Uuid) -> Result<Vec<Commission>, StoreError> {
    dispatch!(tx, commissions::earned_on_policy(policy))
}

/// The currency of a premium (that of the commissions earned on it).
pub async fn premium_currency(tx: &mut Tx, premium: Uuid) -> Result<String, StoreError> {
    dispatch!(tx, commissions::premium_currency(premium))
}

pub async fn claw_back(tx: &mut Tx, commission: Uuid, at: OffsetDateTime, reason: &str) -> Result<(), StoreError> {
    dispatch!(tx, commissions::claw_back(commission, at, reason))
}

/// Commissions earned in `[from, to)`, for an agent and/or an insurer, oldest first.
pub async fn commissions(
    db: &Database,
    insurer: Option<Uuid>,
    agent: Option<Uuid>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Commission>, StoreError> {
    dispatch!(db, commissions::list(insurer, agent, from, to))
}

/// Claims for `payout` what the agent is owed and what they owe back in one currency: (owed,
/// recovered, currency).
pub async fn claim_for_payout(
    tx: &mut Tx,
    payout: Uuid,
    insurer: Uuid,
    agent: Uuid,
) -> Result<(i64, i64, String), StoreError> {
    dispatch!(tx, commissions::claim_for_payout(payout, insurer, agent))
}

pub async fn insert_payout(tx: &mut Tx, payout: &Payout, keyed: &Keyed<'_>) -> Result<(), StoreError> {
    dispatch!(tx, commissions::insert_payout(payout, keyed))
}

/// The payout made under an insurer's Idempotency-Key.
pub async fn payout_under_key(db: &Database, insurer: Uuid, key: &str) -> Result<Option<Payout>, StoreError> {
    dispatch!(db, commissions::payout_under_key(insurer, key))
}

// Refunds, of care payments and premium payments alike.

/// The payment (care) or premium payment (premium) a refund would refund.
pub async fn refundable_payment(tx: &mut Tx, kind: Kind, payment: Uuid) -> Result<Option<Refundable>, StoreError> {
    dispatch!(tx, refunds::refundable_payment(kind, payment))
}

/// What the refunds asked or completed of a payment took of it.
pub async fn refunds_taken(tx: &mut Tx, kind: Kind, payment: Uuid) -> Result<Taken, StoreError> {
    dispatch!(tx, refunds::taken(kind, payment))
}

pub async fn insert_refund(tx: &mut Tx, refund: &Refund) -> Result<(), StoreError> {
    dispatch!(tx, refunds::insert(refund))
}

pub async fn refund(db: &Database, kind: Kind, id: Uuid) -> Result<Option<Refund>, StoreError> {
    dispatch!(db, refunds::by_id(kind, id))
}

/// The refund, locked until the transaction ends.
pub async fn refund_for_update(tx: &mut Tx, kind: Kind, id: Uuid) -> Result<Option<Refund>, StoreError> {
    dispatch!(tx, refunds::for_update(kind, id))
}

/// Records the decision on a refund still requested; `false` when it was decided meanwhile.
pub async fn decide_refund(
    tx: &mut Tx,
    id: Uuid,
    status: RefundStatus,
    by: Uuid,
    note: Option<&str>,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    dispatch!(tx, refunds::decide(id, status, by, note, at))
}

// Patients' accounts.

/// Opens the accounts of `(patient, hospital)` (each kept as it is when it exists); when each
/// patient's was opened.
pub async fn open_accounts(
    tx: &mut Tx,
    accounts: &[(Uuid, Uuid)],
    at: OffsetDateTime,
) -> Result<std::collections::HashMap<Uuid, OffsetDateTime>, StoreError> {
    dispatch!(tx, accounts::open_all(accounts, at))
}

/// Closes a patient's account; how many were closed (none if it was never opened).
pub async fn close_account(tx: &mut Tx, patient: Uuid) -> Result<u64, StoreError> {
    dispatch!(tx, accounts::close(patient))
}

// The reconciliation and reports, for some tenants (hospitals or insurers; all with `None`).

/// Debits minus credits per currency and account in the journal.
pub async fn journal_balances(
    db: &Database,
    tenants: Option<&[Uuid]>,
) -> Result<Vec<(String, Account, i64)>, StoreError> {
    dispatch!(db, reports::journal(tenants))
}

/// The balances the records give, per currency.
pub async fn derived_balances(db: &Database, tenants: Option<&[Uuid]>) -> Result<Vec<Derived>, StoreError> {
    dispatch!(db, reports::derived(tenants))
}

/// Payments received and refunds paid out in `[start, end)`.
pub async fn cash_movements(
    db: &Database,
    tenants: Option<&[Uuid]>,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Vec<Movement>, StoreError> {
    dispatch!(db, reports::movements(tenants, start, end))
}

/// What is owed on invoices issued and not paid in full.
pub async fn owed(db: &Database, tenants: Option<&[Uuid]>) -> Result<Vec<Owed>, StoreError> {
    dispatch!(db, reports::owed(tenants))
}

/// Commissions earned in `[from, to)`, each with its agent, insurer, currency and status.
pub async fn commissions_earned_between(
    db: &Database,
    insurer: Option<Uuid>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Earned>, StoreError> {
    dispatch!(db, reports::commissions_earned_between(insurer, from, to))
}

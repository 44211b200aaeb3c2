//! The billing service's tables: price lists, invoices, payments, the journal, the inbox and
//! the outbox. SQL is written once for both backends ([`medcov_store::on_pool!`]). Every money
//! movement is one transaction with its journal entry and its outbox event.

use medcov_store::{Database, Migrations, WritePool, on_pool, write_outbox};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

pub mod idempotency;
pub mod premium_refunds;
pub mod premiums;
pub mod refunds;
pub mod reports;

pub use medcov_store::outbox::{Actor, Event};

use crate::domain::invoice::{self, Adjudicated, Line, Payer, Status};
use crate::domain::ledger::{self, Account, Method};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl From<StoreError> for medcov_http::ApiError {
    fn from(e: StoreError) -> Self {
        use medcov_http::{ApiError, FieldError};
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m.into()),
            StoreError::Invalid { field, reason } => ApiError::Validation(vec![FieldError::new(field, reason)]),
            StoreError::Sqlx(e) => ApiError::internal(e),
        }
    }
}

pub(crate) fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// One price of a service at a hospital over a period.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PriceEntry {
    pub id: Uuid,
    pub hospital_id: Uuid,
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    #[schema(example = "Full blood count")]
    pub description: String,
    /// Minor units.
    #[schema(example = 125000)]
    pub unit_price: i64,
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, format = Date)]
    pub effective_from: Date,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<Date>,
}

const PRICE_COLUMNS: &str =
    "id, hospital_id, service_code, category, description, unit_price, currency, effective_from, effective_to";

/// An invoice for care.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Invoice {
    pub id: Uuid,
    pub hospital_id: Uuid,
    #[schema(example = "INV-20261126-0190F5A4")]
    pub number: String,
    pub patient_id: Uuid,
    /// The encounter it was drafted from, if any.
    pub encounter_id: Option<Uuid>,
    pub member_number: Option<String>,
    pub currency: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_service: Date,
    pub status: Status,
    pub lines: Vec<Line>,
    pub total: i64,
    pub insurer_share: i64,
    pub patient_share: i64,
    pub paid_patient: i64,
    pub paid_insurer: i64,
    /// The claim whose adjudication split the lines, once it has.
    pub claim_id: Option<Uuid>,
    /// The insurer owing the insurer share, once a claim split the invoice.
    pub insurer_id: Option<Uuid>,
    /// `none` (all on the patient), or `claim` (split by the adjudication).
    pub split_source: String,
    pub void_reason: Option<String>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub issued_at: Option<OffsetDateTime>,
}

/// What a new invoice is drafted from.
pub struct Draft {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub encounter_id: Option<Uuid>,
    pub member_number: Option<String>,
    pub currency: String,
    pub date_of_service: Date,
    pub lines: Vec<Line>,
}

impl Invoice {
    /// The claim to ask of the patient's insurer for this draft (its reference is the invoice
    /// number), when there is an insurer to ask and every line is priced.
    pub fn claim_request(&self, diagnosis: &str, visit_type: &str) -> Option<serde_json::Value> {
        let member = self.member_number.as_ref()?;
        if self.lines.is_empty() || self.lines.iter().any(|l| l.unpriced) || self.currency.is_empty() {
            return None;
        }
        Some(serde_json::json!({
            "invoice_id": self.id,
            "number": self.number,
            "hospital_id": self.hospital_id,
            "member_number": member,
            "visit_type": visit_type,
            "currency": self.currency,
            "lines": self.lines.iter().map(|l| serde_json::json!({
                "service_code": l.service_code, "category": l.category, "quantity": l.quantity,
                "unit_price": l.unit_price, "diagnosis": diagnosis, "date_of_service": self.date_of_service.to_string(),
            })).collect::<Vec<_>>(),
        }))
    }

    /// A draft, numbered, all on the patient until a claim splits it.
    pub fn draft(d: Draft) -> Invoice {
        let (total, insurer_share, patient_share) = invoice::totals(&d.lines);
        Invoice {
            id: d.id,
            hospital_id: d.hospital_id,
            number: invoice_number(d.id, d.date_of_service),
            patient_id: d.patient_id,
            encounter_id: d.encounter_id,
            member_number: d.member_number,
            currency: d.currency,
            date_of_service: d.date_of_service,
            status: Status::Draft,
            lines: d.lines,
            total,
            insurer_share,
            patient_share,
            paid_patient: 0,
            paid_insurer: 0,
            claim_id: None,
            insurer_id: None,
            split_source: "none".into(),
            void_reason: None,
            version: 1,
            created_at: OffsetDateTime::now_utc(),
            issued_at: None,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceRow {
    id: Uuid,
    hospital_id: Uuid,
    number: String,
    patient_id: Uuid,
    encounter_id: Option<Uuid>,
    member_number: Option<String>,
    currency: String,
    date_of_service: Date,
    status: String,
    lines: Json<Vec<Line>>,
    total: i64,
    insurer_share: i64,
    patient_share: i64,
    paid_patient: i64,
    paid_insurer: i64,
    claim_id: Option<Uuid>,
    insurer_id: Option<Uuid>,
    split_source: String,
    void_reason: Option<String>,
    version: i64,
    created_at: OffsetDateTime,
    issued_at: Option<OffsetDateTime>,
}

impl From<InvoiceRow> for Invoice {
    fn from(r: InvoiceRow) -> Self {
        Invoice {
            id: r.id,
            hospital_id: r.hospital_id,
            number: r.number,
            patient_id: r.patient_id,
            encounter_id: r.encounter_id,
            member_number: r.member_number,
            currency: r.currency,
            date_of_service: r.date_of_service,
            status: Status::parse(&r.status).unwrap_or(Status::Draft),
            lines: r.lines.0,
            total: r.total,
            insurer_share: r.insurer_share,
            patient_share: r.patient_share,
            paid_patient: r.paid_patient,
            paid_insurer: r.paid_insurer,
            claim_id: r.claim_id,
            insurer_id: r.insurer_id,
            split_source: r.split_source,
            void_reason: r.void_reason,
            version: r.version,
            created_at: r.created_at,
            issued_at: r.issued_at,
        }
    }
}

pub(crate) const INVOICE_COLUMNS: &str = "id, hospital_id, number, patient_id, encounter_id, member_number, currency, date_of_service, \
     status, lines, total, insurer_share, patient_share, paid_patient, paid_insurer, claim_id, insurer_id, split_source, \
     void_reason, version, created_at, issued_at";

/// A payment against an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub invoice_id: Uuid,
    /// `patient` or `insurer`.
    pub payer: String,
    /// `cash`, `card`, `mobile_money`, `bank_transfer`, `insurer_remittance`.
    pub method: String,
    pub amount: i64,
    /// What went to the invoice.
    pub applied: i64,
    /// What was more than owed: the payer's credit.
    pub credit: i64,
    pub external_reference: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

pub(crate) const PAYMENT_COLUMNS: &str =
    "id, invoice_id, payer, method, amount, applied, credit, external_reference, created_at";

/// A payment to record.
pub struct NewPayment {
    pub payer: Payer,
    pub method: Method,
    pub amount: i64,
    pub external_reference: Option<String>,
    pub idempotency_key: String,
    pub request_hash: String,
}

/// One account of the reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reconciled {
    pub account: Account,
    /// Debits minus credits in the journal.
    pub journal: i64,
    /// The same balance derived from invoices and payments.
    pub derived: i64,
    pub agrees: bool,
}

fn payer_text(p: Payer) -> &'static str {
    match p {
        Payer::Patient => "patient",
        Payer::Insurer => "insurer",
    }
}

/// Writes a balanced journal entry inside the transaction.
macro_rules! write_entry {
    ($tx:expr, $hospital:expr, $entry:expr, $invoice:expr, $payment:expr, $party:expr) => {
        async {
            let entry: &$crate::domain::ledger::Entry = &$entry;
            debug_assert!(entry.balanced());
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO journal_entries (id, tenant_id, at, memo, invoice_id, payment_id) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind($hospital)
            .bind(OffsetDateTime::now_utc())
            .bind(&entry.memo)
            .bind($invoice)
            .bind($payment)
            .execute(&mut *$tx)
            .await?;
            for (i, posting) in entry.postings.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO journal_postings (entry_id, line_no, account, party_id, debit, credit) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(i as i32)
                .bind(posting.account.as_str())
                .bind($party)
                .bind(posting.debit)
                .bind(posting.credit)
                .execute(&mut *$tx)
                .await?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await
    };
}
pub(crate) use write_entry;

/// Inserts a new invoice row inside a transaction.
macro_rules! insert_invoice {
    ($tx:expr, $invoice:expr, $actor:expr) => {
        sqlx::query(
            "INSERT INTO invoices (id, hospital_id, number, patient_id, encounter_id, member_number, currency, date_of_service, \
             status, lines, total, insurer_share, patient_share, paid_patient, paid_insurer, claim_id, split_source, void_reason, \
             version, created_by, created_at, issued_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, 0, NULL, $14, NULL, 1, $15, $16, NULL)",
        )
        .bind($invoice.id)
        .bind($invoice.hospital_id)
        .bind(&$invoice.number)
        .bind($invoice.patient_id)
        .bind($invoice.encounter_id)
        .bind(&$invoice.member_number)
        .bind(&$invoice.currency)
        .bind($invoice.date_of_service)
        .bind($invoice.status.as_str())
        .bind(Json(&$invoice.lines))
        .bind($invoice.total)
        .bind($invoice.insurer_share)
        .bind($invoice.patient_share)
        .bind(&$invoice.split_source)
        .bind($actor.user_id)
        .bind($invoice.created_at)
        .execute(&mut *$tx)
        .await
        .map(|_| ())
    };
}

#[derive(Clone)]
pub struct BillingStore {
    db: Database,
}

impl BillingStore {
    pub fn new(db: Database) -> BillingStore {
        BillingStore { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Adds a price; refused when its period overlaps another price of the same code.
    pub async fn add_price(&self, entry: &PriceEntry, created_by: Uuid) -> Result<(), StoreError> {
        on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let existing: Vec<(Date, Option<Date>)> = sqlx::query_as(
                "SELECT effective_from, effective_to FROM price_entries WHERE hospital_id = $1 AND service_code = $2",
            )
            .bind(entry.hospital_id)
            .bind(&entry.service_code)
            .fetch_all(&mut *tx)
            .await?;
            let overlaps = existing.iter().any(|(from, to)| {
                !(entry.effective_to.is_some_and(|t| t < *from) || to.is_some_and(|t| t < entry.effective_from))
            });
            if overlaps {
                return Err(StoreError::Conflict(format!(
                    "{} already has a price in this period; end it first (effective_to)",
                    entry.service_code
                )));
            }
            sqlx::query(
                "INSERT INTO price_entries (id, hospital_id, service_code, category, description, unit_price, currency, \
                 effective_from, effective_to, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(entry.id)
            .bind(entry.hospital_id)
            .bind(&entry.service_code)
            .bind(&entry.category)
            .bind(&entry.description)
            .bind(entry.unit_price)
            .bind(&entry.currency)
            .bind(entry.effective_from)
            .bind(entry.effective_to)
            .bind(created_by)
            .bind(OffsetDateTime::now_utc())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await
        })
    }

    /// A hospital's prices, valid on `on` if given, by code.
    pub async fn prices(&self, hospital: Uuid, on: Option<Date>) -> Result<Vec<PriceEntry>, StoreError> {
        let sql = format!(
            "SELECT {PRICE_COLUMNS} FROM price_entries WHERE hospital_id = $1 AND ($2 IS NULL OR (effective_from <= $2 \
             AND (effective_to IS NULL OR effective_to >= $2))) ORDER BY service_code, effective_from"
        );
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(hospital)
            .bind(on)
            .fetch_all(pool)
            .await)?)
    }

    /// Writes a draft invoice. One invoice per encounter: a second for the same encounter
    /// returns the first (`false`). With `inbox` (a consumer and an event id), the event is
    /// recorded in the same transaction, and an event already handled changes nothing.
    pub async fn create_invoice(
        &self,
        invoice: &Invoice,
        actor: &Actor,
        inbox: Option<(&'static str, Uuid)>,
        claim_request: Option<serde_json::Value>,
    ) -> Result<(Invoice, bool), StoreError> {
        let created: Result<bool, StoreError> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            if let Some((consumer, event)) = inbox
                && !medcov_bus::record_once!(tx, consumer, event)?
            {
                return Ok(false);
            }
            if let Some(encounter) = invoice.encounter_id {
                let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM invoices WHERE encounter_id = $1")
                    .bind(encounter)
                    .fetch_optional(&mut *tx)
                    .await?;
                if existing.is_some() {
                    tx.commit().await?;
                    return Ok(false);
                }
            }
            insert_invoice!(tx, invoice, actor)?;
            // An insured patient's claim is asked of the insurer with the draft (the claim's
            // reference is the invoice number).
            if let Some(payload) = &claim_request {
                let event = Event {
                    event_type: "billing.claim_requested.v1",
                    aggregate_type: "invoice",
                    aggregate_id: invoice.id,
                    tenant_id: invoice.hospital_id,
                    payload: payload.clone(),
                };
                write_outbox!(tx, actor, event)?;
            }
            tx.commit().await?;
            Ok(true)
        }
        .await);
        let created = match created {
            Err(StoreError::Sqlx(e)) if unique_violation(&e) && invoice.encounter_id.is_some() => false,
            other => other?,
        };
        let found = match (created, invoice.encounter_id) {
            (false, Some(encounter)) => self.invoice_of_encounter(encounter).await?,
            _ => self.invoice(invoice.id).await?,
        };
        Ok((found.ok_or(StoreError::NotFound("no such invoice"))?, created))
    }

    pub async fn invoice(&self, id: Uuid) -> Result<Option<Invoice>, StoreError> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
        let row: Option<InvoiceRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Invoice::from))
    }

    pub async fn invoice_of_encounter(&self, encounter: Uuid) -> Result<Option<Invoice>, StoreError> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE encounter_id = $1");
        let row: Option<InvoiceRow> = on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(encounter)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(Invoice::from))
    }

    pub async fn invoice_by_number(&self, hospital: Uuid, number: &str) -> Result<Option<Invoice>, StoreError> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE hospital_id = $1 AND number = $2");
        let row: Option<InvoiceRow> = on_pool!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hospital).bind(number).fetch_optional(pool).await
        })?;
        Ok(row.map(Invoice::from))
    }

    /// Invoices of some hospitals (all with `None`), newest first.
    pub async fn invoices(
        &self,
        hospitals: Option<&[Uuid]>,
        status: Option<Status>,
        patient: Option<Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Invoice>, StoreError> {
        let mut sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR patient_id = $2)"
        );
        if let Some(hospitals) = hospitals {
            if hospitals.is_empty() {
                return Ok(Vec::new());
            }
            let list: Vec<String> = (0..hospitals.len()).map(|i| format!("${}", i + 5)).collect();
            sql.push_str(&format!(" AND hospital_id IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4");
        let rows: Vec<InvoiceRow> = on_pool!(&self.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(status.map(Status::as_str))
                .bind(patient)
                .bind(limit)
                .bind(offset);
            for h in hospitals.unwrap_or_default() {
                q = q.bind(*h);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Invoice::from).collect())
    }

    /// Invoices whose insurer share an insurer owes, at some hospitals (all with `None`).
    pub async fn invoices_of_insurer(
        &self,
        insurer: Uuid,
        hospitals: Option<&[Uuid]>,
    ) -> Result<Vec<Invoice>, StoreError> {
        let mut sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE insurer_id = $1");
        if let Some(hospitals) = hospitals {
            if hospitals.is_empty() {
                return Ok(Vec::new());
            }
            let list: Vec<String> = (0..hospitals.len()).map(|i| format!("${}", i + 2)).collect();
            sql.push_str(&format!(" AND hospital_id IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT 1000");
        let rows: Vec<InvoiceRow> = on_pool!(&self.db, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(insurer);
            for h in hospitals.unwrap_or_default() {
                q = q.bind(*h);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Invoice::from).collect())
    }

    /// Issues a draft: its receivables enter the journal and `invoice_issued` is emitted.
    pub async fn issue(&self, current: &Invoice, actor: &Actor) -> Result<Invoice, StoreError> {
        if current.status != Status::Draft {
            return Err(StoreError::Conflict(format!("a {} invoice cannot be issued", current.status.as_str())));
        }
        if let Some(line) = current.lines.iter().find(|l| l.unpriced) {
            return Err(StoreError::Conflict(format!(
                "{} has no price on {}; add it to the price list first",
                line.service_code, current.date_of_service
            )));
        }
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE invoices SET status = 'issued', issued_at = $1, version = version + 1 WHERE id = $2 AND version = $3",
            )
            .bind(now)
            .bind(current.id)
            .bind(current.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the invoice changed meanwhile; read it again".into()));
            }
            write_entry!(tx, current.hospital_id, ledger::invoice_issued(current.patient_share, current.insurer_share), Some(current.id), None::<Uuid>, Some(current.patient_id))?;
            let event = Event {
                event_type: "billing.invoice_issued.v1",
                aggregate_type: "invoice",
                aggregate_id: current.id,
                tenant_id: current.hospital_id,
                payload: serde_json::json!({
                    "invoice_id": current.id, "number": current.number, "hospital_id": current.hospital_id,
                    "patient_id": current.patient_id, "encounter_id": current.encounter_id, "currency": current.currency,
                    "total": current.total, "insurer_share": current.insurer_share, "patient_share": current.patient_share,
                    "member_number": current.member_number,
                }),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.invoice(current.id).await?.ok_or(StoreError::NotFound("no such invoice"))
    }

    /// Voids an invoice that has no payment; an issued one's receivables are reversed.
    pub async fn void(&self, current: &Invoice, reason: &str, actor: &Actor) -> Result<Invoice, StoreError> {
        if current.paid_patient + current.paid_insurer > 0 || !matches!(current.status, Status::Draft | Status::Issued)
        {
            return Err(StoreError::Conflict("only an invoice without payments can be voided; refund first".into()));
        }
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE invoices SET status = 'void', void_reason = $1, version = version + 1 \
                 WHERE id = $2 AND version = $3 AND paid_patient = 0 AND paid_insurer = 0",
            )
            .bind(reason)
            .bind(current.id)
            .bind(current.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the invoice changed meanwhile; read it again".into()));
            }
            if current.status == Status::Issued {
                write_entry!(tx, current.hospital_id, ledger::invoice_voided(current.patient_share, current.insurer_share), Some(current.id), None::<Uuid>, Some(current.patient_id))?;
            }
            let event = Event {
                event_type: "billing.invoice_voided.v1",
                aggregate_type: "invoice",
                aggregate_id: current.id,
                tenant_id: current.hospital_id,
                payload: serde_json::json!({"invoice_id": current.id, "number": current.number, "hospital_id": current.hospital_id,
                    "claim_id": current.claim_id, "reason": reason}),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.invoice(current.id).await?.ok_or(StoreError::NotFound("no such invoice"))
    }

    /// Splits an invoice's lines by a claim's adjudication (moving receivables if it was
    /// issued). Applied once per claim adjudication by the caller's inbox.
    pub async fn split_by_claim(
        &self,
        current: &Invoice,
        claim_id: Uuid,
        insurer_id: Uuid,
        adjudicated: &[Adjudicated],
        inbox: Option<(&'static str, Uuid)>,
    ) -> Result<Invoice, StoreError> {
        if current.status == Status::Void {
            return Ok(current.clone());
        }
        let mut lines = current.lines.clone();
        invoice::split(&mut lines, adjudicated);
        let (_, insurer, patient) = invoice::totals(&lines);
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            if let Some((consumer, event)) = inbox
                && !medcov_bus::record_once!(tx, consumer, event)?
            {
                return Ok(());
            }
            let done = sqlx::query(
                "UPDATE invoices SET lines = $1, insurer_share = $2, patient_share = $3, claim_id = $4, split_source = 'claim', \
                 version = version + 1, insurer_id = $7 WHERE id = $5 AND version = $6",
            )
            .bind(Json(&lines))
            .bind(insurer)
            .bind(patient)
            .bind(claim_id)
            .bind(current.id)
            .bind(current.version)
            .bind(insurer_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the invoice changed meanwhile".into()));
            }
            if current.status != Status::Draft && insurer != current.insurer_share {
                write_entry!(tx, current.hospital_id, ledger::invoice_resplit(current.insurer_share, insurer), Some(current.id), None::<Uuid>, Some(current.patient_id))?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.invoice(current.id).await?.ok_or(StoreError::NotFound("no such invoice"))
    }

    /// Records a payment, once per Idempotency-Key: a repeat with the same request returns the
    /// first payment (`false`), one with another request is refused. The invoice row is locked
    /// first, so concurrent payments of one invoice apply one after the other.
    pub async fn pay(
        &self,
        invoice_id: Uuid,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(Payment, bool), StoreError> {
        let invoice = self.invoice(invoice_id).await?.ok_or(StoreError::NotFound("no such invoice"))?;
        let (tenant, key) = (invoice.hospital_id, payment.idempotency_key.as_str());
        if self.take_key(tenant, key, &payment.request_hash).await? == idempotency::Taken::Done {
            return self.paid_under(tenant, key).await.map(|p| (p, false));
        }
        let result = self.pay_once(invoice_id, payment, actor).await;
        if result.is_err() {
            self.release_key(tenant, key).await;
        }
        result
    }

    /// The payment recorded under a key.
    async fn paid_under(&self, hospital: Uuid, key: &str) -> Result<Payment, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE hospital_id = $1 AND idempotency_key = $2");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(hospital)
            .bind(key)
            .fetch_one(pool)
            .await)?)
    }

    async fn pay_once(
        &self,
        invoice_id: Uuid,
        payment: &NewPayment,
        actor: &Actor,
    ) -> Result<(Payment, bool), StoreError> {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let outcome: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            // The lock (a no-op update), then the current state.
            sqlx::query("UPDATE invoices SET version = version WHERE id = $1").bind(invoice_id).execute(&mut *tx).await?;
            let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
            let row: Option<InvoiceRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(invoice_id).fetch_optional(&mut *tx).await?;
            let invoice = Invoice::from(row.ok_or(StoreError::NotFound("no such invoice"))?);
            if matches!(invoice.status, Status::Draft | Status::Void) {
                return Err(StoreError::Conflict(format!("a {} invoice takes no payment", invoice.status.as_str())));
            }
            let (outstanding, receivable) = match payment.payer {
                Payer::Patient => (invoice.patient_share - invoice.paid_patient, Account::PatientReceivable),
                Payer::Insurer => (invoice.insurer_share - invoice.paid_insurer, Account::InsurerReceivable),
            };
            let (applied, credit) = invoice::apply(outstanding, payment.amount);
            let (paid_patient, paid_insurer) = match payment.payer {
                Payer::Patient => (invoice.paid_patient + applied, invoice.paid_insurer),
                Payer::Insurer => (invoice.paid_patient, invoice.paid_insurer + applied),
            };
            let status = invoice::status(invoice.patient_share, invoice.insurer_share, paid_patient, paid_insurer);
            sqlx::query(
                "UPDATE invoices SET paid_patient = $1, paid_insurer = $2, status = $3, version = version + 1 WHERE id = $4",
            )
            .bind(paid_patient)
            .bind(paid_insurer)
            .bind(status.as_str())
            .bind(invoice.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO payments (id, hospital_id, invoice_id, payer, method, amount, applied, credit, external_reference, \
                 idempotency_key, request_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(id)
            .bind(invoice.hospital_id)
            .bind(invoice.id)
            .bind(payer_text(payment.payer))
            .bind(payment.method.as_str())
            .bind(payment.amount)
            .bind(applied)
            .bind(credit)
            .bind(&payment.external_reference)
            .bind(&payment.idempotency_key)
            .bind(&payment.request_hash)
            .bind(actor.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let party = match payment.payer {
                Payer::Patient => Some(invoice.patient_id),
                Payer::Insurer => None,
            };
            idempotency::key_done!(tx, invoice.hospital_id, &payment.idempotency_key)?;
            write_entry!(tx, invoice.hospital_id, ledger::payment_received(payment.method, receivable, applied, credit), Some(invoice.id), Some(id), party)?;
            let event = Event {
                event_type: "billing.payment_completed.v1",
                aggregate_type: "payment",
                aggregate_id: id,
                tenant_id: invoice.hospital_id,
                payload: serde_json::json!({
                    "payment_id": id, "invoice_id": invoice.id, "number": invoice.number, "hospital_id": invoice.hospital_id,
                    "payer": payer_text(payment.payer), "method": payment.method.as_str(), "amount": payment.amount,
                    "applied": applied, "credit": credit, "currency": invoice.currency, "invoice_status": status,
                    "claim_id": invoice.claim_id, "insurer_settled": invoice.insurer_share > 0 && paid_insurer >= invoice.insurer_share,
                }),
            };
            write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        match outcome {
            // The held Idempotency-Key lets only one request run; the unique key on payments is
            // the last guard should a crashed request's key have been taken again meanwhile.
            Err(StoreError::Sqlx(e)) if unique_violation(&e) => {
                return Err(StoreError::Conflict("a payment under this Idempotency-Key was recorded meanwhile".into()));
            }
            other => other?,
        }
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
        let found: Payment =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await)?;
        Ok((found, true))
    }

    pub async fn payments(&self, invoice: Uuid) -> Result<Vec<Payment>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE invoice_id = $1 ORDER BY created_at, id");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(invoice).fetch_all(pool).await)?)
    }

    /// Opens `patient`'s account (kept as it is when it exists) and writes the reply built from
    /// its opening time, once per command (`inbox`).
    pub async fn open_account(
        &self,
        patient: Uuid,
        hospital: Uuid,
        reply: impl Fn(OffsetDateTime) -> Event,
        actor: &Actor,
        inbox: (&'static str, Uuid),
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            if !medcov_bus::record_once!(tx, inbox.0, inbox.1)? {
                return Ok(());
            }
            sqlx::query(
                "INSERT INTO patient_accounts (patient_id, hospital_id, opened_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (patient_id) DO NOTHING",
            )
            .bind(patient)
            .bind(hospital)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let opened: OffsetDateTime =
                sqlx::query_scalar("SELECT opened_at FROM patient_accounts WHERE patient_id = $1")
                    .bind(patient)
                    .fetch_one(&mut *tx)
                    .await?;
            write_outbox!(tx, actor, reply(opened))?;
            tx.commit().await
        }
        .await);
        Ok(result?)
    }

    /// Closes `patient`'s account (it may never have been opened) and writes the reply built
    /// from how many were closed, once per command (`inbox`).
    pub async fn close_account(
        &self,
        patient: Uuid,
        reply: impl Fn(u64) -> Event,
        actor: &Actor,
        inbox: (&'static str, Uuid),
    ) -> Result<(), StoreError> {
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            if !medcov_bus::record_once!(tx, inbox.0, inbox.1)? {
                return Ok(());
            }
            let closed = sqlx::query("DELETE FROM patient_accounts WHERE patient_id = $1")
                .bind(patient)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            write_outbox!(tx, actor, reply(closed))?;
            tx.commit().await
        }
        .await);
        Ok(result?)
    }

    /// Compares each account's journal balance with the same balance derived from invoices,
    /// premiums, payments, refunds and commissions, for some tenants (hospitals or insurers; all with
    /// `None`).
    pub async fn reconcile(&self, hospitals: Option<&[Uuid]>) -> Result<Vec<Reconciled>, StoreError> {
        let filter = |column: &str| match hospitals {
            None => String::new(),
            Some([]) => " AND 1 = 0".to_owned(),
            Some(list) => {
                let ids: Vec<String> = (1..=list.len()).map(|i| format!("${i}")).collect();
                format!(" AND {column} IN ({})", ids.join(", "))
            }
        };
        let journal_sql = format!(
            "SELECT p.account, CAST(COALESCE(SUM(p.debit - p.credit), 0) AS BIGINT) FROM journal_postings p \
             JOIN journal_entries e ON e.id = p.entry_id WHERE 1 = 1{} GROUP BY p.account",
            filter("e.tenant_id")
        );
        let derived_sql = format!(
            "SELECT CAST(COALESCE(SUM(patient_share - paid_patient), 0) AS BIGINT), \
             CAST(COALESCE(SUM(insurer_share - paid_insurer), 0) AS BIGINT), \
             CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM invoices WHERE status IN ('issued', 'partially_paid', 'paid'){}",
            filter("hospital_id")
        );
        // The numbered parameters are reused in both branches of the union.
        let money_sql = format!(
            "SELECT method, CAST(COALESCE(SUM(amount), 0) AS BIGINT), CAST(COALESCE(SUM(credit), 0) AS BIGINT) \
             FROM payments WHERE 1 = 1{} GROUP BY method \
             UNION ALL SELECT p.method, CAST(COALESCE(SUM(-r.amount), 0) AS BIGINT), CAST(COALESCE(SUM(-r.from_credit), 0) AS BIGINT) \
             FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.status = 'completed'{} GROUP BY p.method \
             UNION ALL SELECT method, CAST(COALESCE(SUM(amount), 0) AS BIGINT), CAST(COALESCE(SUM(credit), 0) AS BIGINT) \
             FROM premium_payments WHERE 1 = 1{} GROUP BY method \
             UNION ALL SELECT p.method, CAST(COALESCE(SUM(-r.amount), 0) AS BIGINT), CAST(COALESCE(SUM(-r.from_credit), 0) AS BIGINT) \
             FROM premium_refunds r JOIN premium_payments p ON p.id = r.premium_payment_id WHERE r.status = 'completed'{} \
             GROUP BY p.method \
             UNION ALL SELECT method, CAST(COALESCE(SUM(-amount), 0) AS BIGINT), 0 \
             FROM commission_payouts WHERE 1 = 1{} GROUP BY method",
            filter("hospital_id"),
            filter("r.hospital_id"),
            filter("insurer_id"),
            filter("r.insurer_id"),
            filter("insurer_id")
        );
        let premium_sql = format!(
            "SELECT CAST(COALESCE(SUM(amount - paid), 0) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) \
             FROM premiums WHERE status <> 'void'{}",
            filter("insurer_id")
        );
        let commission_sql = format!(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM commissions WHERE status = 'earned'{}",
            filter("insurer_id")
        );
        let payout_sql = format!(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM commission_payouts WHERE 1 = 1{}",
            filter("insurer_id")
        );
        let ids = hospitals.unwrap_or_default();
        type Sums = (Vec<(String, i64)>, (i64, i64, i64), Vec<(String, i64, i64)>, (i64, i64), i64, i64);
        let (journal, derived, money, premiums, commissions, payouts): Sums = on_pool!(&self.db, |pool| async {
            let mut q1 = sqlx::query_as(sqlx::AssertSqlSafe(journal_sql));
            let mut q2 = sqlx::query_as(sqlx::AssertSqlSafe(derived_sql));
            let mut q3 = sqlx::query_as(sqlx::AssertSqlSafe(money_sql));
            let mut q4 = sqlx::query_as(sqlx::AssertSqlSafe(premium_sql));
            let mut q5 = sqlx::query_scalar(sqlx::AssertSqlSafe(commission_sql));
            let mut q6 = sqlx::query_scalar(sqlx::AssertSqlSafe(payout_sql));
            for id in ids {
                q1 = q1.bind(*id);
                q2 = q2.bind(*id);
                q3 = q3.bind(*id);
                q4 = q4.bind(*id);
                q5 = q5.bind(*id);
                q6 = q6.bind(*id);
            }
            Ok::<_, sqlx::Error>((
                q1.fetch_all(pool).await?,
                q2.fetch_one(pool).await?,
                q3.fetch_all(pool).await?,
                q4.fetch_one(pool).await?,
                q5.fetch_one(pool).await?,
                q6.fetch_one(pool).await?,
            ))
        }
        .await)?;
        let balance =
            |account: Account| journal.iter().find(|(a, _)| a == account.as_str()).map(|(_, b)| *b).unwrap_or(0);
        let mut derived_by = vec![
            (Account::PatientReceivable, derived.0),
            (Account::InsurerReceivable, derived.1),
            (Account::CareRevenue, -derived.2),
            (Account::PayerCredit, -money.iter().map(|(_, _, c)| c).sum::<i64>()),
            (Account::PremiumReceivable, premiums.0),
            (Account::PremiumIncome, -premiums.1),
            (Account::CommissionExpense, commissions),
            (Account::CommissionPayable, payouts - commissions),
        ];
        for account in [Account::Cash, Account::Card, Account::MobileMoney, Account::Bank] {
            let received: i64 = money
                .iter()
                .filter(|(m, _, _)| Method::parse(m).is_some_and(|m| m.account() == account))
                .map(|(_, amount, _)| amount)
                .sum();
            derived_by.push((account, received));
        }
        Ok(derived_by
            .into_iter()
            .map(|(account, derived)| {
                let journal = balance(account);
                Reconciled { account, journal, derived, agrees: journal == derived }
            })
            .collect())
    }

    /// Prices lines from the hospital's price list on a day (inside a transaction).
    pub async fn price_lines(
        &self,
        hospital: Uuid,
        day: Date,
        services: &[(String, u32, Option<String>, Option<String>)],
    ) -> Result<(Vec<Line>, Option<String>), StoreError> {
        let prices = self.prices(hospital, Some(day)).await?;
        let mut currency = None;
        let lines = services
            .iter()
            .map(|(code, quantity, category, description)| {
                let price = prices.iter().find(|p| &p.service_code == code);
                if let Some(p) = price {
                    currency.get_or_insert_with(|| p.currency.clone());
                }
                Line::priced(
                    code,
                    &price.map(|p| p.category.clone()).or_else(|| category.clone()).unwrap_or_default(),
                    &price
                        .map(|p| p.description.clone())
                        .or_else(|| description.clone())
                        .unwrap_or_else(|| code.clone()),
                    *quantity,
                    price.map(|p| p.unit_price),
                )
            })
            .collect();
        Ok((lines, currency))
    }
}

/// An invoice number: the day and the random last twelve hex digits of its id (the first
/// ones of a UUIDv7 are its time, shared by invoices of the same minute).
pub fn invoice_number(id: Uuid, day: Date) -> String {
    let hex = id.simple().to_string().to_uppercase();
    format!("INV-{}{:02}{:02}-{}", day.year(), day.month() as u8, day.day(), &hex[20..])
}

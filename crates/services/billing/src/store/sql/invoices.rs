//! `invoices`.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, FOR_NO_KEY_UPDATE, Pool, Tx, in_tenants};
use crate::domain::invoice::{Invoice, Line, Status};
use crate::store::rows::{INVOICE_COLUMNS, InvoiceRow};

fn invoices(rows: Vec<InvoiceRow>) -> Result<Vec<Invoice>, StoreError> {
    rows.into_iter().map(Invoice::try_from).collect()
}

pub(crate) async fn insert(tx: &mut Tx, invoice: &Invoice, created_by: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invoices (id, hospital_id, number, patient_id, encounter_id, member_number, currency, \
         date_of_service, status, lines, total, insurer_share, patient_share, paid_patient, paid_insurer, claim_id, \
         insurer_id, split_source, void_reason, version, created_by, created_at, issued_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
         $23)",
    )
    .bind(invoice.id)
    .bind(invoice.hospital_id)
    .bind(&invoice.number)
    .bind(invoice.patient_id)
    .bind(invoice.encounter_id)
    .bind(&invoice.member_number)
    .bind(&invoice.currency)
    .bind(invoice.date_of_service)
    .bind(invoice.status.as_str())
    .bind(Json(&invoice.lines))
    .bind(invoice.total)
    .bind(invoice.insurer_share)
    .bind(invoice.patient_share)
    .bind(invoice.paid_patient)
    .bind(invoice.paid_insurer)
    .bind(invoice.claim_id)
    .bind(invoice.insurer_id)
    .bind(invoice.split_source.as_str())
    .bind(&invoice.void_reason)
    .bind(invoice.version)
    .bind(created_by)
    .bind(invoice.created_at)
    .bind(invoice.issued_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Invoice>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
    let row: Option<InvoiceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Invoice::try_from).transpose()
}

/// The invoice, locked until the transaction ends: payments and refunds of one invoice apply
/// one after the other.
pub(crate) async fn for_update(tx: &mut Tx, id: Uuid) -> Result<Option<Invoice>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1{FOR_NO_KEY_UPDATE}");
    let row: Option<InvoiceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Invoice::try_from).transpose()
}

/// The id of the invoice drafted from an encounter, read in the transaction that would draft
/// another.
pub(crate) async fn id_of_encounter(tx: &mut Tx, encounter: Uuid) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM invoices WHERE encounter_id = $1")
        .bind(encounter)
        .fetch_optional(&mut **tx)
        .await?)
}

pub(crate) async fn of_encounter(pool: &Pool, encounter: Uuid) -> Result<Option<Invoice>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE encounter_id = $1");
    let row: Option<InvoiceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(encounter).fetch_optional(pool).await?;
    row.map(Invoice::try_from).transpose()
}

pub(crate) async fn by_number(pool: &Pool, hospital: Uuid, number: &str) -> Result<Option<Invoice>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE hospital_id = $1 AND number = $2");
    let row: Option<InvoiceRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hospital).bind(number).fetch_optional(pool).await?;
    row.map(Invoice::try_from).transpose()
}

/// Invoices of some hospitals (all with `None`), newest first.
pub(crate) async fn list(
    pool: &Pool,
    hospitals: Option<&[Uuid]>,
    status: Option<Status>,
    patient: Option<Uuid>,
    encounter: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Invoice>, StoreError> {
    let mut query = sqlx::QueryBuilder::<Db>::new(format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE 1 = 1"));
    if let Some(encounter) = encounter {
        query.push(" AND encounter_id = ").push_bind(encounter);
    }
    if let Some(status) = status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(patient) = patient {
        query.push(" AND patient_id = ").push_bind(patient);
    }
    in_tenants(&mut query, "hospital_id", hospitals);
    query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    invoices(query.build_query_as().fetch_all(pool).await?)
}

/// Invoices whose insurer share an insurer owes, at some hospitals (all with `None`), newest
/// first (the last thousand).
pub(crate) async fn of_insurer(
    pool: &Pool,
    insurer: Uuid,
    hospitals: Option<&[Uuid]>,
) -> Result<Vec<Invoice>, StoreError> {
    let mut query =
        sqlx::QueryBuilder::<Db>::new(format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE insurer_id = "));
    query.push_bind(insurer);
    in_tenants(&mut query, "hospital_id", hospitals);
    query.push(" ORDER BY created_at DESC, id DESC LIMIT 1000");
    invoices(query.build_query_as().fetch_all(pool).await?)
}

/// Issues the invoice if it is still at `version`; `false` when it changed meanwhile.
pub(crate) async fn mark_issued(tx: &mut Tx, id: Uuid, version: i64, at: OffsetDateTime) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invoices SET status = $1, issued_at = $2, version = version + 1 WHERE id = $3 AND version = $4",
    )
    .bind(Status::Issued.as_str())
    .bind(at)
    .bind(id)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Voids the invoice if it is still at `version` and unpaid; `false` otherwise.
pub(crate) async fn mark_void(tx: &mut Tx, id: Uuid, version: i64, reason: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invoices SET status = $1, void_reason = $2, version = version + 1 \
         WHERE id = $3 AND version = $4 AND paid_patient = 0 AND paid_insurer = 0",
    )
    .bind(Status::Void.as_str())
    .bind(reason)
    .bind(id)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The lines and shares a claim's adjudication gave, if the invoice is still at `version`.
pub(crate) async fn set_split(
    tx: &mut Tx,
    id: Uuid,
    version: i64,
    split: &crate::store::Split<'_>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invoices SET lines = $1, insurer_share = $2, patient_share = $3, claim_id = $4, split_source = $5, \
         insurer_id = $6, ex_gratia = $9, version = version + 1 WHERE id = $7 AND version = $8",
    )
    .bind(Json::<&[Line]>(split.lines))
    .bind(split.insurer_share)
    .bind(split.patient_share)
    .bind(split.claim_id)
    .bind(crate::domain::invoice::SplitSource::Claim.as_str())
    .bind(split.insurer_id)
    .bind(id)
    .bind(version)
    .bind(split.ex_gratia)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What is paid of each share, and the status that follows.
pub(crate) async fn set_paid(
    tx: &mut Tx,
    id: Uuid,
    paid_patient: i64,
    paid_insurer: i64,
    status: Status,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE invoices SET paid_patient = $1, paid_insurer = $2, status = $3, version = version + 1 WHERE id = $4",
    )
    .bind(paid_patient)
    .bind(paid_insurer)
    .bind(status.as_str())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

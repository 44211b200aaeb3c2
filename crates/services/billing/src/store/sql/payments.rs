//! `payments` (of invoices) and `premium_payments`. Each is unique per tenant and
//! Idempotency-Key: a repeat can never move money twice.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::invoice::Payment;
use crate::domain::premium::PremiumPayment;
use crate::store::Keyed;
use crate::store::rows::{PAYMENT_COLUMNS, PREMIUM_PAYMENT_COLUMNS, PaymentRow, PremiumPaymentRow};

pub(crate) async fn insert(tx: &mut Tx, payment: &Payment, keyed: &Keyed<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payments (id, hospital_id, invoice_id, payer, method, amount, applied, credit, external_reference, \
         idempotency_key, request_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(payment.id)
    .bind(payment.hospital_id)
    .bind(payment.invoice_id)
    .bind(payment.payer.as_str())
    .bind(payment.method.as_str())
    .bind(payment.amount)
    .bind(payment.applied)
    .bind(payment.credit)
    .bind(&payment.external_reference)
    .bind(keyed.key)
    .bind(keyed.request_hash)
    .bind(keyed.created_by)
    .bind(payment.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Payment>, StoreError> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
    let row: Option<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Payment::try_from).transpose()
}

/// The payment recorded under a hospital's Idempotency-Key.
pub(crate) async fn under_key(pool: &Pool, hospital: Uuid, key: &str) -> Result<Option<Payment>, StoreError> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE hospital_id = $1 AND idempotency_key = $2");
    let row: Option<PaymentRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hospital).bind(key).fetch_optional(pool).await?;
    row.map(Payment::try_from).transpose()
}

/// The payments of an invoice, oldest first.
pub(crate) async fn of_invoice(pool: &Pool, invoice: Uuid) -> Result<Vec<Payment>, StoreError> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE invoice_id = $1 ORDER BY created_at, id");
    let rows: Vec<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(invoice).fetch_all(pool).await?;
    rows.into_iter().map(Payment::try_from).collect()
}

pub(crate) async fn insert_premium(tx: &mut Tx, payment: &PremiumPayment, keyed: &Keyed<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO premium_payments (id, insurer_id, premium_id, method, amount, applied, credit, external_reference, \
         idempotency_key, request_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(payment.id)
    .bind(payment.insurer_id)
    .bind(payment.premium_id)
    .bind(payment.method.as_str())
    .bind(payment.amount)
    .bind(payment.applied)
    .bind(payment.credit)
    .bind(&payment.external_reference)
    .bind(keyed.key)
    .bind(keyed.request_hash)
    .bind(keyed.created_by)
    .bind(payment.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn premium_by_id(pool: &Pool, id: Uuid) -> Result<Option<PremiumPayment>, StoreError> {
    let sql = format!("SELECT {PREMIUM_PAYMENT_COLUMNS} FROM premium_payments WHERE id = $1");
    let row: Option<PremiumPaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(PremiumPayment::try_from).transpose()
}

/// The premium payment recorded under an insurer's Idempotency-Key.
pub(crate) async fn premium_under_key(
    pool: &Pool,
    insurer: Uuid,
    key: &str,
) -> Result<Option<PremiumPayment>, StoreError> {
    let sql = format!(
        "SELECT {PREMIUM_PAYMENT_COLUMNS} FROM premium_payments WHERE insurer_id = $1 AND idempotency_key = $2"
    );
    let row: Option<PremiumPaymentRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(insurer).bind(key).fetch_optional(pool).await?;
    row.map(PremiumPayment::try_from).transpose()
}

//! `refunds`, of care payments and of premium payments alike (`kind`).

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{FOR_NO_KEY_UPDATE, Pool, Tx};
use crate::domain::refund::{Kind, Refund, RefundStatus, Refundable, Taken};
use crate::store::rows::{REFUND_COLUMNS, RefundRow, RefundableRow, refundable};

/// The payment (care) or premium payment (premium) a refund would refund.
pub(crate) async fn refundable_payment(tx: &mut Tx, kind: Kind, id: Uuid) -> Result<Option<Refundable>, StoreError> {
    let (table, sql) = match kind {
        Kind::Care => {
            ("payments", "SELECT hospital_id, invoice_id, payer, method, applied, credit FROM payments WHERE id = $1")
        }
        // The holder pays a premium, as a patient pays their share.
        Kind::Premium => (
            "premium_payments",
            "SELECT insurer_id, premium_id, CAST('patient' AS TEXT), method, applied, credit FROM premium_payments WHERE id = $1",
        ),
    };
    let row: Option<RefundableRow> = sqlx::query_as(sql).bind(id).fetch_optional(&mut **tx).await?;
    row.map(|row| refundable(kind, table, id, row)).transpose()
}

/// What the refunds asked or completed of a payment took of it.
pub(crate) async fn taken(tx: &mut Tx, kind: Kind, payment: Uuid) -> Result<Taken, StoreError> {
    let (from_credit, from_applied): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(from_credit), 0) AS BIGINT), CAST(COALESCE(SUM(from_applied), 0) AS BIGINT) \
         FROM refunds WHERE kind = $1 AND payment_id = $2 AND status IN ($3, $4)",
    )
    .bind(kind.as_str())
    .bind(payment)
    .bind(RefundStatus::Requested.as_str())
    .bind(RefundStatus::Completed.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Ok(Taken { from_credit, from_applied })
}

pub(crate) async fn insert(tx: &mut Tx, r: &Refund) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refunds (id, kind, tenant_id, payment_id, owed_id, amount, from_credit, from_applied, reason, \
         status, requested_by, decided_by, decision_note, created_at, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(r.id)
    .bind(r.kind.as_str())
    .bind(r.tenant_id)
    .bind(r.payment_id)
    .bind(r.owed_id)
    .bind(r.amount)
    .bind(r.from_credit)
    .bind(r.from_applied)
    .bind(&r.reason)
    .bind(r.status.as_str())
    .bind(r.requested_by)
    .bind(r.decided_by)
    .bind(&r.decision_note)
    .bind(r.created_at)
    .bind(r.decided_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, kind: Kind, id: Uuid) -> Result<Option<Refund>, StoreError> {
    let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 AND kind = $2");
    let row: Option<RefundRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(kind.as_str()).fetch_optional(pool).await?;
    row.map(Refund::try_from).transpose()
}

/// The refund, locked until the transaction ends.
pub(crate) async fn for_update(tx: &mut Tx, kind: Kind, id: Uuid) -> Result<Option<Refund>, StoreError> {
    let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 AND kind = $2{FOR_NO_KEY_UPDATE}");
    let row: Option<RefundRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(kind.as_str()).fetch_optional(&mut **tx).await?;
    row.map(Refund::try_from).transpose()
}

/// Records the decision on a refund still requested; `false` when it was decided meanwhile.
pub(crate) async fn decide(
    tx: &mut Tx,
    id: Uuid,
    status: RefundStatus,
    by: Uuid,
    note: Option<&str>,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE refunds SET status = $1, decided_by = $2, decision_note = $3, decided_at = $4 \
         WHERE id = $5 AND status = $6",
    )
    .bind(status.as_str())
    .bind(by)
    .bind(note)
    .bind(at)
    .bind(id)
    .bind(RefundStatus::Requested.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

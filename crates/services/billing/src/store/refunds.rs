//! Refunds: a billing clerk requests, a second person approves; only the approval moves money
//! (reversing the payment's ledger entries, credit first).

use medcov_store::{WritePool, on_pool, write_outbox};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, BillingStore, Event, Invoice, InvoiceRow, Payment, StoreError, write_entry};
use super::{INVOICE_COLUMNS, PAYMENT_COLUMNS};
use crate::domain::invoice::{self, Status};
use crate::domain::ledger::{self, Account, Method};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Refund {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub payment_id: Uuid,
    pub invoice_id: Uuid,
    pub amount: i64,
    /// Taken from the payment's credit (the overpaid part).
    pub from_credit: i64,
    /// Taken from what the payment settled on the invoice (owed again).
    pub from_applied: i64,
    pub reason: String,
    /// `requested`, `completed` or `rejected`.
    pub status: String,
    pub requested_by: Uuid,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
}

const REFUND_COLUMNS: &str = "id, hospital_id, payment_id, invoice_id, amount, from_credit, from_applied, reason, status, \
     requested_by, decided_by, decision_note, created_at, decided_at";

impl BillingStore {
    /// A payment and its hospital.
    pub async fn payment(&self, id: Uuid) -> Result<Option<(Payment, Uuid)>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
        let payment: Option<Payment> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        let Some(payment) = payment else { return Ok(None) };
        let hospital: Uuid = on_pool!(&self.db, |pool| {
            sqlx::query_scalar("SELECT hospital_id FROM payments WHERE id = $1").bind(id).fetch_one(pool).await
        })?;
        Ok(Some((payment, hospital)))
    }

    /// Requests a refund of part or all of a payment; nothing moves until it is approved.
    /// Refused when more is asked than the payment has left after other refunds.
    pub async fn request_refund(
        &self,
        payment: Uuid,
        amount: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<Refund, StoreError> {
        let id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let row: Option<(Uuid, Uuid, i64, i64)> =
                sqlx::query_as("SELECT hospital_id, invoice_id, applied, credit FROM payments WHERE id = $1")
                    .bind(payment)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (hospital, invoice, applied, credit) = row.ok_or(StoreError::NotFound("no such payment"))?;
            // Payments of one invoice are serialised by its row.
            sqlx::query("UPDATE invoices SET version = version WHERE id = $1").bind(invoice).execute(&mut *tx).await?;
            let (taken_credit, taken_applied): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(from_credit), 0) AS BIGINT), CAST(COALESCE(SUM(from_applied), 0) AS BIGINT) \
                 FROM refunds WHERE payment_id = $1 AND status IN ('requested', 'completed')",
            )
            .bind(payment)
            .fetch_one(&mut *tx)
            .await?;
            let Some((from_credit, from_applied)) = invoice::refund_split(applied - taken_applied, credit - taken_credit, amount)
            else {
                return Err(StoreError::Invalid {
                    field: "amount".into(),
                    reason: format!(
                        "must be 1 to {} (what the payment has left after other refunds)",
                        applied - taken_applied + credit - taken_credit
                    ),
                });
            };
            sqlx::query(
                "INSERT INTO refunds (id, hospital_id, payment_id, invoice_id, amount, from_credit, from_applied, reason, status, \
                 requested_by, decided_by, decision_note, created_at, decided_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, NULL, NULL, $10, NULL)",
            )
            .bind(id)
            .bind(hospital)
            .bind(payment)
            .bind(invoice)
            .bind(amount)
            .bind(from_credit)
            .bind(from_applied)
            .bind(reason)
            .bind(actor.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.refund(id).await?.ok_or(StoreError::NotFound("no such refund"))
    }

    pub async fn refund(&self, id: Uuid) -> Result<Option<Refund>, StoreError> {
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?)
    }

    /// Approves (pays out) or rejects a requested refund. The approver must not be the person
    /// who asked.
    pub async fn decide_refund(
        &self,
        id: Uuid,
        approve: bool,
        note: Option<&str>,
        actor: &Actor,
    ) -> Result<Refund, StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<(), StoreError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1");
            let refund: Refund = sqlx::query_as::<_, Refund>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("no such refund"))?;
            if refund.status != "requested" {
                return Err(StoreError::Conflict(format!("the refund is already {}", refund.status)));
            }
            if refund.requested_by == actor.user_id {
                return Err(StoreError::Conflict("a refund is approved by someone other than who asked for it".into()));
            }
            sqlx::query("UPDATE invoices SET version = version WHERE id = $1").bind(refund.invoice_id).execute(&mut *tx).await?;
            let done = sqlx::query(
                "UPDATE refunds SET status = $1, decided_by = $2, decision_note = $3, decided_at = $4 WHERE id = $5 AND status = 'requested'",
            )
            .bind(if approve { "completed" } else { "rejected" })
            .bind(actor.user_id)
            .bind(note)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the refund was decided meanwhile".into()));
            }
            if approve {
                let (payer, method): (String, String) = sqlx::query_as("SELECT payer, method FROM payments WHERE id = $1")
                    .bind(refund.payment_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
                let invoice = Invoice::from(
                    sqlx::query_as::<_, InvoiceRow>(sqlx::AssertSqlSafe(sql)).bind(refund.invoice_id).fetch_one(&mut *tx).await?,
                );
                let insurer = payer == "insurer";
                let (paid_patient, paid_insurer) = if insurer {
                    (invoice.paid_patient, invoice.paid_insurer - refund.from_applied)
                } else {
                    (invoice.paid_patient - refund.from_applied, invoice.paid_insurer)
                };
                let status = if invoice.status == Status::Void {
                    Status::Void
                } else {
                    invoice::status(invoice.patient_share, invoice.insurer_share, paid_patient, paid_insurer)
                };
                sqlx::query("UPDATE invoices SET paid_patient = $1, paid_insurer = $2, status = $3, version = version + 1 WHERE id = $4")
                    .bind(paid_patient)
                    .bind(paid_insurer)
                    .bind(status.as_str())
                    .bind(invoice.id)
                    .execute(&mut *tx)
                    .await?;
                let receivable = if insurer { Account::InsurerReceivable } else { Account::PatientReceivable };
                let method = Method::parse(&method).unwrap_or(Method::Cash);
                let party = (!insurer).then_some(invoice.patient_id);
                write_entry!(tx, invoice.hospital_id, ledger::refund_paid(method, receivable, refund.from_applied, refund.from_credit), Some(invoice.id), Some(refund.payment_id), party)?;
                let event = Event {
                    event_type: "billing.refund_completed.v1",
                    aggregate_type: "refund",
                    aggregate_id: refund.id,
                    tenant_id: invoice.hospital_id,
                    payload: serde_json::json!({"refund_id": refund.id, "payment_id": refund.payment_id, "invoice_id": invoice.id,
                        "amount": refund.amount, "from_credit": refund.from_credit, "from_applied": refund.from_applied,
                        "method": method.as_str(), "currency": invoice.currency, "invoice_status": status}),
                };
                write_outbox!(tx, actor, event)?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await
        });
        result?;
        self.refund(id).await?.ok_or(StoreError::NotFound("no such refund"))
    }
}

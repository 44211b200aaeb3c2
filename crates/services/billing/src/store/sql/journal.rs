//! `journal_entries` and `journal_postings`.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Tx;
use crate::domain::ledger::{About, Entry};

/// Writes an entry with its postings, numbered in order.
pub(crate) async fn append(
    tx: &mut Tx,
    about: &About<'_>,
    entry: &Entry,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO journal_entries (id, tenant_id, at, memo, invoice_id, payment_id, currency) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(about.tenant)
    .bind(at)
    .bind(&entry.memo)
    .bind(about.invoice)
    .bind(about.payment)
    .bind(about.currency)
    .execute(&mut **tx)
    .await?;
    for (line_no, posting) in (0_i32..).zip(&entry.postings) {
        sqlx::query(
            "INSERT INTO journal_postings (entry_id, line_no, account, party_id, debit, credit) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(line_no)
        .bind(posting.account.as_str())
        .bind(about.party)
        .bind(posting.debit)
        .bind(posting.credit)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

//! The `idempotency_records` table's statements (see [`crate::keyed`]).

use time::OffsetDateTime;

use super::{Pool, Tx};
use crate::StoreError;
use crate::keyed::Record;

type Row = (Vec<u8>, Option<Vec<u8>>, OffsetDateTime);

fn record((fingerprint, answer, created_at): Row) -> Record {
    Record { fingerprint, answer, created_at }
}

const SELECT: &str = "SELECT fingerprint, answer, created_at FROM idempotency_records WHERE key = $1";

/// The record under `key`, read on the pool.
pub async fn find(pool: &Pool, key: &str) -> Result<Option<Record>, StoreError> {
    let row: Option<Row> = sqlx::query_as(SELECT).bind(key).fetch_optional(pool).await?;
    Ok(row.map(record))
}

/// The record under `key`, read in `tx` (after taking the key's lock).
pub async fn find_in(tx: &mut Tx, key: &str) -> Result<Option<Record>, StoreError> {
    let row: Option<Row> = sqlx::query_as(SELECT).bind(key).fetch_optional(&mut **tx).await?;
    Ok(row.map(record))
}

/// Writes the record under `key` in `tx`, replacing one made before `expired`: `false` when a
/// current one is there (another request under the key committed).
pub async fn put(
    tx: &mut Tx,
    key: &str,
    fingerprint: &[u8],
    answer: Option<&[u8]>,
    expired: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO idempotency_records (key, fingerprint, answer, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, answer = excluded.answer, \
         created_at = excluded.created_at WHERE idempotency_records.created_at < $5",
    )
    .bind(key)
    .bind(fingerprint)
    .bind(answer)
    .bind(OffsetDateTime::now_utc())
    .bind(expired)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Adds the answer to a record committed without it.
pub async fn answer(pool: &Pool, key: &str, answer: &[u8]) -> Result<(), StoreError> {
    sqlx::query("UPDATE idempotency_records SET answer = $2 WHERE key = $1 AND answer IS NULL")
        .bind(key)
        .bind(answer)
        .execute(pool)
        .await?;
    Ok(())
}

/// Adds the answer to a record committed without it, in `tx` (the request's last transaction).
pub async fn answer_in(tx: &mut Tx, key: &str, answer: &[u8]) -> Result<(), StoreError> {
    sqlx::query("UPDATE idempotency_records SET answer = $2 WHERE key = $1 AND answer IS NULL")
        .bind(key)
        .bind(answer)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes a record still without its answer, in `tx`.
pub async fn forget_in(tx: &mut Tx, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM idempotency_records WHERE key = $1 AND answer IS NULL")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes a record still without its answer.
pub async fn forget(pool: &Pool, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM idempotency_records WHERE key = $1 AND answer IS NULL").bind(key).execute(pool).await?;
    Ok(())
}

/// Deletes the records made before `before`; how many.
pub async fn purge(pool: &Pool, before: OffsetDateTime) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM idempotency_records WHERE created_at < $1").bind(before).execute(pool).await?;
    Ok(done.rows_affected())
}

//! The inbox table's statements.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Tx;
use crate::StoreError;

/// Records `event` as handled by `consumer`; `false` when it was already.
pub async fn record(tx: &mut Tx, consumer: &str, event: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event)
    .bind(OffsetDateTime::now_utc())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

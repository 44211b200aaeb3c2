//! Statements on `dead_letters` and `dead_letter_discards`.

use medcov_store::StoreError;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::{DeadLetter, Discarded, Envelope};

/// A kept dead letter: the letter (its id is the event's) and the epoch the bus had it under.
type Row = (String, String, String, Json<Envelope>, String, i64, OffsetDateTime, String);

/// A discard: stream, group, entry, envelope, error, reason and when.
type DiscardRow = (String, String, String, Json<Envelope>, String, String, OffsetDateTime);

/// Keeps `letter` under `epoch`; an event of the group already kept is replaced (it died again).
pub(crate) async fn keep(tx: &mut Tx, letter: &DeadLetter, epoch: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (stream, grp, event_id, entry, envelope, error, deliveries, died_at, epoch) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (stream, grp, event_id) DO UPDATE SET \
         entry = excluded.entry, envelope = excluded.envelope, error = excluded.error, \
         deliveries = excluded.deliveries, died_at = excluded.died_at, epoch = excluded.epoch",
    )
    .bind(&letter.stream)
    .bind(&letter.group)
    .bind(letter.envelope.id)
    .bind(&letter.entry)
    .bind(Json(&letter.envelope))
    .bind(&letter.error)
    .bind(letter.deliveries as i64)
    .bind(letter.at)
    .bind(epoch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The group's kept dead letters, oldest first, each with its epoch.
pub(crate) async fn list(pool: &Pool, stream: &str, group: &str) -> Result<Vec<(DeadLetter, String)>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT stream, grp, entry, envelope, error, deliveries, died_at, epoch FROM dead_letters \
         WHERE stream = $1 AND grp = $2 ORDER BY died_at, event_id",
    )
    .bind(stream)
    .bind(group)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(stream, group, entry, envelope, error, deliveries, at, epoch)| {
            let letter = DeadLetter {
                id: envelope.0.id.to_string(),
                stream,
                group,
                entry,
                envelope: envelope.0,
                error,
                deliveries: deliveries.max(0) as u64,
                at,
            };
            (letter, epoch)
        })
        .collect())
}

/// Records that the bus has the dead letter under `epoch`.
pub(crate) async fn set_epoch(
    tx: &mut Tx,
    stream: &str,
    group: &str,
    event: Uuid,
    epoch: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE dead_letters SET epoch = $1 WHERE stream = $2 AND grp = $3 AND event_id = $4")
        .bind(epoch)
        .bind(stream)
        .bind(group)
        .bind(event)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forgets a dead letter the group has handled since; whether it was kept.
pub(crate) async fn resolve(tx: &mut Tx, stream: &str, group: &str, event: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM dead_letters WHERE stream = $1 AND grp = $2 AND event_id = $3")
        .bind(stream)
        .bind(group)
        .bind(event)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Moves a kept dead letter to the discard log with `reason`; whether it was kept.
pub(crate) async fn discard(
    tx: &mut Tx,
    stream: &str,
    group: &str,
    event: Uuid,
    reason: &str,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let row: Option<(String, Json<serde_json::Value>, String, i64, OffsetDateTime)> = sqlx::query_as(
        "DELETE FROM dead_letters WHERE stream = $1 AND grp = $2 AND event_id = $3 \
         RETURNING entry, envelope, error, deliveries, died_at",
    )
    .bind(stream)
    .bind(group)
    .bind(event)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((entry, envelope, error, deliveries, died_at)) = row else { return Ok(false) };
    sqlx::query(
        "INSERT INTO dead_letter_discards (id, stream, grp, event_id, entry, envelope, error, deliveries, died_at, \
         reason, discarded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(Uuid::now_v7())
    .bind(stream)
    .bind(group)
    .bind(event)
    .bind(entry)
    .bind(envelope)
    .bind(error)
    .bind(deliveries)
    .bind(died_at)
    .bind(reason)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// Whether an operator discarded the event as a dead letter of the group.
pub(crate) async fn was_discarded(pool: &Pool, stream: &str, group: &str, event: Uuid) -> Result<bool, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dead_letter_discards WHERE stream = $1 AND grp = $2 AND event_id = $3",
    )
    .bind(stream)
    .bind(group)
    .bind(event)
    .fetch_one(pool)
    .await?;
    Ok(count > 0)
}

/// The group's discard log, oldest first.
pub(crate) async fn discards(pool: &Pool, stream: &str, group: &str) -> Result<Vec<Discarded>, StoreError> {
    let rows: Vec<DiscardRow> = sqlx::query_as(
        "SELECT stream, grp, entry, envelope, error, reason, discarded_at FROM dead_letter_discards \
         WHERE stream = $1 AND grp = $2 ORDER BY discarded_at, id",
    )
    .bind(stream)
    .bind(group)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(stream, group, entry, envelope, error, reason, at)| Discarded {
            stream,
            group,
            entry,
            envelope: envelope.0,
            error,
            reason,
            at,
        })
        .collect())
}

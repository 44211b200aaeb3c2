//! The outbox table's statements.

use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::StoreError;
use crate::outbox::{Actor, Event, Recorded};

pub async fn insert(tx: &mut Tx, actor: &Actor, event: &Event) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbox (id, event_type, aggregate_type, aggregate_id, tenant_id, occurred_at, correlation_id, \
         causation_id, traceparent, payload, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
    )
    .bind(id)
    .bind(event.event_type)
    .bind(event.aggregate_type)
    .bind(event.aggregate_id)
    .bind(event.tenant_id)
    .bind(OffsetDateTime::now_utc())
    .bind(&actor.request_id)
    .bind(&actor.causation_id)
    .bind(&actor.traceparent)
    .bind(Json(&event.payload))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Every event, oldest first; only the unpublished ones when `unpublished`.
pub async fn list(pool: &Pool, unpublished: bool) -> Result<Vec<Recorded>, StoreError> {
    let rows: Vec<(String, Uuid, Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT event_type, aggregate_id, payload FROM outbox WHERE ($1 = FALSE OR published_at IS NULL) ORDER BY id",
    )
    .bind(unpublished)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(event_type, aggregate_id, payload)| Recorded { event_type, aggregate_id, payload: payload.0 })
        .collect())
}

/// How many rows wait to be relayed, and when the oldest of them occurred.
pub async fn backlog(pool: &Pool) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
    Ok(sqlx::query_as("SELECT COUNT(*), MIN(occurred_at) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await?)
}

/// (rows, unpublished rows) of the outbox.
pub async fn counts(pool: &Pool) -> Result<(i64, i64), StoreError> {
    let (rows, published): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(published_at) FROM outbox").fetch_one(pool).await?;
    Ok((rows, rows - published))
}

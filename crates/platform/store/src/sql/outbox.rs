//! The outbox table's statements.

use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx, Writes};
use crate::StoreError;
use crate::outbox::{Actor, Event, Recorded};

pub async fn insert(tx: &mut Tx, actor: &Actor, event: &Event) -> Result<Uuid, StoreError> {
    let mut writes = Writes::default();
    let id = gather_insert(&mut writes, actor, event);
    writes.run(tx).await?;
    Ok(id)
}

/// [`insert`] gathered in `writes`.
pub fn gather_insert(writes: &mut Writes, actor: &Actor, event: &Event) -> Uuid {
    let id = Uuid::now_v7();
    writes
        .statement(
            "INSERT INTO outbox (id, event_type, aggregate_type, aggregate_id, tenant_id, occurred_at, \
             correlation_id, causation_id, traceparent, payload, published_at) ",
        )
        .push_values([event], |mut row, event| {
            row.push_bind(id)
                .push_bind(event.event_type)
                .push_bind(event.aggregate_type)
                .push_bind(event.aggregate_id)
                .push_bind(event.tenant_id)
                .push_bind(OffsetDateTime::now_utc())
                .push_bind(&actor.request_id)
                .push_bind(&actor.causation_id)
                .push_bind(&actor.traceparent)
                .push_bind(Json(&event.payload))
                .push("NULL");
        });
    id
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

//! The relay's statements on the outbox.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, FOR_UPDATE, SKIP_LOCKED};
use crate::relay::{COLUMNS, OutboxRow};
use medcov_store::StoreError;

/// Up to `batch` unpublished rows, oldest first. Inside a transaction on PostgreSQL they stay
/// locked until it ends, and rows another relay holds are skipped.
pub(crate) async fn unpublished<'c, E>(on: E, batch: i64) -> Result<Vec<OutboxRow>, StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    let sql = format!(
        "SELECT {COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1{FOR_UPDATE}{SKIP_LOCKED}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(batch).fetch_all(on).await?)
}

pub(crate) async fn mark_published<'c, E>(on: E, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    sqlx::query("UPDATE outbox SET published_at = $1 WHERE id = $2").bind(at).bind(id).execute(on).await?;
    Ok(())
}

/// The event log: every event, oldest first, filtered.
pub(crate) async fn log(pool: &super::Pool, filter: &crate::log::Filter<'_>) -> Result<Vec<OutboxRow>, StoreError> {
    let mut query = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS}, published_at FROM outbox WHERE 1 = 1"));
    if let Some(aggregate) = filter.aggregate_id {
        query.push(" AND aggregate_id = ").push_bind(aggregate);
    }
    if let Some(event_type) = filter.event_type {
        query.push(" AND event_type = ").push_bind(event_type.to_owned());
    }
    if let Some(since) = filter.since {
        query.push(" AND occurred_at >= ").push_bind(since);
    }
    if let Some(after) = filter.after {
        query.push(" AND id > ").push_bind(after);
    }
    if let Some(tenants) = filter.tenants {
        query.push(" AND tenant_id IN (");
        let mut list = query.separated(", ");
        for tenant in tenants {
            list.push_bind(*tenant);
        }
        query.push(")");
    }
    query.push(" ORDER BY id LIMIT ").push_bind(filter.limit);
    Ok(query.build_query_as().fetch_all(pool).await?)
}

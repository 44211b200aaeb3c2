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

/// Marks the rows `ids` published, in one statement.
pub(crate) async fn mark_all_published<'c, E>(on: E, ids: &[Uuid], at: OffsetDateTime) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    if ids.is_empty() {
        return Ok(());
    }
    let mut query = sqlx::QueryBuilder::new("UPDATE outbox SET published_at = ");
    query.push_bind(at).push(" WHERE id IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(")");
    query.build().execute(on).await?;
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

/// A value of the service's `medcov_meta`.
pub(crate) async fn meta<'c, E>(on: E, key: &str) -> Result<Option<String>, StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    Ok(sqlx::query_scalar("SELECT value FROM medcov_meta WHERE key = $1").bind(key).fetch_optional(on).await?)
}

/// Sets a value of `medcov_meta`.
pub(crate) async fn set_meta<'c, E>(on: E, key: &str, value: &str) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    sqlx::query(
        "INSERT INTO medcov_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(on)
    .await?;
    Ok(())
}

/// Sets a value of `medcov_meta` only while it is still `from` (or missing, for `None`):
/// whether it did. Of relays racing to the same change, one wins.
pub(crate) async fn swap_meta<'c, E>(on: E, key: &str, from: Option<&str>, to: &str) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    let done = match from {
        Some(from) => {
            sqlx::query("UPDATE medcov_meta SET value = $1 WHERE key = $2 AND value = $3")
                .bind(to)
                .bind(key)
                .bind(from)
                .execute(on)
                .await?
        }
        None => {
            sqlx::query("INSERT INTO medcov_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(to)
                .execute(on)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Marks rows published at or after `since` (every published row for `None`) unpublished, so
/// the relay publishes them again; returns how many.
pub(crate) async fn unpublish_since<'c, E>(on: E, since: Option<OffsetDateTime>) -> Result<u64, StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    let done = match since {
        Some(since) => {
            sqlx::query("UPDATE outbox SET published_at = NULL WHERE published_at >= $1")
                .bind(since)
                .execute(on)
                .await?
        }
        None => sqlx::query("UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL").execute(on).await?,
    };
    Ok(done.rows_affected())
}

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

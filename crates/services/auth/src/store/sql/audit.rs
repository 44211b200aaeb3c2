//! `audit_log`: append-only (triggers refuse updates and deletes).

use sqlx::types::Json;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::audit::AuditEntry;
use crate::store::rows::AuditRow;
use medcov_store::StoreError;

pub(crate) async fn insert(tx: &mut Tx, entry: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, event, user_id, actor_id, request_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.id)
    .bind(entry.at)
    .bind(&entry.event)
    .bind(entry.user_id)
    .bind(entry.actor_id)
    .bind(&entry.request_id)
    .bind(Json(&entry.detail))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn list(
    pool: &Pool,
    user: Option<Uuid>,
    event: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT id, at, event, user_id, actor_id, request_id, detail FROM audit_log WHERE 1 = 1",
    );
    if let Some(user) = user {
        query.push(" AND user_id = ").push_bind(user);
    }
    if let Some(event) = event {
        query.push(" AND event = ").push_bind(event.to_owned());
    }
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<AuditRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

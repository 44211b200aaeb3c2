//! `premiums`: one per policy period.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, FOR_NO_KEY_UPDATE, Pool, Tx};
use crate::domain::invoice::Status;
use crate::domain::premium::Premium;
use crate::store::rows::{PREMIUM_COLUMNS, PremiumRow};

pub(crate) async fn insert(tx: &mut Tx, premium: &Premium) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO premiums (id, insurer_id, policy_id, plan_id, holder_id, agent_id, number, amount, currency, \
         status, paid, due_date, void_reason, version, created_at, paid_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $15)",
    )
    .bind(premium.id)
    .bind(premium.insurer_id)
    .bind(premium.policy_id)
    .bind(premium.plan_id)
    .bind(premium.holder_id)
    .bind(premium.agent_id)
    .bind(&premium.number)
    .bind(premium.amount)
    .bind(&premium.currency)
    .bind(premium.status.as_str())
    .bind(premium.paid)
    .bind(premium.due_date)
    .bind(&premium.void_reason)
    .bind(premium.created_at)
    .bind(premium.paid_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Premium>, StoreError> {
    let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE id = $1");
    let row: Option<PremiumRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Premium::try_from).transpose()
}

/// The premium, locked until the transaction ends: its payments and refunds apply one after
/// the other.
pub(crate) async fn for_update(tx: &mut Tx, id: Uuid) -> Result<Option<Premium>, StoreError> {
    let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE id = $1{FOR_NO_KEY_UPDATE}");
    let row: Option<PremiumRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Premium::try_from).transpose()
}

/// A policy's premium, locked until the transaction ends.
pub(crate) async fn of_policy(tx: &mut Tx, policy: Uuid) -> Result<Option<Premium>, StoreError> {
    let sql = format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE policy_id = $1{FOR_NO_KEY_UPDATE}");
    let row: Option<PremiumRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(policy).fetch_optional(&mut **tx).await?;
    row.map(Premium::try_from).transpose()
}

/// Premiums of an insurer (all with `None`), with a status (any with `None`), newest first.
pub(crate) async fn list(
    pool: &Pool,
    insurer: Option<Uuid>,
    status: Option<&str>,
    policy: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Premium>, StoreError> {
    let mut query = sqlx::QueryBuilder::<Db>::new(format!("SELECT {PREMIUM_COLUMNS} FROM premiums WHERE 1 = 1"));
    if let Some(policy) = policy {
        query.push(" AND policy_id = ").push_bind(policy);
    }
    if let Some(insurer) = insurer {
        query.push(" AND insurer_id = ").push_bind(insurer);
    }
    if let Some(status) = status {
        query.push(" AND status = ").push_bind(status.to_owned());
    }
    query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows: Vec<PremiumRow> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Premium::try_from).collect()
}

/// What is paid, the status that follows, and when it was paid in full (kept when `None`).
pub(crate) async fn set_paid(
    tx: &mut Tx,
    id: Uuid,
    paid: i64,
    status: Status,
    paid_at: Option<OffsetDateTime>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE premiums SET paid = $1, status = $2, paid_at = COALESCE($3, paid_at), version = version + 1 \
         WHERE id = $4",
    )
    .bind(paid)
    .bind(status.as_str())
    .bind(paid_at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn void(tx: &mut Tx, id: Uuid, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE premiums SET status = $1, void_reason = $2, version = version + 1 WHERE id = $3")
        .bind(Status::Void.as_str())
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

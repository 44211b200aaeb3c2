//! `users` and `user_tenants`.

use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::credentials::username_key;
use crate::domain::lockout::Failures;
use crate::domain::user::User;
use crate::store::rows::{USER_COLUMNS, UserRow, kind_word};
use medcov_store::StoreError;

pub(crate) async fn count(pool: &Pool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await?)
}

pub(crate) async fn insert(tx: &mut Tx, user: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, username, username_key, display_name, password_hash, kind, roles, scope, \
         active, failed_logins, locked_until, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL, $10, $11, $11)",
    )
    .bind(user.id)
    .bind(&user.username)
    .bind(username_key(&user.username))
    .bind(&user.display_name)
    .bind(&user.password_hash)
    .bind(kind_word(user.kind))
    .bind(Json(&user.roles))
    .bind(Json(&user.scope))
    .bind(user.active)
    .bind(user.version)
    .bind(user.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the tenants a user belongs to.
pub(crate) async fn set_tenants(tx: &mut Tx, user: Uuid, tenants: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_tenants WHERE user_id = $1").bind(user).execute(&mut **tx).await?;
    for tenant in tenants {
        sqlx::query("INSERT INTO user_tenants (user_id, tenant) VALUES ($1, $2)")
            .bind(user)
            .bind(tenant)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(User::try_from).transpose()
}

pub(crate) async fn by_username_key(pool: &Pool, key: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(pool).await?;
    row.map(User::try_from).transpose()
}

pub(crate) async fn list(
    pool: &Pool,
    tenants: Option<&[String]>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let mut query = sqlx::QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u WHERE 1 = 1"));
    if let Some(after) = after {
        query.push(" AND u.id > ").push_bind(after);
    }
    if let Some(tenants) = tenants {
        query.push(" AND EXISTS (SELECT 1 FROM user_tenants t WHERE t.user_id = u.id AND t.tenant IN (");
        let mut list = query.separated(", ");
        for tenant in tenants {
            list.push_bind(tenant.clone());
        }
        query.push("))");
    }
    query.push(" ORDER BY u.id LIMIT ").push_bind(limit);
    let rows: Vec<UserRow> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(User::try_from).collect()
}

pub(crate) async fn update(
    tx: &mut Tx,
    user: &User,
    expected_version: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE users SET display_name = $1, roles = $2, scope = $3, version = version + 1, updated_at = $4 \
         WHERE id = $5 AND version = $6",
    )
    .bind(&user.display_name)
    .bind(Json(&user.roles))
    .bind(Json(&user.scope))
    .bind(now)
    .bind(user.id)
    .bind(expected_version)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub(crate) async fn deactivate(tx: &mut Tx, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE users SET active = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND active = $4",
    )
    .bind(false)
    .bind(now)
    .bind(id)
    .bind(true)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub(crate) async fn set_failures(tx: &mut Tx, id: Uuid, failures: Failures) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3")
        .bind(i64::from(failures.count))
        .bind(failures.locked_until)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn set_password(tx: &mut Tx, id: Uuid, hash: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, version = version + 1, updated_at = $2, failed_logins = 0, \
         locked_until = NULL WHERE id = $3",
    )
    .bind(hash)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

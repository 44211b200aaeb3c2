//! `refresh_tokens`: sessions (families) of single-use refresh tokens, kept as hashes.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::user::RefreshToken;
use crate::store::rows::RefreshRow;
use medcov_store::StoreError;

pub(crate) async fn insert(tx: &mut Tx, token: &RefreshToken, hash: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at, used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
    )
    .bind(token.id)
    .bind(token.family_id)
    .bind(token.user_id)
    .bind(hash)
    .bind(OffsetDateTime::now_utc())
    .bind(token.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_hash(pool: &Pool, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(RefreshToken::from))
}

pub(crate) async fn mark_used(tx: &mut Tx, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
    let marked =
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    Ok(marked.rows_affected() == 1)
}

pub(crate) async fn revoke_family(tx: &mut Tx, family: Uuid, now: OffsetDateTime) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn revoke_user(tx: &mut Tx, user: Uuid, now: OffsetDateTime) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

//! `signing_keys`: the Ed25519 keys that sign access tokens.

use time::OffsetDateTime;

use super::{Pool, Tx};
use crate::domain::user::KeyRecord;
use crate::store::rows::KeyRow;
use medcov_store::StoreError;

pub(crate) async fn all(pool: &Pool) -> Result<Vec<KeyRecord>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, private_key, active, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(KeyRecord::from).collect())
}

pub(crate) async fn retire_all(tx: &mut Tx, now: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query("UPDATE signing_keys SET active = $1, retired_at = $2 WHERE active = $3")
        .bind(false)
        .bind(now)
        .bind(true)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn insert(tx: &mut Tx, kid: &str, pkcs8: &[u8], now: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_key, active, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(kid)
    .bind(pkcs8)
    .bind(true)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn set_private(tx: &mut Tx, kid: &str, private_key: &[u8]) -> Result<(), StoreError> {
    sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
        .bind(private_key)
        .bind(kid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

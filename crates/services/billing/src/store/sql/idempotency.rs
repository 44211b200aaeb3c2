//! `idempotency_keys`: keys held while their request runs, and marked done in the
//! transaction that moves the money.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::idempotency::{HeldKey, KeyState};
use crate::store::rows::HeldKeyRow;

pub(crate) async fn held(tx: &mut Tx, tenant: Uuid, key: &str) -> Result<Option<HeldKey>, StoreError> {
    let row: Option<HeldKeyRow> = sqlx::query_as(
        "SELECT request_hash, state, started_at FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(HeldKey::try_from).transpose()
}

/// Holds a new key; a key held meanwhile by a concurrent request is a duplicate.
pub(crate) async fn hold(
    tx: &mut Tx,
    tenant: Uuid,
    key: &str,
    hash: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, state, started_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(key)
    .bind(hash)
    .bind(KeyState::InProgress.as_str())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes over a key whose request crashed.
pub(crate) async fn retake(tx: &mut Tx, tenant: Uuid, key: &str, at: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query("UPDATE idempotency_keys SET started_at = $1 WHERE tenant_id = $2 AND key = $3")
        .bind(at)
        .bind(tenant)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn done(tx: &mut Tx, tenant: Uuid, key: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE idempotency_keys SET state = $1 WHERE tenant_id = $2 AND key = $3")
        .bind(KeyState::Done.as_str())
        .bind(tenant)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Gives back a key still in progress.
pub(crate) async fn release(pool: &Pool, tenant: Uuid, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND state = $3")
        .bind(tenant)
        .bind(key)
        .bind(KeyState::InProgress.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

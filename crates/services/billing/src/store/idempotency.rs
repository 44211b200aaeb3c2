//! Idempotency-Keys (IETF draft semantics) for requests that move money: the first request
//! with a key takes it and runs; a repeat with the same request returns the first result once
//! it is done; a repeat while it still runs is 409; another request under the key is 422.
//!
//! The key is taken in a short transaction of its own (so a concurrent repeat sees it), and
//! marked done in the transaction that moves the money. A request that fails releases its key.
//! A key held longer than [`ABANDONED`] (its request crashed) may be taken again; the money
//! tables' own unique keys still stop a second movement.

use medcov_store::{WritePool, on_pool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{BillingStore, StoreError, unique_violation};

/// How long a key may be held before its request counts as crashed.
pub const ABANDONED: Duration = Duration::seconds(60);

/// What taking a key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The key is this request's: run it.
    New,
    /// The same request already ran: answer with its result.
    Done,
}

impl BillingStore {
    /// Takes `key` for a request with digest `hash`, or says why not.
    pub async fn take_key(&self, tenant: Uuid, key: &str, hash: &str) -> Result<Taken, StoreError> {
        let now = OffsetDateTime::now_utc();
        let result: Result<Taken, StoreError> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            let row: Option<(String, String, OffsetDateTime)> = sqlx::query_as(
                "SELECT request_hash, state, started_at FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            )
            .bind(tenant)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let taken = match row {
                Some((existing, _, _)) if existing != hash => {
                    return Err(StoreError::Invalid {
                        field: "Idempotency-Key".into(),
                        reason: "was already used for a different request".into(),
                    });
                }
                Some((_, state, _)) if state == "done" => Taken::Done,
                Some((_, _, started)) if now - started < ABANDONED => {
                    return Err(StoreError::Conflict(
                        "a request with this Idempotency-Key is still running; retry in a moment".into(),
                    ));
                }
                Some(_) => {
                    sqlx::query("UPDATE idempotency_keys SET started_at = $1 WHERE tenant_id = $2 AND key = $3")
                        .bind(now)
                        .bind(tenant)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                    Taken::New
                }
                None => {
                    sqlx::query(
                        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, state, started_at) \
                         VALUES ($1, $2, $3, 'in_progress', $4)",
                    )
                    .bind(tenant)
                    .bind(key)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    Taken::New
                }
            };
            tx.commit().await?;
            Ok(taken)
        }
        .await);
        match result {
            // Taken by a concurrent first request a moment ago.
            Err(StoreError::Sqlx(e)) if unique_violation(&e) => Err(StoreError::Conflict(
                "a request with this Idempotency-Key is still running; retry in a moment".into(),
            )),
            other => other,
        }
    }

    /// Gives a key back after its request failed, so a corrected retry may run.
    pub async fn release_key(&self, tenant: Uuid, key: &str) {
        let released: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| {
            sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND state = 'in_progress'")
                .bind(tenant)
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
        });
        if let Err(error) = released {
            tracing::warn!(%error, "an Idempotency-Key could not be released; it frees itself after a minute");
        }
    }
}

/// Marks a key done inside the transaction that moved the money.
macro_rules! key_done {
    ($tx:expr, $tenant:expr, $key:expr) => {
        sqlx::query("UPDATE idempotency_keys SET state = 'done' WHERE tenant_id = $1 AND key = $2")
            .bind($tenant)
            .bind($key)
            .execute(&mut *$tx)
            .await
    };
}
pub(crate) use key_done;

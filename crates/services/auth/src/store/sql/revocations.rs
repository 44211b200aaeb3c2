//! `revocations`: tokens refused before they expire.

use medcov_security::{Revocation, Revoked};
use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};

pub(crate) async fn insert(tx: &mut Tx, revocation: &Revocation) -> Result<(), StoreError> {
    let (kind, subject, before) = match revocation.revoked {
        Revoked::Session { session } => ("session", session, None),
        Revoked::User { user, before } => ("user", user, Some(before)),
    };
    sqlx::query("INSERT INTO revocations (id, kind, subject, before, at, until) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(Uuid::now_v7())
        .bind(kind)
        .bind(subject)
        .bind(before)
        .bind(revocation.at)
        .bind(revocation.until)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn since(
    pool: &Pool,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<Revocation>, StoreError> {
    let rows: Vec<(String, Uuid, Option<OffsetDateTime>, OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
        "SELECT kind, subject, before, at, until FROM revocations WHERE at >= $1 AND until > $2 ORDER BY at",
    )
    .bind(since)
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(kind, subject, before, at, until)| {
            let revoked = match (kind.as_str(), before) {
                ("session", _) => Revoked::Session { session: subject },
                ("user", Some(before)) => Revoked::User { user: subject, before },
                _ => return Err(StoreError::Corrupt { table: "revocations", column: "kind", value: kind }),
            };
            Ok(Revocation { revoked, at, until })
        })
        .collect()
}

/// Forgets revocations whose tokens have all expired.
pub(crate) async fn prune(tx: &mut Tx, now: OffsetDateTime) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM revocations WHERE until <= $1").bind(now).execute(&mut **tx).await?.rows_affected())
}

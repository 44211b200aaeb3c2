//! `insurers`, and the sequences that number their members and policies.

use medcov_store::StoreError;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::insurer::Insurer;
use crate::store::rows::{INSURER_COLUMNS, InsurerRow};

pub(crate) async fn insert(tx: &mut Tx, insurer: &Insurer) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO insurers (id, code, name, currency, timezone, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(insurer.id)
        .bind(&insurer.code)
        .bind(&insurer.name)
        .bind(&insurer.currency)
        .bind(&insurer.timezone)
        .bind(insurer.active)
        .bind(insurer.created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Insurer>, StoreError> {
    let sql = format!("SELECT {INSURER_COLUMNS} FROM insurers WHERE id = $1");
    let row: Option<InsurerRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Insurer::from))
}

pub(crate) async fn all(pool: &Pool) -> Result<Vec<Insurer>, StoreError> {
    let sql = format!("SELECT {INSURER_COLUMNS} FROM insurers ORDER BY name, id");
    let rows: Vec<InsurerRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Insurer::from).collect())
}

/// Takes the next policy number and `members` member numbers of an insurer: its code, the
/// policy sequence, and the last member sequence taken. `None` for an unknown insurer.
pub(crate) async fn take_numbers(
    tx: &mut Tx,
    insurer: Uuid,
    members: i64,
) -> Result<Option<(String, i64, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE insurers SET policy_seq = policy_seq + 1, member_seq = member_seq + $2 WHERE id = $1 \
         RETURNING code, policy_seq, member_seq",
    )
    .bind(insurer)
    .bind(members)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Takes the next member number of an insurer: its code and the sequence taken.
pub(crate) async fn take_member_number(tx: &mut Tx, insurer: Uuid) -> Result<(String, i64), StoreError> {
    Ok(sqlx::query_as("UPDATE insurers SET member_seq = member_seq + 1 WHERE id = $1 RETURNING code, member_seq")
        .bind(insurer)
        .fetch_one(&mut **tx)
        .await?)
}

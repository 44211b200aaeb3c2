//! A tiny store written the way services write theirs: this folder is mounted once per
//! backend (`main.rs`), with that backend's `Db`, `Pool` and `Tx`.

use medcov_store::StoreError;

use super::{FOR_UPDATE, Pool, Tx, Writes};

/// Adds one to the counter, read and written in the caller's transaction.
pub async fn bump(tx: &mut Tx, name: &str) -> Result<i64, StoreError> {
    let sql = format!("SELECT value FROM counters WHERE name = $1{FOR_UPDATE}");
    let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(name).fetch_one(&mut **tx).await?;
    sqlx::query("UPDATE counters SET value = $1 WHERE name = $2").bind(value + 1).bind(name).execute(&mut **tx).await?;
    Ok(value + 1)
}

pub async fn value(pool: &Pool, name: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = $1").bind(name).fetch_one(pool).await?)
}

/// Every counter's value, oldest name first, on one connection of the pool (as a store reads
/// several things together).
pub async fn values(pool: &Pool) -> Result<Vec<i64>, StoreError> {
    let mut connection = pool.acquire().await?;
    Ok(sqlx::query_scalar("SELECT value FROM counters ORDER BY name").fetch_all(&mut *connection).await?)
}

/// Every counter's value, oldest name first, streamed from the pool.
pub async fn all_values(pool: &Pool) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT value FROM counters ORDER BY name").fetch_all(pool).await?)
}

pub async fn add_label(tx: &mut Tx, name: &str, kind: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO labels (name, kind) VALUES ($1, $2)").bind(name).bind(kind).execute(&mut **tx).await?;
    Ok(())
}

/// [`add_label`] gathered in `writes`.
pub fn gather_label(writes: &mut Writes, name: &str, kind: &str) {
    writes.statement("INSERT INTO labels (name, kind) ").push_values([(name, kind)], |mut row, (name, kind)| {
        row.push_bind(name.to_owned()).push_bind(kind.to_owned());
    });
}

pub async fn label_kind(pool: &Pool, name: &str) -> Result<crate::Kind, StoreError> {
    let kind: String = sqlx::query_scalar("SELECT kind FROM labels WHERE name = $1").bind(name).fetch_one(pool).await?;
    medcov_store::decode("labels", "kind", &kind)
}

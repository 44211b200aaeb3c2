//! `hospitals`.

use medcov_store::StoreError;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::hospital::Hospital;
use crate::store::rows::{HOSPITAL_COLUMNS, HospitalRow};

pub(crate) async fn insert(tx: &mut Tx, hospital: &Hospital) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hospitals (id, code, name, timezone, currency, address, opening_hours, active, mrn_seq, version, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
    )
    .bind(hospital.id)
    .bind(&hospital.code)
    .bind(&hospital.name)
    .bind(&hospital.timezone)
    .bind(&hospital.currency)
    .bind(Json(&hospital.address))
    .bind(Json(&hospital.opening_hours))
    .bind(hospital.active)
    .bind(hospital.version)
    .bind(hospital.created_at)
    .bind(hospital.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Hospital>, StoreError> {
    let sql = format!("SELECT {HOSPITAL_COLUMNS} FROM hospitals WHERE id = $1");
    let row: Option<HospitalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Hospital::from))
}

pub(crate) async fn all(pool: &Pool) -> Result<Vec<Hospital>, StoreError> {
    let sql = format!("SELECT {HOSPITAL_COLUMNS} FROM hospitals ORDER BY name, id");
    let rows: Vec<HospitalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Hospital::from).collect())
}

/// Writes name, address and opening hours, and moves the version on, if it is `expected`.
pub(crate) async fn update(tx: &mut Tx, hospital: &Hospital, expected: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE hospitals SET name = $1, address = $2, opening_hours = $3, updated_at = $4, version = version + 1 \
         WHERE id = $5 AND version = $6",
    )
    .bind(&hospital.name)
    .bind(Json(&hospital.address))
    .bind(Json(&hospital.opening_hours))
    .bind(hospital.updated_at)
    .bind(hospital.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the hospital's next `count` patient numbers: (its code, the last of them). The row
/// stays locked until the transaction ends.
pub(crate) async fn next_record_numbers(
    tx: &mut Tx,
    id: Uuid,
    count: i64,
) -> Result<Option<(String, i64)>, StoreError> {
    Ok(sqlx::query_as("UPDATE hospitals SET mrn_seq = mrn_seq + $2 WHERE id = $1 RETURNING code, mrn_seq")
        .bind(id)
        .bind(count)
        .fetch_optional(&mut **tx)
        .await?)
}

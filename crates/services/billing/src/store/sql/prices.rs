//! `price_entries`.

use medcov_store::StoreError;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::prices::Price;
use crate::store::rows::{PRICE_COLUMNS, PriceRow};

/// The periods of one code's prices at a hospital.
pub(crate) async fn periods(tx: &mut Tx, hospital: Uuid, code: &str) -> Result<Vec<(Date, Option<Date>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT effective_from, effective_to FROM price_entries WHERE hospital_id = $1 AND service_code = $2",
    )
    .bind(hospital)
    .bind(code)
    .fetch_all(&mut **tx)
    .await?)
}

pub(crate) async fn insert(tx: &mut Tx, price: &Price, created_by: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO price_entries (id, hospital_id, service_code, category, description, unit_price, currency, \
         effective_from, effective_to, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(price.id)
    .bind(price.hospital_id)
    .bind(&price.service_code)
    .bind(&price.category)
    .bind(&price.description)
    .bind(price.unit_price)
    .bind(&price.currency)
    .bind(price.effective_from)
    .bind(price.effective_to)
    .bind(created_by)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A hospital's prices, valid on `on` if given, by code.
pub(crate) async fn list(pool: &Pool, hospital: Uuid, on: Option<Date>) -> Result<Vec<Price>, StoreError> {
    let sql = format!(
        "SELECT {PRICE_COLUMNS} FROM price_entries WHERE hospital_id = $1 AND ($2 IS NULL OR (effective_from <= $2 \
         AND (effective_to IS NULL OR effective_to >= $2))) ORDER BY service_code, effective_from"
    );
    let rows: Vec<PriceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hospital).bind(on).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Price::from).collect())
}

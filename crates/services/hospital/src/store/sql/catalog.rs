//! `service_catalog`.

use medcov_store::StoreError;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::encounter::CatalogEntry;
use crate::store::rows::CatalogRow;

pub(crate) async fn insert(tx: &mut Tx, entry: &CatalogEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO service_catalog (hospital_id, code, category, description, active) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.hospital_id)
    .bind(&entry.code)
    .bind(&entry.category)
    .bind(&entry.description)
    .bind(entry.active)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn of_hospital(pool: &Pool, hospital: Uuid) -> Result<Vec<CatalogEntry>, StoreError> {
    let rows: Vec<CatalogRow> = sqlx::query_as(
        "SELECT hospital_id, code, category, description, active FROM service_catalog WHERE hospital_id = $1 \
         ORDER BY code",
    )
    .bind(hospital)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(CatalogEntry::from).collect())
}

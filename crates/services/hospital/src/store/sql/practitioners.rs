//! `practitioners`.

use medcov_store::StoreError;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::practitioner::Practitioner;
use crate::store::rows::{PRACTITIONER_COLUMNS, PractitionerRow};

pub(crate) async fn insert(tx: &mut Tx, p: &Practitioner) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO practitioners (id, hospital_id, name, specialty, working_hours, daily_capacity, active, bookings, \
         version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10)",
    )
    .bind(p.id)
    .bind(p.hospital_id)
    .bind(&p.name)
    .bind(&p.specialty)
    .bind(Json(&p.working_hours))
    .bind(p.daily_capacity)
    .bind(p.active)
    .bind(p.version)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Practitioner>, StoreError> {
    let sql = format!("SELECT {PRACTITIONER_COLUMNS} FROM practitioners WHERE id = $1");
    let row: Option<PractitionerRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Practitioner::from))
}

pub(crate) async fn of_hospitals(pool: &Pool, hospitals: &[Uuid]) -> Result<Vec<Practitioner>, StoreError> {
    if hospitals.is_empty() {
        return Ok(Vec::new());
    }
    let mut query =
        sqlx::QueryBuilder::new(format!("SELECT {PRACTITIONER_COLUMNS} FROM practitioners WHERE hospital_id IN ("));
    let mut list = query.separated(", ");
    for hospital in hospitals {
        list.push_bind(*hospital);
    }
    query.push(") ORDER BY name, id");
    let rows: Vec<PractitionerRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(Practitioner::from).collect())
}

/// Writes name, specialty, hours, capacity and the active flag, and moves the version on, if
/// it is `expected`.
pub(crate) async fn update(
    tx: &mut Tx,
    p: &Practitioner,
    expected: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE practitioners SET name = $1, specialty = $2, working_hours = $3, daily_capacity = $4, active = $5, \
         version = version + 1, updated_at = $6 WHERE id = $7 AND version = $8",
    )
    .bind(&p.name)
    .bind(&p.specialty)
    .bind(Json(&p.working_hours))
    .bind(p.daily_capacity)
    .bind(p.active)
    .bind(now)
    .bind(p.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts a booking against an active practitioner and returns their daily capacity; `None`
/// when they are not active (or do not exist). The update locks the practitioner's row until
/// the transaction ends, so bookings of one practitioner queue here.
pub(crate) async fn hold(tx: &mut Tx, id: Uuid) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE practitioners SET bookings = bookings + 1 WHERE id = $1 AND active = $2 RETURNING daily_capacity",
    )
    .bind(id)
    .bind(true)
    .fetch_optional(&mut **tx)
    .await?)
}

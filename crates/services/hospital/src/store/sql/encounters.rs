//! `encounters`.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::encounter::Encounter;
use crate::store::rows::{ENCOUNTER_COLUMNS, EncounterRow};

pub(crate) async fn insert(tx: &mut Tx, encounter: &Encounter) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO encounters (id, hospital_id, patient_id, practitioner_id, appointment_id, visit_type, status, \
         record, version, opened_at, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(encounter.id)
    .bind(encounter.hospital_id)
    .bind(encounter.patient_id)
    .bind(encounter.practitioner_id)
    .bind(encounter.appointment_id)
    .bind(encounter.visit_type.as_str())
    .bind(encounter.status.as_str())
    .bind(Json(&encounter.record))
    .bind(encounter.version)
    .bind(encounter.opened_at)
    .bind(encounter.closed_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Encounter>, StoreError> {
    let sql = format!("SELECT {ENCOUNTER_COLUMNS} FROM encounters WHERE id = $1");
    let row: Option<EncounterRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Encounter::try_from).transpose()
}

/// Writes the record, status and closing time of an encounter still open at `expected`, and
/// moves its version on.
pub(crate) async fn save(tx: &mut Tx, encounter: &Encounter, expected: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE encounters SET record = $1, status = $2, closed_at = $3, version = version + 1 \
         WHERE id = $4 AND version = $5 AND status = 'open'",
    )
    .bind(Json(&encounter.record))
    .bind(encounter.status.as_str())
    .bind(encounter.closed_at)
    .bind(encounter.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

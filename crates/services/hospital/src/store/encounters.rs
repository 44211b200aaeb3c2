//! The service catalog and encounters.

use medcov_store::{WritePool, on_pool};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, Event, HospitalStore};
use crate::domain::encounter::{Diagnosis, ServiceLine, VisitType};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CatalogEntry {
    pub hospital_id: Uuid,
    #[schema(example = "CONS-GP")]
    pub code: String,
    /// consultation, laboratory, imaging, procedure, inpatient, pharmacy, ...
    #[schema(example = "consultation")]
    pub category: String,
    #[schema(example = "General practitioner consultation")]
    pub description: String,
    pub active: bool,
}

/// What the clinician records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EncounterRecord {
    pub diagnoses: Vec<Diagnosis>,
    pub services: Vec<ServiceLine>,
    pub notes: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncounterStatus {
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Encounter {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub visit_type: VisitType,
    pub status: EncounterStatus,
    #[serde(flatten)]
    pub record: EncounterRecord,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct EncounterRow {
    id: Uuid,
    hospital_id: Uuid,
    patient_id: Uuid,
    practitioner_id: Uuid,
    appointment_id: Option<Uuid>,
    visit_type: String,
    status: String,
    record: Json<EncounterRecord>,
    version: i64,
    opened_at: OffsetDateTime,
    closed_at: Option<OffsetDateTime>,
}

impl From<EncounterRow> for Encounter {
    fn from(row: EncounterRow) -> Self {
        Encounter {
            id: row.id,
            hospital_id: row.hospital_id,
            patient_id: row.patient_id,
            practitioner_id: row.practitioner_id,
            appointment_id: row.appointment_id,
            visit_type: VisitType::parse(&row.visit_type).unwrap_or(VisitType::Normal),
            status: if row.status == "closed" { EncounterStatus::Closed } else { EncounterStatus::Open },
            record: row.record.0,
            version: row.version,
            opened_at: row.opened_at,
            closed_at: row.closed_at,
        }
    }
}

const ENCOUNTER_COLUMNS: &str = "id, hospital_id, patient_id, practitioner_id, appointment_id, visit_type, status, record, \
     version, opened_at, closed_at";

#[derive(Debug, thiserror::Error)]
pub enum EncounterError {
    #[error("the catalog already has this code")]
    CodeTaken,
    #[error("the appointment already has an encounter")]
    AlreadyOpened,
    #[error("the encounter changed since it was read, or is closed")]
    Stale,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl HospitalStore {
    pub async fn add_catalog_entry(&self, entry: &CatalogEntry) -> Result<(), EncounterError> {
        let result = on_pool!(&self.db, |pool| {
            sqlx::query(
            "INSERT INTO service_catalog (hospital_id, code, category, description, active) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(entry.hospital_id)
        .bind(&entry.code)
        .bind(&entry.category)
        .bind(&entry.description)
        .bind(entry.active)
        .execute(pool)
        .await
        .map(|_| ())
        });
        match result {
            Err(e) if unique_violation(&e) => Err(EncounterError::CodeTaken),
            other => Ok(other?),
        }
    }

    pub async fn catalog(&self, hospital: Uuid) -> Result<Vec<CatalogEntry>, sqlx::Error> {
        on_pool!(&self.db, |pool| {
            sqlx::query_as(
            "SELECT hospital_id, code, category, description, active FROM service_catalog WHERE hospital_id = $1 ORDER BY code"
        )
        .bind(hospital)
        .fetch_all(pool)
        .await
        })
    }

    pub async fn open_encounter(&self, encounter: &Encounter, actor: &Actor) -> Result<(), EncounterError> {
        // An async block, so `?` ends the block, not the function: the error is mapped below.
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO encounters (id, hospital_id, patient_id, practitioner_id, appointment_id, visit_type, status, \
                 record, version, opened_at, closed_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, 1, $8, NULL)",
            )
            .bind(encounter.id)
            .bind(encounter.hospital_id)
            .bind(encounter.patient_id)
            .bind(encounter.practitioner_id)
            .bind(encounter.appointment_id)
            .bind(encounter.visit_type.as_str())
            .bind(Json(&encounter.record))
            .bind(encounter.opened_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO access_log (id, at, user_id, patient_id, hospital_id, action, request_id) \
                 VALUES ($1, $2, $3, $4, $5, 'encounter_open', $6)",
            )
            .bind(Uuid::now_v7())
            .bind(OffsetDateTime::now_utc())
            .bind(actor.user_id)
            .bind(encounter.patient_id)
            .bind(encounter.hospital_id)
            .bind(&actor.request_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await
        });
        match result {
            Err(e) if unique_violation(&e) => Err(EncounterError::AlreadyOpened),
            other => Ok(other?),
        }
    }

    pub async fn encounter(&self, id: Uuid) -> Result<Option<Encounter>, sqlx::Error> {
        let sql = format!("SELECT {ENCOUNTER_COLUMNS} FROM encounters WHERE id = $1");
        let row: Option<EncounterRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Encounter::from))
    }

    /// Replaces the record of an open encounter at `expected` version; with `close`, freezes
    /// it and writes `encounter_completed` with everything billing needs, in one transaction.
    pub async fn save_encounter(
        &self,
        encounter: &Encounter,
        expected: i64,
        close: Option<serde_json::Value>,
        actor: &Actor,
    ) -> Result<Encounter, EncounterError> {
        let now = OffsetDateTime::now_utc();
        let closed_at = close.as_ref().map(|_| now);
        let status = if close.is_some() { "closed" } else { "open" };
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE encounters SET record = $1, status = $2, closed_at = $3, version = version + 1 \
                 WHERE id = $4 AND version = $5 AND status = 'open'",
            )
            .bind(Json(&encounter.record))
            .bind(status)
            .bind(closed_at)
            .bind(encounter.id)
            .bind(expected)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(EncounterError::Stale);
            }
            sqlx::query(
                "INSERT INTO access_log (id, at, user_id, patient_id, hospital_id, action, request_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7())
            .bind(now)
            .bind(actor.user_id)
            .bind(encounter.patient_id)
            .bind(encounter.hospital_id)
            .bind(if close.is_some() { "encounter_close" } else { "encounter_update" })
            .bind(&actor.request_id)
            .execute(&mut *tx)
            .await?;
            if let Some(payload) = &close {
                let event = Event {
                    event_type: "hospital.encounter_completed.v1",
                    aggregate_type: "encounter",
                    aggregate_id: encounter.id,
                    tenant_id: encounter.hospital_id,
                    payload: payload.clone(),
                };
                medcov_store::write_outbox!(tx, actor, event)?;
            }
            tx.commit().await?;
            Ok::<(), EncounterError>(())
        })?;
        Ok(Encounter {
            version: expected + 1,
            status: if close.is_some() { EncounterStatus::Closed } else { EncounterStatus::Open },
            closed_at,
            ..encounter.clone()
        })
    }
}

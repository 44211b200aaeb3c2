//! Practitioners and appointments.
//!
//! A booking locks its practitioner's row (a counter update, which is portable), checks for an
//! overlapping active appointment of the practitioner or the patient and for the day's
//! capacity, then inserts, in one transaction. On SQLite that transaction is `BEGIN IMMEDIATE`,
//! so no other writer interleaves; on PostgreSQL the row lock serialises bookings of one
//! practitioner and the exclusion constraints catch the rest (a patient booked with two
//! practitioners at once), reported as the same conflict.

use medcov_store::{WritePool, on_pool};
use serde::Serialize;
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Actor, Event, HospitalStore};
use crate::domain::schedule::{AppointmentStatus, WorkingHours};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Practitioner {
    pub id: Uuid,
    pub hospital_id: Uuid,
    #[schema(example = "Dr. Wanjiru Kamau")]
    pub name: String,
    #[schema(example = "general practice")]
    pub specialty: String,
    #[schema(value_type = Vec<WorkingHours>)]
    pub working_hours: Json<Vec<WorkingHours>>,
    /// Appointments a day at most.
    pub daily_capacity: i32,
    pub active: bool,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

const PRACTITIONER_COLUMNS: &str =
    "id, hospital_id, name, specialty, working_hours, daily_capacity, active, version, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Appointment {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub practitioner_id: Uuid,
    pub patient_id: Uuid,
    /// consultation, laboratory, imaging, procedure, inpatient_admission, ...
    pub category: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    pub status: AppointmentStatus,
    pub reason: Option<String>,
    pub version: i64,
}

/// A practitioner's appointments on one day, as cached.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Day(pub Vec<Appointment>);

medcov_cache::json_codec!(Day);

/// The cache tag of a practitioner's days: every booking, move and status change bumps it.
pub fn day_tag(practitioner: Uuid) -> Vec<String> {
    vec![format!("hospital:practitioner-day:{practitioner}")]
}

#[derive(sqlx::FromRow)]
struct AppointmentRow {
    id: Uuid,
    hospital_id: Uuid,
    practitioner_id: Uuid,
    patient_id: Uuid,
    category: String,
    starts_at: i64,
    ends_at: i64,
    status: String,
    reason: Option<String>,
    version: i64,
}

impl From<AppointmentRow> for Appointment {
    fn from(row: AppointmentRow) -> Self {
        let instant = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Appointment {
            id: row.id,
            hospital_id: row.hospital_id,
            practitioner_id: row.practitioner_id,
            patient_id: row.patient_id,
            category: row.category,
            starts_at: instant(row.starts_at),
            ends_at: instant(row.ends_at),
            status: AppointmentStatus::parse(&row.status).unwrap_or(AppointmentStatus::Cancelled),
            reason: row.reason,
            version: row.version,
        }
    }
}

const APPOINTMENT_COLUMNS: &str =
    "id, hospital_id, practitioner_id, patient_id, category, starts_at, ends_at, status, reason, version";

/// A requested slot.
#[derive(Debug, Clone)]
pub struct Slot {
    pub starts_at: i64,
    pub ends_at: i64,
    /// The practitioner's local date of the slot, for the daily capacity.
    pub local_date: Date,
}

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("the practitioner or the patient already has appointment {0} at that time")]
    Conflict(Uuid),
    #[error("the practitioner's day is full ({0} appointments)")]
    Full(i32),
    #[error("the practitioner is not taking appointments")]
    Inactive,
    #[error("the appointment changed since it was read")]
    Stale,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

const ACTIVE: &str = "('booked', 'arrived', 'checked_in')";

fn is_exclusion_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01"))
}

impl HospitalStore {
    pub async fn insert_practitioner(&self, practitioner: &Practitioner) -> Result<(), sqlx::Error> {
        on_pool!(&self.db, |pool| {
            sqlx::query(
            "INSERT INTO practitioners (id, hospital_id, name, specialty, working_hours, daily_capacity, active, bookings, \
             version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $9)"
        )
        .bind(practitioner.id)
        .bind(practitioner.hospital_id)
        .bind(&practitioner.name)
        .bind(&practitioner.specialty)
        .bind(&practitioner.working_hours)
        .bind(practitioner.daily_capacity)
        .bind(practitioner.active)
        .bind(practitioner.version)
        .bind(practitioner.created_at)
        .execute(pool)
        .await
        .map(|_| ())
        })
    }

    pub async fn practitioner(&self, id: Uuid) -> Result<Option<Practitioner>, sqlx::Error> {
        let sql = format!("SELECT {PRACTITIONER_COLUMNS} FROM practitioners WHERE id = $1");
        on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
    }

    pub async fn practitioners(&self, hospitals: &[Uuid]) -> Result<Vec<Practitioner>, sqlx::Error> {
        if hospitals.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(&self.db, |pool| {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {PRACTITIONER_COLUMNS} FROM practitioners WHERE hospital_id IN ("
            ));
            let mut list = query.separated(", ");
            for hospital in hospitals {
                list.push_bind(*hospital);
            }
            query.push(") ORDER BY name, id");
            query.build_query_as().fetch_all(pool).await
        })
    }

    /// Replaces name, specialty, hours, capacity and the active flag when the version matches.
    pub async fn update_practitioner(&self, p: &Practitioner, expected_version: i64) -> Result<bool, sqlx::Error> {
        let done = on_pool!(&self.db, |pool| {
            sqlx::query(
            "UPDATE practitioners SET name = $1, specialty = $2, working_hours = $3, daily_capacity = $4, active = $5, \
             version = version + 1, updated_at = $6 WHERE id = $7 AND version = $8"
        )
        .bind(&p.name)
        .bind(&p.specialty)
        .bind(&p.working_hours)
        .bind(p.daily_capacity)
        .bind(p.active)
        .bind(OffsetDateTime::now_utc())
        .bind(p.id)
        .bind(expected_version)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    pub async fn appointment(&self, id: Uuid) -> Result<Option<Appointment>, sqlx::Error> {
        let sql = format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE id = $1");
        let row: Option<AppointmentRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Appointment::from))
    }

    /// The first active appointment of the practitioner or the patient overlapping the slot.
    async fn conflicting(
        &self,
        practitioner: Uuid,
        patient: Uuid,
        slot: &Slot,
        except: Option<Uuid>,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        let sql = format!(
            "SELECT id FROM appointments WHERE status IN {ACTIVE} AND starts_at < $1 AND ends_at > $2 \
             AND (practitioner_id = $3 OR patient_id = $4) AND id <> $5 ORDER BY starts_at LIMIT 1"
        );
        on_pool!(&self.db, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(slot.ends_at)
            .bind(slot.starts_at)
            .bind(practitioner)
            .bind(patient)
            .bind(except.unwrap_or(Uuid::nil()))
            .fetch_optional(pool)
            .await)
    }

    /// Books, or (with `existing`) moves, an appointment into `slot`, refusing overlaps and a
    /// full day; writes history and the outbox event in the same transaction.
    pub async fn book(
        &self,
        appointment: &Appointment,
        slot: &Slot,
        existing: Option<i64>,
        actor: &Actor,
    ) -> Result<Appointment, BookingError> {
        let now = OffsetDateTime::now_utc();
        let except = existing.map(|_| appointment.id);
        // An async block, so `?` and `return` end the block, not the function: an exclusion
        // violation must reach the match below.
        let outcome: Result<Appointment, BookingError> = on_pool!(&self.db, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            // Locks the practitioner's row until commit: bookings of one practitioner queue here.
            let capacity: Option<i32> = sqlx::query_scalar(
                "UPDATE practitioners SET bookings = bookings + 1 WHERE id = $1 AND active = $2 RETURNING daily_capacity",
            )
            .bind(appointment.practitioner_id)
            .bind(true)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(capacity) = capacity else { return Err(BookingError::Inactive) };
            let overlap = format!(
                "SELECT id FROM appointments WHERE status IN {ACTIVE} AND starts_at < $1 AND ends_at > $2 \
                 AND (practitioner_id = $3 OR patient_id = $4) AND id <> $5 ORDER BY starts_at LIMIT 1"
            );
            let clash: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(overlap))
                .bind(slot.ends_at)
                .bind(slot.starts_at)
                .bind(appointment.practitioner_id)
                .bind(appointment.patient_id)
                .bind(except.unwrap_or(Uuid::nil()))
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(clash) = clash {
                return Err(BookingError::Conflict(clash));
            }
            let booked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM appointments WHERE practitioner_id = $1 AND local_date = $2 \
                 AND status <> 'cancelled' AND id <> $3",
            )
            .bind(appointment.practitioner_id)
            .bind(slot.local_date)
            .bind(except.unwrap_or(Uuid::nil()))
            .fetch_one(&mut *tx)
            .await?;
            if booked >= i64::from(capacity) {
                return Err(BookingError::Full(capacity));
            }
            let version = existing.map_or(1, |v| v + 1);
            let written = match existing {
                None => sqlx::query(
                    "INSERT INTO appointments (id, hospital_id, practitioner_id, patient_id, category, starts_at, ends_at, \
                     local_date, status, reason, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $11)",
                )
                .bind(appointment.id)
                .bind(appointment.hospital_id)
                .bind(appointment.practitioner_id)
                .bind(appointment.patient_id)
                .bind(&appointment.category)
                .bind(slot.starts_at)
                .bind(slot.ends_at)
                .bind(slot.local_date)
                .bind(AppointmentStatus::Booked.as_str())
                .bind(version)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map(|r| r.rows_affected()),
                Some(expected) => sqlx::query(
                    "UPDATE appointments SET starts_at = $1, ends_at = $2, local_date = $3, version = $4, updated_at = $5 \
                     WHERE id = $6 AND version = $7",
                )
                .bind(slot.starts_at)
                .bind(slot.ends_at)
                .bind(slot.local_date)
                .bind(version)
                .bind(now)
                .bind(appointment.id)
                .bind(expected)
                .execute(&mut *tx)
                .await
                .map(|r| r.rows_affected()),
            };
            match written {
                Ok(1) => {}
                Ok(_) => return Err(BookingError::Stale),
                Err(e) => return Err(e.into()),
            }
            let status = appointment.status;
            sqlx::query(
                "INSERT INTO appointment_history (appointment_id, version, at, by_user, status, starts_at, ends_at, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            )
            .bind(appointment.id)
            .bind(version)
            .bind(now)
            .bind(actor.user_id)
            .bind(status.as_str())
            .bind(slot.starts_at)
            .bind(slot.ends_at)
            .execute(&mut *tx)
            .await?;
            let event = Event {
                event_type: if existing.is_some() {
                    "hospital.appointment_rescheduled.v1"
                } else {
                    "hospital.appointment_booked.v1"
                },
                aggregate_type: "appointment",
                aggregate_id: appointment.id,
                tenant_id: appointment.hospital_id,
                payload: serde_json::json!({
                    "appointment_id": appointment.id,
                    "hospital_id": appointment.hospital_id,
                    "practitioner_id": appointment.practitioner_id,
                    "patient_id": appointment.patient_id,
                    "category": appointment.category,
                    "starts_at": slot.starts_at,
                    "ends_at": slot.ends_at,
                }),
            };
            medcov_store::write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok(Appointment {
                starts_at: OffsetDateTime::from_unix_timestamp(slot.starts_at).unwrap_or(appointment.starts_at),
                ends_at: OffsetDateTime::from_unix_timestamp(slot.ends_at).unwrap_or(appointment.ends_at),
                version,
                ..appointment.clone()
            })
        }
        .await
        });
        if outcome.is_ok() {
            self.cache().invalidate(&day_tag(appointment.practitioner_id)).await;
        }
        match outcome {
            // PostgreSQL's exclusion constraint caught what the locks did not: name the clash.
            Err(BookingError::Sqlx(e)) if is_exclusion_violation(&e) => {
                let clash = self.conflicting(appointment.practitioner_id, appointment.patient_id, slot, except).await?;
                Err(BookingError::Conflict(clash.unwrap_or(Uuid::nil())))
            }
            other => other,
        }
    }

    /// Moves an appointment to `next` when its version is `expected`; history and event with it.
    pub async fn change_status(
        &self,
        appointment: &Appointment,
        next: AppointmentStatus,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Appointment, BookingError> {
        let now = OffsetDateTime::now_utc();
        let version = appointment.version + 1;
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE appointments SET status = $1, reason = $2, version = $3, updated_at = $4 WHERE id = $5 AND version = $6",
            )
            .bind(next.as_str())
            .bind(reason)
            .bind(version)
            .bind(now)
            .bind(appointment.id)
            .bind(appointment.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(BookingError::Stale);
            }
            sqlx::query(
                "INSERT INTO appointment_history (appointment_id, version, at, by_user, status, starts_at, ends_at, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(appointment.id)
            .bind(version)
            .bind(now)
            .bind(actor.user_id)
            .bind(next.as_str())
            .bind(appointment.starts_at.unix_timestamp())
            .bind(appointment.ends_at.unix_timestamp())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            let event = Event {
                event_type: "hospital.appointment_status_changed.v1",
                aggregate_type: "appointment",
                aggregate_id: appointment.id,
                tenant_id: appointment.hospital_id,
                payload: serde_json::json!({
                    "appointment_id": appointment.id,
                    "hospital_id": appointment.hospital_id,
                    "patient_id": appointment.patient_id,
                    "from": appointment.status,
                    "to": next,
                }),
            };
            medcov_store::write_outbox!(tx, actor, event)?;
            tx.commit().await?;
            Ok::<(), BookingError>(())
        })?;
        self.cache().invalidate(&day_tag(appointment.practitioner_id)).await;
        Ok(Appointment { status: next, reason: reason.map(str::to_owned), version, ..appointment.clone() })
    }

    /// A practitioner's appointments in `[from, to)`, by start.
    pub async fn practitioner_appointments(
        &self,
        practitioner: Uuid,
        from: i64,
        to: i64,
    ) -> Result<Vec<Appointment>, sqlx::Error> {
        let sql = format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE practitioner_id = $1 AND starts_at < $2 AND ends_at > $3 \
             ORDER BY starts_at, id"
        );
        let rows: Vec<AppointmentRow> = on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(practitioner)
            .bind(to)
            .bind(from)
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(Appointment::from).collect())
    }

    /// A patient's appointments starting from `now` on (upcoming) or before it (past, newest
    /// first).
    pub async fn patient_appointments(
        &self,
        patient: Uuid,
        now: i64,
        upcoming: bool,
        limit: i64,
    ) -> Result<Vec<Appointment>, sqlx::Error> {
        let sql = if upcoming {
            format!(
                "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE patient_id = $1 AND starts_at >= $2 ORDER BY starts_at, id LIMIT $3"
            )
        } else {
            format!(
                "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE patient_id = $1 AND starts_at < $2 ORDER BY starts_at DESC, id LIMIT $3"
            )
        };
        let rows: Vec<AppointmentRow> = on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(patient)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(Appointment::from).collect())
    }
}

/// One version of an appointment: who moved it where, and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AppointmentChange {
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub by_user: Uuid,
    pub status: AppointmentStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    pub reason: Option<String>,
}

impl HospitalStore {
    /// Every version of an appointment, oldest first: booking, each status change, each move.
    pub async fn appointment_history(&self, id: Uuid) -> Result<Vec<AppointmentChange>, sqlx::Error> {
        type Row = (i64, OffsetDateTime, Uuid, String, i64, i64, Option<String>);
        let rows: Vec<Row> = on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT version, at, by_user, status, starts_at, ends_at, reason FROM appointment_history \
                 WHERE appointment_id = $1 ORDER BY version",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?;
        let instant = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(rows
            .into_iter()
            .map(|(version, at, by_user, status, starts_at, ends_at, reason)| AppointmentChange {
                version,
                at,
                by_user,
                status: AppointmentStatus::parse(&status).unwrap_or(AppointmentStatus::Booked),
                starts_at: instant(starts_at),
                ends_at: instant(ends_at),
                reason,
            })
            .collect())
    }
}

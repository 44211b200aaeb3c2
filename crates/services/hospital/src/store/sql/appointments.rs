//! `appointments` and their history (`appointment_history`). Times are Unix seconds.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::appointment::{Appointment, AppointmentChange, Slot};
use crate::store::rows::{APPOINTMENT_COLUMNS, AppointmentChangeRow, AppointmentRow};

/// The statuses that hold a slot, as the exclusion constraints name them.
const ACTIVE: &str = "('booked', 'arrived', 'checked_in')";

/// The first active appointment of the practitioner or the patient overlapping `slot`, other
/// than `except`.
pub(crate) async fn overlapping(
    tx: &mut Tx,
    (practitioner, patient): (Uuid, Uuid),
    slot: &Slot,
    except: Option<Uuid>,
) -> Result<Option<Uuid>, StoreError> {
    let (starts_at, ends_at) = slot.seconds();
    let sql = format!(
        "SELECT id FROM appointments WHERE status IN {ACTIVE} AND starts_at < $1 AND ends_at > $2 \
         AND (practitioner_id = $3 OR patient_id = $4) AND id <> $5 ORDER BY starts_at LIMIT 1"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ends_at)
        .bind(starts_at)
        .bind(practitioner)
        .bind(patient)
        .bind(except.unwrap_or(Uuid::nil()))
        .fetch_optional(&mut **tx)
        .await?)
}

/// How many appointments (other than `except`) the practitioner has on a local date, not
/// counting cancelled ones.
pub(crate) async fn booked_on(
    tx: &mut Tx,
    practitioner: Uuid,
    date: Date,
    except: Option<Uuid>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM appointments WHERE practitioner_id = $1 AND local_date = $2 \
         AND status <> 'cancelled' AND id <> $3",
    )
    .bind(practitioner)
    .bind(date)
    .bind(except.unwrap_or(Uuid::nil()))
    .fetch_one(&mut **tx)
    .await?)
}

pub(crate) async fn insert(
    tx: &mut Tx,
    appointment: &Appointment,
    local_date: Date,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO appointments (id, hospital_id, practitioner_id, patient_id, category, starts_at, ends_at, \
         local_date, status, reason, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(appointment.id)
    .bind(appointment.hospital_id)
    .bind(appointment.practitioner_id)
    .bind(appointment.patient_id)
    .bind(&appointment.category)
    .bind(appointment.starts_at.unix_timestamp())
    .bind(appointment.ends_at.unix_timestamp())
    .bind(local_date)
    .bind(appointment.status.as_str())
    .bind(&appointment.reason)
    .bind(appointment.version)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the appointment's times at its version if the stored version is `expected`.
pub(crate) async fn reschedule(
    tx: &mut Tx,
    appointment: &Appointment,
    local_date: Date,
    expected: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE appointments SET starts_at = $1, ends_at = $2, local_date = $3, version = $4, updated_at = $5 \
         WHERE id = $6 AND version = $7",
    )
    .bind(appointment.starts_at.unix_timestamp())
    .bind(appointment.ends_at.unix_timestamp())
    .bind(local_date)
    .bind(appointment.version)
    .bind(now)
    .bind(appointment.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes the appointment's status and reason at its version if the stored version is
/// `expected`.
pub(crate) async fn set_status(
    tx: &mut Tx,
    appointment: &Appointment,
    expected: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE appointments SET status = $1, reason = $2, version = $3, updated_at = $4 WHERE id = $5 AND version = $6",
    )
    .bind(appointment.status.as_str())
    .bind(&appointment.reason)
    .bind(appointment.version)
    .bind(now)
    .bind(appointment.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn insert_change(tx: &mut Tx, change: &AppointmentChange) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO appointment_history (appointment_id, version, at, by_user, status, starts_at, ends_at, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(change.appointment_id)
    .bind(change.version)
    .bind(change.at)
    .bind(change.by_user)
    .bind(change.status.as_str())
    .bind(change.starts_at.unix_timestamp())
    .bind(change.ends_at.unix_timestamp())
    .bind(&change.reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Appointment>, StoreError> {
    let sql = format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE id = $1");
    let row: Option<AppointmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Appointment::try_from).transpose()
}

/// A practitioner's appointments overlapping `[from, to)`, by start.
pub(crate) async fn of_practitioner(
    pool: &Pool,
    practitioner: Uuid,
    (from, to): (i64, i64),
) -> Result<Vec<Appointment>, StoreError> {
    let sql = format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE practitioner_id = $1 AND starts_at < $2 AND ends_at > $3 \
         ORDER BY starts_at, id"
    );
    let rows: Vec<AppointmentRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(practitioner).bind(to).bind(from).fetch_all(pool).await?;
    rows.into_iter().map(Appointment::try_from).collect()
}

/// A patient's appointments starting from `now` on (soonest first) or, unless `upcoming`,
/// before it (latest first).
pub(crate) async fn of_patient(
    pool: &Pool,
    patient: Uuid,
    now: i64,
    upcoming: bool,
    (limit, offset): (i64, i64),
) -> Result<Vec<Appointment>, StoreError> {
    let sql = if upcoming {
        format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE patient_id = $1 AND starts_at >= $2 \
             ORDER BY starts_at, id LIMIT $3 OFFSET $4"
        )
    } else {
        format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE patient_id = $1 AND starts_at < $2 \
             ORDER BY starts_at DESC, id LIMIT $3 OFFSET $4"
        )
    };
    let rows: Vec<AppointmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(patient)
        .bind(now)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(Appointment::try_from).collect()
}

pub(crate) async fn history(pool: &Pool, id: Uuid) -> Result<Vec<AppointmentChange>, StoreError> {
    let rows: Vec<AppointmentChangeRow> = sqlx::query_as(
        "SELECT appointment_id, version, at, by_user, status, starts_at, ends_at, reason FROM appointment_history \
         WHERE appointment_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(AppointmentChange::try_from).collect()
}

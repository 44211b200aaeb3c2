//! The hospital service's tables: hospitals, patients (with their lookup keys, history and
//! access log), practitioners, appointments (with their history), the service catalog,
//! encounters, and what insurers answered about patients' coverage.
//!
//! Each function is one statement or a few that always go together, on the pool (reads) or on
//! the caller's transaction ([`Tx`], writes): the service layer opens the transaction, decides
//! with the domain's rules, writes the change with its history, access-log entry and events,
//! and commits. The SQL is in `sql/`, written once and compiled per backend by `sqlite.rs` and
//! `postgres.rs`; [`dispatch!`] picks the backend in use. Rows and their conversion to the
//! domain's records are in `rows.rs`.

mod postgres;
mod rows;
mod sqlite;

use medcov_store::outbox::Actor;
use medcov_store::{Backend, Database, Migrations, Split, StoreError, Tx, Writes, dispatch};
use sqlx::migrate::Migrator;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::access::AccessEntry;
use crate::domain::appointment::{Appointment, AppointmentChange, Slot};
use crate::domain::coverage::Coverage;
use crate::domain::encounter::{CatalogEntry, Encounter};
use crate::domain::hospital::Hospital;
use crate::domain::patient::{self, HistoryEntry, Patient, PatientDetails, Search};
use crate::domain::practitioner::Practitioner;
use crate::domain::preauth::Approval;

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

// Hospitals.

/// Inserts a hospital; a code already taken is a [`StoreError::Duplicate`].
pub async fn insert_hospital(tx: &mut Tx, hospital: &Hospital) -> Result<(), StoreError> {
    dispatch!(tx, hospitals::insert(hospital))
}

pub async fn hospital(db: &Database, id: Uuid) -> Result<Option<Hospital>, StoreError> {
    dispatch!(db, hospitals::by_id(id))
}

/// Every hospital, by name.
pub async fn hospitals(db: &Database) -> Result<Vec<Hospital>, StoreError> {
    dispatch!(db, hospitals::all())
}

/// Writes a hospital's name, address and opening hours if it is still at version `expected`;
/// `false` when it is not.
pub async fn update_hospital(tx: &mut Tx, hospital: &Hospital, expected: i64) -> Result<bool, StoreError> {
    dispatch!(tx, hospitals::update(hospital, expected))
}

/// Takes the next `count` (at least one) patient numbers of a hospital in the caller's
/// transaction, locking the hospital's row until it ends: its code and the last of them (the
/// others are the `count - 1` before it); `None` when there is no such hospital. Where
/// [`record_number_ahead`] took one, that one is used instead.
pub async fn next_record_numbers(tx: &mut Tx, hospital: Uuid, count: i64) -> Result<Option<(String, i64)>, StoreError> {
    dispatch!(tx, hospitals::next_record_numbers(hospital, count))
}

/// Whether registrations on `db` take their record number ahead of their transaction
/// ([`record_number_ahead`]): on PostgreSQL. On SQLite, where a write transaction holds the
/// whole database anyway, the number is taken in the registration's transaction
/// ([`next_record_numbers`]) and never skips.
pub fn numbers_ahead(db: &Database) -> bool {
    db.backend() == Backend::Postgres
}

/// On PostgreSQL, takes the next patient number of a hospital ahead of the registration's
/// transaction, in a transaction of its own committed at once without waiting for its WAL
/// flush: the hospital's row is locked for this one statement, not through the rest of the
/// registration and its commit, so one hospital's registrations overlap instead of queueing
/// behind its row. That is safe: the registration that uses the number commits after it,
/// with a flush that writes the number's change too, and a number whose change a crash lost
/// was used by nothing. A registration that fails after this leaves its number unused, so
/// numbers are unique and increasing but may skip. `None` when there is no such hospital,
/// and on SQLite (see [`numbers_ahead`]).
pub async fn record_number_ahead(db: &Database, hospital: Uuid) -> Result<Option<(String, i64)>, StoreError> {
    match db.split() {
        Split::Sqlite(_) => Ok(None),
        Split::Postgres(pool) => postgres::record_number_ahead(pool, hospital).await,
    }
}

// Patients.

/// The record numbers of up to five patients of `hospital` who may be the person described
/// (same folded names and date of birth), read in `tx`.
pub async fn possible_duplicates(
    tx: &mut Tx,
    hospital: Uuid,
    details: &PatientDetails,
) -> Result<Vec<String>, StoreError> {
    let (family, given) = folded_names(details);
    dispatch!(tx, patients::duplicates(hospital, (&family, &given), details.date_of_birth))
}

/// [`possible_duplicates`] as committed now, read outside any transaction.
pub async fn possible_duplicates_now(
    db: &Database,
    hospital: Uuid,
    details: &PatientDetails,
) -> Result<Vec<String>, StoreError> {
    let (family, given) = folded_names(details);
    dispatch!(db, patients::duplicates_now(hospital, (&family, &given), details.date_of_birth))
}

/// The family and given names as a duplicate check compares them.
fn folded_names(details: &PatientDetails) -> (String, String) {
    (patient::search_key(&details.family_name), patient::search_key(&details.given_name))
}

/// Inserts a new record with its lookup keys and its first history entry.
pub async fn insert_patient(tx: &mut Tx, patient: &Patient, actor: &Actor) -> Result<(), StoreError> {
    let mut writes = tx.writes();
    gather_patient(&mut writes, patient, actor);
    writes.run(tx).await.map(drop)
}

/// [`insert_patient`] gathered in `writes`.
pub fn gather_patient(writes: &mut Writes, patient: &Patient, actor: &Actor) {
    dispatch!(gather writes, patients::gather_insert(patient, actor))
}

/// Writes a record at its new version, with its lookup keys and history entry, if the stored
/// version is `expected`; `false` (and nothing written) when it is not.
pub async fn update_patient(tx: &mut Tx, patient: &Patient, expected: i64, actor: &Actor) -> Result<bool, StoreError> {
    if !dispatch!(tx, patients::update(patient, expected))? {
        return Ok(false);
    }
    dispatch!(tx, patients::replace_keys_and_log(patient, actor))?;
    Ok(true)
}

pub async fn patient(db: &Database, id: Uuid) -> Result<Option<Patient>, StoreError> {
    dispatch!(db, patients::by_id(id))
}

/// Patients of `hospitals` matching every given criterion, by family then given name.
pub async fn search_patients(
    db: &Database,
    hospitals: &[Uuid],
    search: &Search,
    limit: i64,
    offset: i64,
) -> Result<Vec<Patient>, StoreError> {
    if hospitals.is_empty() {
        return Ok(Vec::new());
    }
    dispatch!(db, patients::search(hospitals, search, limit, offset))
}

/// Every version of a record, oldest first.
pub async fn patient_history(db: &Database, patient: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
    dispatch!(db, patients::history(patient))
}

// The access log.

pub async fn log_access(tx: &mut Tx, entry: &AccessEntry) -> Result<(), StoreError> {
    dispatch!(tx, access::insert_all(&[entry]))
}

/// [`log_access`] gathered in `writes`.
pub fn gather_access(writes: &mut Writes, entry: &AccessEntry) {
    dispatch!(gather writes, access::gather_insert(&[entry]))
}

/// Appends `entries`, all committed or none: on PostgreSQL in one statement when they fit
/// (no round trips to begin and commit), else in one write transaction.
pub async fn log_accesses(db: &Database, entries: &[&AccessEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    if let Split::Postgres(pool) = db.split()
        && entries.len() <= postgres::access::MANY
    {
        return postgres::log_accesses_at_once(pool, entries).await;
    }
    let mut tx = db.begin_write().await?;
    dispatch!(&mut tx, access::insert_all(entries))?;
    tx.commit().await
}

/// Access-log entries in time order, by patient and/or user, after `after`, within
/// `hospitals` (`None`: all).
pub async fn access_log(
    db: &Database,
    hospitals: Option<&[Uuid]>,
    patient: Option<Uuid>,
    user: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AccessEntry>, StoreError> {
    dispatch!(db, access::list(hospitals, patient, user, after, limit))
}

// Practitioners.

pub async fn insert_practitioner(tx: &mut Tx, practitioner: &Practitioner) -> Result<(), StoreError> {
    dispatch!(tx, practitioners::insert(practitioner))
}

pub async fn practitioner(db: &Database, id: Uuid) -> Result<Option<Practitioner>, StoreError> {
    dispatch!(db, practitioners::by_id(id))
}

/// The practitioners of `hospitals`, by name.
pub async fn practitioners(db: &Database, hospitals: &[Uuid]) -> Result<Vec<Practitioner>, StoreError> {
    dispatch!(db, practitioners::of_hospitals(hospitals))
}

/// Writes a practitioner if still at version `expected`; `false` when not.
pub async fn update_practitioner(
    tx: &mut Tx,
    practitioner: &Practitioner,
    expected: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    dispatch!(tx, practitioners::update(practitioner, expected, now))
}

/// Locks an active practitioner's row for a booking and returns their daily capacity;
/// `None` when they take no appointments.
pub async fn hold_practitioner(tx: &mut Tx, id: Uuid) -> Result<Option<i32>, StoreError> {
    dispatch!(tx, practitioners::hold(id))
}

// Appointments.

/// The first active appointment of the practitioner or the patient overlapping `slot`, other
/// than `except`.
pub async fn overlapping_appointment(
    tx: &mut Tx,
    practitioner: Uuid,
    patient: Uuid,
    slot: &Slot,
    except: Option<Uuid>,
) -> Result<Option<Uuid>, StoreError> {
    dispatch!(tx, appointments::overlapping((practitioner, patient), slot, except))
}

/// The practitioner's appointments (other than `except`) on a local date, cancelled ones
/// aside.
pub async fn appointments_on(
    tx: &mut Tx,
    practitioner: Uuid,
    date: Date,
    except: Option<Uuid>,
) -> Result<i64, StoreError> {
    dispatch!(tx, appointments::booked_on(practitioner, date, except))
}

/// Inserts a new appointment in `slot` with its first history entry.
pub async fn insert_appointment(
    tx: &mut Tx,
    appointment: &Appointment,
    slot: &Slot,
    change: &AppointmentChange,
) -> Result<(), StoreError> {
    dispatch!(tx, appointments::insert(appointment, slot.local_date, change.at))?;
    dispatch!(tx, appointments::insert_change(change))
}

/// Writes an appointment's new times (`slot`) with its history entry if the stored version is
/// `expected`; `false` when it is not.
pub async fn reschedule_appointment(
    tx: &mut Tx,
    appointment: &Appointment,
    slot: &Slot,
    expected: i64,
    change: &AppointmentChange,
) -> Result<bool, StoreError> {
    if !dispatch!(tx, appointments::reschedule(appointment, slot.local_date, expected, change.at))? {
        return Ok(false);
    }
    dispatch!(tx, appointments::insert_change(change))?;
    Ok(true)
}

/// Writes an appointment's new status with its history entry if the stored version is
/// `expected`; `false` when it is not.
pub async fn set_appointment_status(
    tx: &mut Tx,
    appointment: &Appointment,
    expected: i64,
    change: &AppointmentChange,
) -> Result<bool, StoreError> {
    if !dispatch!(tx, appointments::set_status(appointment, expected, change.at))? {
        return Ok(false);
    }
    dispatch!(tx, appointments::insert_change(change))?;
    Ok(true)
}

/// Whether a write was refused by PostgreSQL's exclusion constraints (two active appointments
/// of one practitioner or one patient overlapping). The transaction is then aborted.
pub fn is_overlap(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23P01"))
}

pub async fn appointment(db: &Database, id: Uuid) -> Result<Option<Appointment>, StoreError> {
    dispatch!(db, appointments::by_id(id))
}

/// A practitioner's appointments overlapping `[from, to)` (Unix seconds), by start.
pub async fn practitioner_appointments(
    db: &Database,
    practitioner: Uuid,
    from: i64,
    to: i64,
) -> Result<Vec<Appointment>, StoreError> {
    dispatch!(db, appointments::of_practitioner(practitioner, (from, to)))
}

/// A patient's appointments from `now` on (soonest first) or, unless `upcoming`, before it
/// (latest first).
pub async fn patient_appointments(
    db: &Database,
    patient: Uuid,
    now: i64,
    upcoming: bool,
    window: (i64, i64),
) -> Result<Vec<Appointment>, StoreError> {
    dispatch!(db, appointments::of_patient(patient, now, upcoming, window))
}

/// Every version of an appointment, oldest first.
pub async fn appointment_history(db: &Database, id: Uuid) -> Result<Vec<AppointmentChange>, StoreError> {
    dispatch!(db, appointments::history(id))
}

// The service catalog and encounters.

/// Adds a catalog entry; a code the hospital already has is a [`StoreError::Duplicate`].
pub async fn insert_catalog_entry(tx: &mut Tx, entry: &CatalogEntry) -> Result<(), StoreError> {
    dispatch!(tx, catalog::insert(entry))
}

/// A hospital's catalog, by code.
pub async fn catalog(db: &Database, hospital: Uuid) -> Result<Vec<CatalogEntry>, StoreError> {
    dispatch!(db, catalog::of_hospital(hospital))
}

/// Inserts an encounter; a second one for an appointment is a [`StoreError::Duplicate`].
pub async fn insert_encounter(tx: &mut Tx, encounter: &Encounter) -> Result<(), StoreError> {
    dispatch!(tx, encounters::insert(encounter))
}

pub async fn encounter(db: &Database, id: Uuid) -> Result<Option<Encounter>, StoreError> {
    dispatch!(db, encounters::by_id(id))
}

/// Writes an encounter's record, status and closing time if it is still open at `expected`;
/// `false` when it is not.
pub async fn save_encounter(tx: &mut Tx, encounter: &Encounter, expected: i64) -> Result<bool, StoreError> {
    dispatch!(tx, encounters::save(encounter, expected))
}

// Coverage.

/// Gathers in `writes` the latest answers about a patient's member numbers; answers about a
/// patient not on record are dropped.
pub fn gather_coverage(writes: &mut Writes, patient: Uuid, answers: &[Coverage], now: OffsetDateTime) {
    dispatch!(gather writes, coverage::gather_upserts(patient, answers, now))
}

// Pre-authorisations.

/// Replaces what a pre-authorisation grants (the latest decision).
pub async fn replace_approvals(tx: &mut Tx, preauth: Uuid, approvals: &[Approval]) -> Result<(), StoreError> {
    dispatch!(tx, preauths::replace(preauth, approvals))
}

/// What a pre-authorisation grants, as far as the hospital knows.
pub async fn approvals(db: &Database, preauth: Uuid) -> Result<Vec<Approval>, StoreError> {
    dispatch!(db, preauths::of(preauth))
}

/// The answers about a patient's member numbers, by member number.
pub async fn coverage(db: &Database, patient: Uuid) -> Result<Vec<Coverage>, StoreError> {
    dispatch!(db, coverage::of_patient(patient))
}

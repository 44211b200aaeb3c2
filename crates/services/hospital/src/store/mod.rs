//! The hospital service's tables: hospitals, patients (with their lookup keys, history and
//! access log) and the outbox.
//!
//! SQL is written once and runs on either backend ([`medcov_store::on_pool!`]); schemas differ
//! per backend only in column types. Each change is one transaction with its history row, its
//! access-log row and its outbox event, so none exists without the others.
//!
//! - [`schedule`]: practitioners and appointments.
//! - [`encounters`]: the service catalog and encounters.
//! - [`coverage`]: what insurers answered about patients' member numbers.

use medcov_store::{Database, Migrations, WritePool, on_pool};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

pub mod coverage;
pub mod encounters;
pub mod schedule;

use crate::domain::hospital::Address;
use crate::domain::patient::{self, IdentifierKind, PatientDetails, PatientStatus};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Hospital {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub timezone: String,
    pub currency: String,
    #[schema(value_type = Address)]
    pub address: Json<Address>,
    /// When it takes appointments, per weekday, in its time zone; empty: always open.
    #[schema(value_type = Vec<crate::domain::schedule::WorkingHours>)]
    pub opening_hours: Json<Vec<crate::domain::schedule::WorkingHours>>,
    pub active: bool,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

const HOSPITAL_COLUMNS: &str =
    "id, code, name, timezone, currency, address, opening_hours, active, version, created_at, updated_at";

/// A patient record.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Patient {
    pub id: Uuid,
    pub hospital_id: Uuid,
    /// Medical record number, unique in the hospital, with a check digit.
    #[schema(example = "SMG-00000174")]
    pub mrn: String,
    #[serde(flatten)]
    pub details: PatientDetails,
    /// Send it back as `If-Match: "<version>"` when changing the record.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct PatientRow {
    id: Uuid,
    hospital_id: Uuid,
    mrn: String,
    details: Json<PatientDetails>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

// Patients are cached as JSON.
medcov_cache::json_codec!(Patient);

/// The cache tag of one patient's record.
pub fn patient_tag(id: Uuid) -> Vec<String> {
    vec![format!("hospital:patient:{id}")]
}

impl From<PatientRow> for Patient {
    fn from(row: PatientRow) -> Self {
        Patient {
            id: row.id,
            hospital_id: row.hospital_id,
            mrn: row.mrn,
            details: row.details.0,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const PATIENT_COLUMNS: &str = "id, hospital_id, mrn, details, version, created_at, updated_at";

/// One version of a patient record.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: OffsetDateTime,
    pub changed_by: Uuid,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub record: Json<serde_json::Value>,
}

/// One read or write of a patient record.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccessEntry {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    /// `create`, `read`, `update`, `search`.
    pub action: String,
    pub request_id: Option<String>,
}

/// What a search asks for; every given criterion must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// A prefix of the family or given name, folded by [`patient::search_key`].
    pub name: Option<String>,
    pub date_of_birth: Option<Date>,
    pub mrn: Option<String>,
    pub identifier: Option<String>,
    pub member_number: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a hospital with this code exists")]
    CodeTaken,
    #[error("no such hospital")]
    UnknownHospital,
    #[error("possible duplicates")]
    PossibleDuplicates(Vec<(Uuid, String)>),
    #[error("the record changed since it was read")]
    Stale,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

fn status_text(status: PatientStatus) -> &'static str {
    match status {
        PatientStatus::Active => "active",
        PatientStatus::Inactive => "inactive",
        PatientStatus::Deceased => "deceased",
    }
}

fn key_kind(kind: IdentifierKind) -> &'static str {
    match kind {
        IdentifierKind::NationalId => "national_id",
        IdentifierKind::Passport => "passport",
        IdentifierKind::BirthCertificate => "birth_certificate",
        IdentifierKind::Other => "other",
    }
}

/// The lookup rows of a record: each identifier by its kind, each member number as `member`.
fn lookup_keys(details: &PatientDetails) -> Vec<(&'static str, String)> {
    let mut keys: Vec<(&'static str, String)> =
        details.identifiers.iter().map(|i| (key_kind(i.kind), i.value.clone())).collect();
    keys.extend(details.member_numbers.iter().map(|m| ("member", m.member_number.clone())));
    keys.sort();
    keys.dedup();
    keys
}

pub use medcov_store::outbox::{Actor, Event};
use medcov_store::write_outbox;

macro_rules! write_access {
    ($tx:expr, $actor:expr, $patient:expr, $hospital:expr, $action:expr) => {
        sqlx::query(
            "INSERT INTO access_log (id, at, user_id, patient_id, hospital_id, action, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(OffsetDateTime::now_utc())
        .bind($actor.user_id)
        .bind($patient)
        .bind($hospital)
        .bind($action)
        .bind(&$actor.request_id)
        .execute(&mut *$tx)
        .await
    };
}

macro_rules! write_history_and_keys {
    ($tx:expr, $actor:expr, $patient:expr) => {{
        sqlx::query("DELETE FROM patient_keys WHERE patient_id = $1").bind($patient.id).execute(&mut *$tx).await?;
        for (kind, value) in lookup_keys(&$patient.details) {
            sqlx::query("INSERT INTO patient_keys (patient_id, hospital_id, kind, value) VALUES ($1, $2, $3, $4)")
                .bind($patient.id)
                .bind($patient.hospital_id)
                .bind(kind)
                .bind(value)
                .execute(&mut *$tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO patient_history (patient_id, version, changed_at, changed_by, request_id, record) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($patient.id)
        .bind($patient.version)
        .bind($patient.updated_at)
        .bind($actor.user_id)
        .bind(&$actor.request_id)
        .bind(Json(&$patient))
        .execute(&mut *$tx)
        .await
    }};
}

#[derive(Clone)]
pub struct HospitalStore {
    db: Database,
    cache: std::sync::Arc<dyn medcov_cache::Cache>,
    registration: medcov_bus::orchestrator::Definition,
}

impl HospitalStore {
    /// A store with an in-process cache.
    pub fn new(db: Database) -> HospitalStore {
        let cache = medcov_cache::MemoryCache::new(10_000, std::time::Duration::from_secs(300));
        HospitalStore::with_cache(db, std::sync::Arc::new(cache))
    }

    /// A store with the given cache (Redis when distributed).
    pub fn with_cache(db: Database, cache: std::sync::Arc<dyn medcov_cache::Cache>) -> HospitalStore {
        let registration = crate::sagas::registration(std::time::Duration::from_secs(30));
        HospitalStore { db, cache, registration }
    }

    /// The registration saga's steps wait `timeout` for each reply.
    pub fn with_step_timeout(mut self, timeout: std::time::Duration) -> HospitalStore {
        self.registration = crate::sagas::registration(timeout);
        self
    }

    /// The patient-registration saga.
    pub fn registration(&self) -> &medcov_bus::orchestrator::Definition {
        &self.registration
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn cache(&self) -> &dyn medcov_cache::Cache {
        self.cache.as_ref()
    }

    pub async fn insert_hospital(&self, hospital: &Hospital) -> Result<(), StoreError> {
        let result = on_pool!(&self.db, |pool| {
            sqlx::query(
            "INSERT INTO hospitals (id, code, name, timezone, currency, address, opening_hours, active, mrn_seq, version, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10)"
        )
        .bind(hospital.id)
        .bind(&hospital.code)
        .bind(&hospital.name)
        .bind(&hospital.timezone)
        .bind(&hospital.currency)
        .bind(&hospital.address)
        .bind(&hospital.opening_hours)
        .bind(hospital.active)
        .bind(hospital.version)
        .bind(hospital.created_at)
        .execute(pool)
        .await
        .map(|_| ())
        });
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::CodeTaken),
            other => other.map_err(StoreError::from),
        }
    }

    pub async fn hospital(&self, id: Uuid) -> Result<Option<Hospital>, StoreError> {
        let sql = format!("SELECT {HOSPITAL_COLUMNS} FROM hospitals WHERE id = $1");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?)
    }

    /// Writes a hospital's changed name, address and opening hours if it is still at version
    /// `expected`; returns it at its new version.
    pub async fn update_hospital(&self, hospital: &Hospital, expected: i64) -> Result<Hospital, StoreError> {
        let done = on_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE hospitals SET name = $1, address = $2, opening_hours = $3, updated_at = $4, version = version + 1 \
                 WHERE id = $5 AND version = $6",
            )
            .bind(&hospital.name)
            .bind(&hospital.address)
            .bind(&hospital.opening_hours)
            .bind(hospital.updated_at)
            .bind(hospital.id)
            .bind(expected)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(StoreError::Stale);
        }
        self.hospital(hospital.id).await?.ok_or(StoreError::Stale)
    }

    pub async fn hospitals(&self) -> Result<Vec<Hospital>, StoreError> {
        let sql = format!("SELECT {HOSPITAL_COLUMNS} FROM hospitals ORDER BY name, id");
        Ok(on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await)?)
    }

    /// Registers a patient: numbers them, and writes the record, its keys, its first history
    /// entry, the access-log entry and the `patient_registered` event in one transaction.
    /// Refuses a possible duplicate (same folded names and date of birth in the hospital)
    /// unless `allow_duplicate`.
    pub async fn register_patient(
        &self,
        id: Uuid,
        hospital_id: Uuid,
        details: &PatientDetails,
        actor: &Actor,
        allow_duplicate: bool,
    ) -> Result<Patient, StoreError> {
        let now = OffsetDateTime::now_utc();
        let (given, family) = (patient::search_key(&details.given_name), patient::search_key(&details.family_name));
        let patient: Result<Patient, StoreError> = on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let numbered: Option<(String, i64)> =
                sqlx::query_as("UPDATE hospitals SET mrn_seq = mrn_seq + 1 WHERE id = $1 RETURNING code, mrn_seq")
                    .bind(hospital_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((code, sequence)) = numbered else {
                return Err(StoreError::UnknownHospital);
            };
            if !allow_duplicate {
                let duplicates: Vec<(Uuid, String)> = sqlx::query_as(
                    "SELECT id, mrn FROM patients WHERE hospital_id = $1 AND search_family = $2 AND search_given = $3 \
                     AND date_of_birth = $4 ORDER BY id LIMIT 5",
                )
                .bind(hospital_id)
                .bind(&family)
                .bind(&given)
                .bind(details.date_of_birth)
                .fetch_all(&mut *tx)
                .await?;
                if !duplicates.is_empty() {
                    return Err(StoreError::PossibleDuplicates(duplicates));
                }
            }
            let patient = Patient {
                id,
                hospital_id,
                mrn: patient::medical_record_number(&code, sequence),
                details: details.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
            };
            sqlx::query(
                "INSERT INTO patients (id, hospital_id, mrn, given_name, family_name, search_given, search_family, \
                 date_of_birth, details, status, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(patient.id)
            .bind(hospital_id)
            .bind(&patient.mrn)
            .bind(&details.given_name)
            .bind(&details.family_name)
            .bind(&given)
            .bind(&family)
            .bind(details.date_of_birth)
            .bind(Json(details))
            .bind(status_text(details.status))
            .bind(patient.version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write_history_and_keys!(tx, actor, patient)?;
            write_access!(tx, actor, patient.id, hospital_id, "create")?;
            let event = Event {
                event_type: "hospital.patient_registered.v1",
                aggregate_type: "patient",
                aggregate_id: patient.id,
                tenant_id: hospital_id,
                payload: serde_json::json!({
                    "patient_id": patient.id,
                    "hospital_id": hospital_id,
                    "mrn": patient.mrn,
                    "member_numbers": details.member_numbers,
                }),
            };
            write_outbox!(tx, actor, event)?;
            // Coverage is verified, linked and the account opened by the registration saga.
            if !details.member_numbers.is_empty() {
                let input = serde_json::json!({
                    "patient_id": patient.id,
                    "hospital_id": hospital_id,
                    "member_numbers": details.member_numbers,
                });
                medcov_bus::start_orchestrated!(tx, actor, self.registration, patient.id, hospital_id, input)?;
            }
            tx.commit().await?;
            Ok(patient)
        });
        patient
    }

    /// A patient record; the read is logged when `actor` is given.
    pub async fn patient(&self, id: Uuid) -> Result<Option<Patient>, StoreError> {
        let sql = format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE id = $1");
        let row: Option<PatientRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(Patient::from))
    }

    /// Logs reads of patient records.
    pub async fn log_reads(&self, actor: &Actor, patients: &[(Uuid, Uuid)], action: &str) -> Result<(), StoreError> {
        if patients.is_empty() {
            return Ok(());
        }
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            for (patient, hospital) in patients {
                write_access!(tx, actor, *patient, *hospital, action)?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// Replaces a record's details when its version is `expected_version`; `None` when it is
    /// not (someone changed it since it was read).
    pub async fn update_patient(
        &self,
        current: &Patient,
        expected_version: i64,
        details: &PatientDetails,
        actor: &Actor,
    ) -> Result<Option<Patient>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let updated =
            Patient { details: details.clone(), version: expected_version + 1, updated_at: now, ..current.clone() };
        let changed: bool = on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE patients SET given_name = $1, family_name = $2, search_given = $3, search_family = $4, \
                 date_of_birth = $5, details = $6, status = $7, version = $8, updated_at = $9 \
                 WHERE id = $10 AND version = $11",
            )
            .bind(&details.given_name)
            .bind(&details.family_name)
            .bind(patient::search_key(&details.given_name))
            .bind(patient::search_key(&details.family_name))
            .bind(details.date_of_birth)
            .bind(Json(details))
            .bind(status_text(details.status))
            .bind(updated.version)
            .bind(now)
            .bind(current.id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                Ok::<bool, sqlx::Error>(false)
            } else {
                write_history_and_keys!(tx, actor, updated)?;
                write_access!(tx, actor, updated.id, updated.hospital_id, "update")?;
                let event = Event {
                    event_type: "hospital.patient_updated.v1",
                    aggregate_type: "patient",
                    aggregate_id: updated.id,
                    tenant_id: updated.hospital_id,
                    payload: serde_json::json!({
                        "patient_id": updated.id,
                        "hospital_id": updated.hospital_id,
                        "version": updated.version,
                        "status": details.status,
                        "member_numbers": details.member_numbers,
                    }),
                };
                write_outbox!(tx, actor, event)?;
                tx.commit().await?;
                Ok(true)
            }
        })?;
        Ok(changed.then_some(updated))
    }

    /// Patients of `hospitals` matching every given criterion, by family then given name.
    pub async fn search(
        &self,
        hospitals: &[Uuid],
        search: &Search,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Patient>, StoreError> {
        if hospitals.is_empty() {
            return Ok(Vec::new());
        }
        // A name matches a prefix of the family name or of the given name. An OR of the two
        // would defeat both indexes (PostgreSQL then walks one index filtering everything), so
        // the two ranges are separate index scans joined by UNION: the family branch is already
        // in result order, so it stops after the page; the given branch is short. Filtering and
        // ordering read narrow columns; only the page's rows are read whole.
        let columns = PATIENT_COLUMNS.split(", ").map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ");
        let name = search.name.as_deref().map(|n| {
            let prefix = patient::search_key(n);
            let upper = patient::prefix_upper_bound(&prefix);
            (prefix, upper)
        });
        let rows: Vec<PatientRow> = on_pool!(&self.db, |pool| {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {columns} FROM patients w JOIN (SELECT c.id, c.search_family, c.search_given FROM ("
            ));
            // The criteria other than the name, on `p`.
            macro_rules! filters {
                () => {{
                    query.push(" WHERE p.hospital_id IN (");
                    let mut list = query.separated(", ");
                    for hospital in hospitals {
                        list.push_bind(*hospital);
                    }
                    query.push(")");
                    if let Some(date) = search.date_of_birth {
                        query.push(" AND p.date_of_birth = ").push_bind(date);
                    }
                    if let Some(mrn) = &search.mrn {
                        query.push(" AND p.mrn = ").push_bind(mrn.trim().to_uppercase());
                    }
                    // Driven from the key: an index seek on the value, then the few holders.
                    for (kind, value) in [("identifier", &search.identifier), ("member", &search.member_number)] {
                        if let Some(value) = value {
                            query.push(" AND p.id IN (SELECT k.patient_id FROM patient_keys k WHERE k.value = ");
                            query.push_bind(value.trim().to_uppercase());
                            query.push(if kind == "member" {
                                " AND k.kind = 'member')"
                            } else {
                                " AND k.kind <> 'member')"
                            });
                        }
                    }
                }};
            }
            match &name {
                Some((prefix, upper)) => {
                    query.push("SELECT f.id, f.search_family, f.search_given FROM (SELECT p.id, p.search_family, p.search_given FROM patients p");
                    filters!();
                    query
                        .push(" AND p.search_family >= ")
                        .push_bind(prefix.clone())
                        .push(" AND p.search_family < ")
                        .push_bind(upper.clone())
                        .push(" ORDER BY p.search_family, p.search_given, p.id LIMIT ")
                        .push_bind(limit + offset)
                        .push(") f UNION SELECT p.id, p.search_family, p.search_given FROM patients p");
                    filters!();
                    query
                        .push(" AND p.search_given >= ")
                        .push_bind(prefix.clone())
                        .push(" AND p.search_given < ")
                        .push_bind(upper.clone());
                }
                None => {
                    query.push("SELECT p.id, p.search_family, p.search_given FROM patients p");
                    filters!();
                }
            }
            query
                .push(") c ORDER BY c.search_family, c.search_given, c.id LIMIT ")
                .push_bind(limit)
                .push(" OFFSET ")
                .push_bind(offset)
                .push(") page ON page.id = w.id ORDER BY page.search_family, page.search_given, page.id");
            query.build_query_as().fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Patient::from).collect())
    }

    pub async fn history(&self, patient: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            sqlx::query_as(
            "SELECT version, changed_at, changed_by, request_id, record FROM patient_history WHERE patient_id = $1 ORDER BY version"
        )
        .bind(patient)
        .fetch_all(pool)
        .await
        })?)
    }

    /// Access-log entries in time order, by patient and/or user, within `hospitals`.
    pub async fn access_log(
        &self,
        hospitals: Option<&[Uuid]>,
        patient: Option<Uuid>,
        user: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AccessEntry>, StoreError> {
        Ok(on_pool!(&self.db, |pool| {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT id, at, user_id, patient_id, hospital_id, action, request_id FROM access_log WHERE 1 = 1",
            );
            if let Some(hospitals) = hospitals {
                query.push(" AND hospital_id IN (");
                let mut list = query.separated(", ");
                for hospital in hospitals {
                    list.push_bind(*hospital);
                }
                list.push_bind(Uuid::nil());
                query.push(")");
            }
            if let Some(patient) = patient {
                query.push(" AND patient_id = ").push_bind(patient);
            }
            if let Some(user) = user {
                query.push(" AND user_id = ").push_bind(user);
            }
            if let Some(after) = after {
                query.push(" AND id > ").push_bind(after);
            }
            query.push(" ORDER BY id LIMIT ").push_bind(limit);
            query.build_query_as().fetch_all(pool).await
        })?)
    }
}

//! `patients`, their lookup keys (`patient_keys`) and history (`patient_history`).

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use medcov_store::outbox::Actor;
use sqlx::QueryBuilder;
use sqlx::types::Json;
use time::Date;
use uuid::Uuid;

use super::{Db, Pool, Tx, Writes};
use crate::domain::patient::{self, HistoryEntry, Patient, Search};
use crate::store::rows::{HistoryRow, PATIENT_COLUMNS, PatientRow};

const DUPLICATES: &str = "SELECT mrn FROM patients WHERE hospital_id = $1 AND search_family = $2 \
    AND search_given = $3 AND date_of_birth = $4 ORDER BY id LIMIT 5";

/// The record numbers of up to five patients of `hospital` with these folded names and date
/// of birth, read in `tx`.
pub(crate) async fn duplicates(
    tx: &mut Tx,
    hospital: Uuid,
    (family, given): (&str, &str),
    date_of_birth: Date,
) -> Result<Vec<String>, StoreError> {
    let query = sqlx::query_scalar(DUPLICATES).bind(hospital).bind(family).bind(given).bind(date_of_birth);
    Ok(query.fetch_all(&mut **tx).await?)
}

/// [`duplicates`] read on the pool, outside any transaction.
pub(crate) async fn duplicates_now(
    pool: &Pool,
    hospital: Uuid,
    (family, given): (&str, &str),
    date_of_birth: Date,
) -> Result<Vec<String>, StoreError> {
    let query = sqlx::query_scalar(DUPLICATES).bind(hospital).bind(family).bind(given).bind(date_of_birth);
    Ok(query.fetch_all(pool).await?)
}

/// Gathers the insert of a new record, its lookup keys and its first history entry.
pub(crate) fn gather_insert(writes: &mut Writes, patient: &Patient, actor: &Actor) {
    let details = &patient.details;
    writes
        .statement(
            "INSERT INTO patients (id, hospital_id, mrn, given_name, family_name, search_given, search_family, \
             date_of_birth, details, status, version, created_at, updated_at) ",
        )
        .push_values([patient], |mut row, patient| {
            row.push_bind(patient.id)
                .push_bind(patient.hospital_id)
                .push_bind(&patient.mrn)
                .push_bind(&details.given_name)
                .push_bind(&details.family_name)
                .push_bind(patient::search_key(&details.given_name))
                .push_bind(patient::search_key(&details.family_name))
                .push_bind(details.date_of_birth)
                .push_bind(Json(details))
                .push_bind(details.status.as_str())
                .push_bind(patient.version)
                .push_bind(patient.created_at)
                .push_bind(patient.updated_at);
        });
    gather_keys(writes, patient);
    gather_history(writes, patient, actor);
}

/// Writes the record's details at its version if the stored one is `expected`.
pub(crate) async fn update(tx: &mut Tx, patient: &Patient, expected: i64) -> Result<bool, StoreError> {
    let details = &patient.details;
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
    .bind(details.status.as_str())
    .bind(patient.version)
    .bind(patient.updated_at)
    .bind(patient.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the record's lookup keys with those of its details, and appends the record, as it
/// is at its version, to its history.
pub(crate) async fn replace_keys_and_log(tx: &mut Tx, patient: &Patient, actor: &Actor) -> Result<(), StoreError> {
    let mut writes = Writes::default();
    writes.statement("DELETE FROM patient_keys WHERE patient_id = ").push_bind(patient.id);
    gather_keys(&mut writes, patient);
    gather_history(&mut writes, patient, actor);
    writes.run(tx).await?;
    Ok(())
}

/// Gathers the lookup keys of a record that has none, in one statement.
fn gather_keys(writes: &mut Writes, patient: &Patient) {
    let keys = patient::lookup_keys(&patient.details);
    if keys.is_empty() {
        return;
    }
    writes.statement("INSERT INTO patient_keys (patient_id, hospital_id, kind, value) ").push_values(
        keys,
        |mut row, (kind, value)| {
            row.push_bind(patient.id).push_bind(patient.hospital_id).push_bind(kind).push_bind(value);
        },
    );
}

/// Gathers the record, as it is at its version, appended to its history.
fn gather_history(writes: &mut Writes, patient: &Patient, actor: &Actor) {
    writes
        .statement("INSERT INTO patient_history (patient_id, version, changed_at, changed_by, request_id, record) ")
        .push_values([patient], |mut row, patient| {
            row.push_bind(patient.id)
                .push_bind(patient.version)
                .push_bind(patient.updated_at)
                .push_bind(actor.user_id)
                .push_bind(&actor.request_id)
                .push_bind(Json(patient));
        });
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Patient>, StoreError> {
    let sql = format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE id = $1");
    let row: Option<PatientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Patient::from))
}

/// The criteria other than the name, on `p`.
fn push_filters(query: &mut QueryBuilder<Db>, hospitals: &[Uuid], search: &Search) {
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
            query.push(if kind == "member" { " AND k.kind = 'member')" } else { " AND k.kind <> 'member')" });
        }
    }
}

pub(crate) async fn search(
    pool: &Pool,
    hospitals: &[Uuid],
    search: &Search,
    limit: i64,
    offset: i64,
) -> Result<Vec<Patient>, StoreError> {
    // A name matches a prefix of the family name or of the given name. An OR of the two
    // would defeat both indexes (PostgreSQL then walks one index filtering everything), so
    // the two ranges are separate index scans joined by UNION: the family branch is already
    // in result order, so it stops after the page; the given branch is short. Filtering and
    // ordering read narrow columns; only the page's rows are read whole.
    let columns = PATIENT_COLUMNS.split(", ").map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ");
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT {columns} FROM patients w JOIN (SELECT c.id, c.search_family, c.search_given FROM ("
    ));
    match search.name.as_deref() {
        Some(name) => {
            let prefix = patient::search_key(name);
            let upper = patient::prefix_upper_bound(&prefix);
            query.push(
                "SELECT f.id, f.search_family, f.search_given FROM (SELECT p.id, p.search_family, p.search_given \
                 FROM patients p",
            );
            push_filters(&mut query, hospitals, search);
            query
                .push(" AND p.search_family >= ")
                .push_bind(prefix.clone())
                .push(" AND p.search_family < ")
                .push_bind(upper.clone())
                .push(" ORDER BY p.search_family, p.search_given, p.id LIMIT ")
                .push_bind(limit + offset)
                .push(") f UNION SELECT p.id, p.search_family, p.search_given FROM patients p");
            push_filters(&mut query, hospitals, search);
            query.push(" AND p.search_given >= ").push_bind(prefix).push(" AND p.search_given < ").push_bind(upper);
        }
        None => {
            query.push("SELECT p.id, p.search_family, p.search_given FROM patients p");
            push_filters(&mut query, hospitals, search);
        }
    }
    query
        .push(") c ORDER BY c.search_family, c.search_given, c.id LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset)
        .push(") page ON page.id = w.id ORDER BY page.search_family, page.search_given, page.id");
    let rows: Vec<PatientRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(Patient::from).collect())
}

pub(crate) async fn history(pool: &Pool, patient: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT version, changed_at, changed_by, request_id, record FROM patient_history WHERE patient_id = $1 \
         ORDER BY version",
    )
    .bind(patient)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(HistoryEntry::from).collect())
}

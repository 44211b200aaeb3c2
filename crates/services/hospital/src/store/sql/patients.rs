//! `patients`, their lookup keys (`patient_keys`) and history (`patient_history`).

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use medcov_store::outbox::Actor;
use sqlx::QueryBuilder;
use sqlx::types::Json;
use time::Date;
use uuid::Uuid;

use super::{Db, Pool, Tx};
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

pub(crate) async fn insert(tx: &mut Tx, patient: &Patient) -> Result<(), StoreError> {
    let details = &patient.details;
    sqlx::query(
        "INSERT INTO patients (id, hospital_id, mrn, given_name, family_name, search_given, search_family, \
         date_of_birth, details, status, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(patient.id)
    .bind(patient.hospital_id)
    .bind(&patient.mrn)
    .bind(&details.given_name)
    .bind(&details.family_name)
    .bind(patient::search_key(&details.given_name))
    .bind(patient::search_key(&details.family_name))
    .bind(details.date_of_birth)
    .bind(Json(details))
    .bind(details.status.as_str())
    .bind(patient.version)
    .bind(patient.created_at)
    .bind(patient.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

/// Replaces the record's lookup keys with those of its details.
pub(crate) async fn replace_keys(tx: &mut Tx, patient: &Patient) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM patient_keys WHERE patient_id = $1").bind(patient.id).execute(&mut **tx).await?;
    insert_keys(tx, patient).await
}

/// Writes the lookup keys of a record that has none, in one statement.
pub(crate) async fn insert_keys(tx: &mut Tx, patient: &Patient) -> Result<(), StoreError> {
    let keys = patient::lookup_keys(&patient.details);
    if keys.is_empty() {
        return Ok(());
    }
    let mut query: QueryBuilder<Db> =
        QueryBuilder::new("INSERT INTO patient_keys (patient_id, hospital_id, kind, value) ");
    query.push_values(keys, |mut row, (kind, value)| {
        row.push_bind(patient.id).push_bind(patient.hospital_id).push_bind(kind).push_bind(value);
    });
    query.build().execute(&mut **tx).await?;
    Ok(())
}

/// Appends the record, as it is at its version, to its history.
pub(crate) async fn insert_history(tx: &mut Tx, patient: &Patient, actor: &Actor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO patient_history (patient_id, version, changed_at, changed_by, request_id, record) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(patient.id)
    .bind(patient.version)
    .bind(patient.updated_at)
    .bind(actor.user_id)
    .bind(&actor.request_id)
    .bind(Json(patient))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Patient>, StoreError> {
    let sql = format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE id = $1");
    let row: Option<PatientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Patient::from))
}

pub(crate) async fn exists(tx: &mut Tx, id: Uuid) -> Result<bool, StoreError> {
    let found: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM patients WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
    Ok(found.is_some())
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

//! `plans` and `plan_versions`.

use medcov_store::StoreError;
use sqlx::types::Json;
use time::Date;
use uuid::Uuid;

use super::{FOR_NO_KEY_UPDATE, Pool, Tx};
use crate::domain::plan::PlanRules;
use crate::domain::versions::{Plan, PlanVersion};
use crate::store::rows::{PlanHead, VERSION_COLUMNS, VersionRow};

pub(crate) async fn insert(tx: &mut Tx, plan: &Plan, created_at: time::OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO plans (id, insurer_id, code, name, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(plan.id)
        .bind(plan.insurer_id)
        .bind(&plan.code)
        .bind(&plan.name)
        .bind(created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn insert_version(tx: &mut Tx, version: &PlanVersion, created_by: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plan_versions (id, plan_id, version, effective_from, effective_to, rules, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(version.id)
    .bind(version.plan_id)
    .bind(version.version)
    .bind(version.effective_from)
    .bind(version.effective_to)
    .bind(Json(&version.rules))
    .bind(created_by)
    .bind(version.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Locks a plan's row until the transaction ends (on PostgreSQL; a SQLite write transaction
/// holds the whole database).
pub(crate) async fn lock(tx: &mut Tx, id: Uuid) -> Result<(), StoreError> {
    let sql = format!("SELECT id FROM plans WHERE id = $1{FOR_NO_KEY_UPDATE}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    Ok(())
}

pub(crate) async fn versions_in(tx: &mut Tx, plan: Uuid) -> Result<Vec<PlanVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM plan_versions WHERE plan_id = $1 ORDER BY version");
    let rows: Vec<VersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(plan).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(PlanVersion::from).collect())
}

/// Sets the last day of a version (the only change a version ever sees).
pub(crate) async fn close_version(tx: &mut Tx, id: Uuid, last_day: Date) -> Result<(), StoreError> {
    sqlx::query("UPDATE plan_versions SET effective_to = $1 WHERE id = $2")
        .bind(last_day)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Plan>, StoreError> {
    let head: Option<PlanHead> = sqlx::query_as("SELECT id, insurer_id, code, name FROM plans WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    match head {
        Some(head) => Ok(Some(with_versions(pool, head).await?)),
        None => Ok(None),
    }
}

/// The plans of an insurer (or of every insurer), by code.
pub(crate) async fn list(pool: &Pool, insurer: Option<Uuid>) -> Result<Vec<Plan>, StoreError> {
    let heads: Vec<PlanHead> = sqlx::query_as(
        "SELECT id, insurer_id, code, name FROM plans WHERE ($1 IS NULL OR insurer_id = $1) ORDER BY code, id",
    )
    .bind(insurer)
    .fetch_all(pool)
    .await?;
    let mut plans = Vec::with_capacity(heads.len());
    for head in heads {
        plans.push(with_versions(pool, head).await?);
    }
    Ok(plans)
}

async fn with_versions(pool: &Pool, (id, insurer_id, code, name): PlanHead) -> Result<Plan, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM plan_versions WHERE plan_id = $1 ORDER BY version");
    let versions: Vec<VersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(pool).await?;
    Ok(Plan { id, insurer_id, code, name, versions: versions.into_iter().map(PlanVersion::from).collect() })
}

pub(crate) async fn version(pool: &Pool, id: Uuid) -> Result<Option<PlanVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM plan_versions WHERE id = $1");
    let row: Option<VersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(PlanVersion::from))
}

/// The rules of a version, read in the caller's transaction.
pub(crate) async fn rules_in(tx: &mut Tx, version: Uuid) -> Result<PlanRules, StoreError> {
    let rules: Json<PlanRules> =
        sqlx::query_scalar("SELECT rules FROM plan_versions WHERE id = $1").bind(version).fetch_one(&mut **tx).await?;
    Ok(rules.0)
}

/// The versions in force on `today` (open-ended or ending later), by id.
pub(crate) async fn in_force(pool: &Pool, today: Date) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM plan_versions WHERE effective_to IS NULL OR effective_to >= $1 ORDER BY id")
        .bind(today)
        .fetch_all(pool)
        .await?)
}

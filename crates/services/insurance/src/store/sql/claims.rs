//! `claims` and `claim_history`.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use medcov_store::outbox::Actor;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::adjudication::LineResult;
use crate::domain::claim::{Claim, ClaimLine, ClaimStatus, HistoryEntry, NewClaim};
use crate::store::Adjudicated;
use crate::store::rows::{AcceptedRow, CLAIM_SELECT, ClaimRow, HistoryRow};

/// The claim a hospital sent under a reference, with the digest of its request.
pub(crate) async fn by_reference(
    pool: &Pool,
    hospital: Uuid,
    reference: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT id, request_hash FROM claims WHERE hospital_id = $1 AND reference = $2")
        .bind(hospital)
        .bind(reference)
        .fetch_optional(pool)
        .await?)
}

pub(crate) async fn by_reference_in(
    tx: &mut Tx,
    hospital: Uuid,
    reference: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT id, request_hash FROM claims WHERE hospital_id = $1 AND reference = $2")
        .bind(hospital)
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A new claim, `submitted`, at version 1; a reference the hospital used before is a
/// [`StoreError::Duplicate`].
pub(crate) async fn insert(
    tx: &mut Tx,
    id: Uuid,
    claim: &NewClaim,
    submitted_by: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO claims (id, insurer_id, hospital_id, reference, request_hash, policy_id, member_id, \
         plan_version_id, visit_type, currency, status, outcome, lines, result, adjudication_no, insurer_total, \
         patient_total, version, submitted_by, submitted_at, adjudicated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, NULL, $11, NULL, 0, 0, 0, 1, $12, $13, NULL)",
    )
    .bind(id)
    .bind(claim.insurer_id)
    .bind(claim.hospital_id)
    .bind(&claim.reference)
    .bind(&claim.request_hash)
    .bind(claim.policy_id)
    .bind(claim.member_id)
    .bind(claim.visit_type.as_str())
    .bind(&claim.currency)
    .bind(ClaimStatus::Submitted.as_str())
    .bind(Json(&claim.lines))
    .bind(submitted_by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Claim>, StoreError> {
    let sql = format!("{CLAIM_SELECT} WHERE c.id = $1");
    let row: Option<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Claim::try_from).transpose()
}

pub(crate) async fn by_id_in(tx: &mut Tx, id: Uuid) -> Result<Option<Claim>, StoreError> {
    let sql = format!("{CLAIM_SELECT} WHERE c.id = $1");
    let row: Option<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Claim::try_from).transpose()
}

/// Claims of an insurer, of some hospitals, or all, newest first.
pub(crate) async fn list(
    pool: &Pool,
    insurer: Option<Uuid>,
    hospitals: Option<&[Uuid]>,
    filter: &crate::store::ClaimFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Claim>, StoreError> {
    let mut sql = format!(
        "{CLAIM_SELECT} WHERE ($1 IS NULL OR c.insurer_id = $1) AND ($2 IS NULL OR c.status = $2) \
         AND ($5 IS NULL OR m.member_number = $5) AND ($6 IS NULL OR c.reference = $6)"
    );
    let hospitals = hospitals.unwrap_or_default();
    if !hospitals.is_empty() {
        let list: Vec<String> = (0..hospitals.len()).map(|i| format!("${}", i + 7)).collect();
        sql.push_str(&format!(" AND c.hospital_id IN ({})", list.join(", ")));
    }
    sql.push_str(" ORDER BY c.submitted_at DESC, c.id DESC LIMIT $3 OFFSET $4");
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(insurer)
        .bind(filter.status.map(TextEnum::as_str))
        .bind(limit)
        .bind(offset)
        .bind(filter.member_number.as_deref())
        .bind(filter.reference.as_deref());
    for hospital in hospitals {
        query = query.bind(*hospital);
    }
    let rows: Vec<ClaimRow> = query.fetch_all(pool).await?;
    rows.into_iter().map(Claim::try_from).collect()
}

/// Writes an adjudication's result onto its claim, now `adjudicated`.
pub(crate) async fn record_adjudication(
    tx: &mut Tx,
    id: Uuid,
    adjudicated: &Adjudicated<'_>,
) -> Result<(), StoreError> {
    let result = adjudicated.result;
    sqlx::query(
        "UPDATE claims SET status = $1, outcome = $2, result = $3, insurer_total = $4, patient_total = $5, \
         adjudication_no = $6, plan_version_id = $7, version = version + 1, adjudicated_at = $8 WHERE id = $9",
    )
    .bind(ClaimStatus::Adjudicated.as_str())
    .bind(result.outcome().as_str())
    .bind(Json(&result.lines))
    .bind(result.insurer_total())
    .bind(result.patient_total())
    .bind(adjudicated.number)
    .bind(adjudicated.plan_version_id)
    .bind(adjudicated.at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a claim from `from` to `to`, if it is still there at `version`; `false` when not.
pub(crate) async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    version: i64,
    from: ClaimStatus,
    to: ClaimStatus,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE claims SET status = $1, version = version + 1 WHERE id = $2 AND version = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(id)
    .bind(version)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The lines and results of a member's adjudicated or paid claims other than `except`.
pub(crate) async fn accepted_of_member(
    tx: &mut Tx,
    member: Uuid,
    except: Uuid,
) -> Result<Vec<(Vec<ClaimLine>, Option<Vec<LineResult>>)>, StoreError> {
    let rows: Vec<AcceptedRow> =
        sqlx::query_as("SELECT lines, result FROM claims WHERE member_id = $1 AND status IN ($2, $3) AND id <> $4")
            .bind(member)
            .bind(ClaimStatus::Adjudicated.as_str())
            .bind(ClaimStatus::Paid.as_str())
            .bind(except)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|(lines, result)| (lines.0, result.map(|r| r.0))).collect())
}

pub(crate) async fn append_history(
    tx: &mut Tx,
    claim: Uuid,
    actor: &Actor,
    action: &str,
    detail: &serde_json::Value,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO claim_history (id, claim_id, at, actor, action, detail, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(claim)
    .bind(at)
    .bind(actor.user_id)
    .bind(action)
    .bind(Json(detail))
    .bind(&actor.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A claim's history, oldest first.
pub(crate) async fn history(pool: &Pool, claim: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT at, actor, action, detail, request_id FROM claim_history WHERE claim_id = $1 ORDER BY at, id",
    )
    .bind(claim)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(HistoryEntry::from).collect())
}

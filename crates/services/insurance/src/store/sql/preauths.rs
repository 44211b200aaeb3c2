//! `preauths`.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::adjudication::PerSetting;
use crate::domain::preauth::{Preauth, PreauthStatus};
use crate::store::rows::{PREAUTH_COLUMNS, PreauthRow};

pub(crate) async fn insert(
    tx: &mut Tx,
    preauth: &Preauth,
    reserved: PerSetting,
    requested_by: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO preauths (id, insurer_id, hospital_id, policy_id, member_id, visit_type, planned_date, status, \
         lines, requested_amount, approved_amount, reserved_inpatient, reserved_outpatient, valid_until, reason, \
         decided_by, decided_at, used_by_claim, requested_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, $18, $19)",
    )
    .bind(preauth.id)
    .bind(preauth.insurer_id)
    .bind(preauth.hospital_id)
    .bind(preauth.policy_id)
    .bind(preauth.member_id)
    .bind(preauth.visit_type.as_str())
    .bind(preauth.planned_date)
    .bind(preauth.status.as_str())
    .bind(Json(&preauth.lines))
    .bind(preauth.requested_amount)
    .bind(preauth.approved_amount)
    .bind(reserved.inpatient)
    .bind(reserved.outpatient)
    .bind(preauth.valid_until)
    .bind(&preauth.reason)
    .bind(preauth.decided_by)
    .bind(preauth.decided_at)
    .bind(requested_by)
    .bind(preauth.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Preauth>, StoreError> {
    let sql = format!("SELECT {PREAUTH_COLUMNS} FROM preauths WHERE id = $1");
    let row: Option<PreauthRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Preauth::try_from).transpose()
}

pub(crate) async fn by_id_in(tx: &mut Tx, id: Uuid) -> Result<Option<Preauth>, StoreError> {
    let sql = format!("SELECT {PREAUTH_COLUMNS} FROM preauths WHERE id = $1");
    let row: Option<PreauthRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Preauth::try_from).transpose()
}

/// Writes the decision `decided` (with what it reserves), if the request is still pending;
/// `false` when it is not.
pub(crate) async fn decide(tx: &mut Tx, decided: &Preauth, reserved: PerSetting) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE preauths SET status = $1, lines = $2, approved_amount = $3, reserved_inpatient = $4, \
         reserved_outpatient = $5, valid_until = $6, reason = $7, decided_by = $8, decided_at = $9 \
         WHERE id = $10 AND status = $11",
    )
    .bind(decided.status.as_str())
    .bind(Json(&decided.lines))
    .bind(decided.approved_amount)
    .bind(reserved.inpatient)
    .bind(reserved.outpatient)
    .bind(decided.valid_until)
    .bind(&decided.reason)
    .bind(decided.decided_by)
    .bind(decided.decided_at)
    .bind(decided.id)
    .bind(PreauthStatus::Pending.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an approval used by a claim: its reservation gives way to the claim's own amounts.
pub(crate) async fn mark_used(tx: &mut Tx, id: Uuid, claim: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE preauths SET used_by_claim = $1 WHERE id = $2").bind(claim).bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Releases the approvals a claim used.
pub(crate) async fn release(tx: &mut Tx, claim: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE preauths SET used_by_claim = NULL WHERE used_by_claim = $1")
        .bind(claim)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! `policies`, `members`, `policy_members` and `policy_history`.

use medcov_store::StoreError;
use medcov_store::outbox::Actor;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Connection, FOR_NO_KEY_UPDATE, Pool, Tx};
use crate::domain::enrolment::NewMember;
use crate::domain::policy::{MemberStatus, Policy, PolicyStatus, Relationship};
use crate::store::rows::{MEMBER_SELECT, MemberRow, POLICY_COLUMNS, PolicyRow};
use crate::store::{HistoryStep, NewPeriod};

use medcov_domain::TextEnum;

pub(crate) async fn insert_member(
    tx: &mut Tx,
    id: Uuid,
    insurer: Uuid,
    number: &str,
    member: &NewMember,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO members (id, insurer_id, member_number, given_name, family_name, date_of_birth, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(insurer)
    .bind(number)
    .bind(&member.given_name)
    .bind(&member.family_name)
    .bind(member.date_of_birth)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A new period, `pending`, at version 1.
pub(crate) async fn insert(tx: &mut Tx, period: &NewPeriod<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policies (id, insurer_id, number, plan_id, plan_version_id, holder_id, agent_id, start_date, \
         expiry_date, premium, currency, status, ended_on, renewal_of, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13, 1, $14, $14)",
    )
    .bind(period.id)
    .bind(period.new.insurer_id)
    .bind(period.number)
    .bind(period.new.plan_id)
    .bind(period.new.plan_version_id)
    .bind(period.holder_id)
    .bind(period.new.agent_id)
    .bind(period.new.start_date)
    .bind(period.new.expiry_date)
    .bind(period.new.premium)
    .bind(&period.new.currency)
    .bind(PolicyStatus::Pending.as_str())
    .bind(period.new.renewal_of)
    .bind(period.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Puts a member on a period, `active`.
pub(crate) async fn insert_policy_member(
    tx: &mut Tx,
    policy: Uuid,
    member: Uuid,
    relationship: Relationship,
    enrolled_on: Date,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policy_members (policy_id, member_id, relationship, enrolled_on, status, status_on) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(policy)
    .bind(member)
    .bind(relationship.as_str())
    .bind(enrolled_on)
    .bind(MemberStatus::Active.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn insert_history(tx: &mut Tx, step: &HistoryStep<'_>, actor: &Actor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policy_history (id, policy_id, member_id, at, changed_by, from_status, to_status, reason, \
         request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(step.policy)
    .bind(step.member)
    .bind(step.at)
    .bind(actor.user_id)
    .bind(step.from)
    .bind(step.to)
    .bind(step.reason)
    .bind(&actor.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A policy with its members (the holder first, then by number), on one connection.
async fn load(conn: &mut Connection, id: Uuid) -> Result<Option<Policy>, StoreError> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE id = $1");
    let row: Option<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sql =
        format!("{MEMBER_SELECT} WHERE pm.policy_id = $1 ORDER BY pm.relationship = 'holder' DESC, m.member_number");
    let members: Vec<MemberRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(&mut *conn).await?;
    row.with_members(members).map(Some)
}

pub(crate) async fn by_id(pool: &Pool, id: Uuid) -> Result<Option<Policy>, StoreError> {
    let mut conn = pool.acquire().await?;
    load(&mut conn, id).await
}

pub(crate) async fn by_id_in(tx: &mut Tx, id: Uuid) -> Result<Option<Policy>, StoreError> {
    load(tx, id).await
}

/// Ids of an insurer's policies (or all), newest first.
pub(crate) async fn ids(
    pool: &Pool,
    insurer: Option<Uuid>,
    status: Option<PolicyStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM policies WHERE ($1 IS NULL OR insurer_id = $1) AND ($2 IS NULL OR status = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
    )
    .bind(insurer)
    .bind(status.map(TextEnum::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?)
}

/// Locks a policy's row until the transaction ends (on PostgreSQL; a SQLite write transaction
/// holds the whole database).
pub(crate) async fn lock(tx: &mut Tx, id: Uuid) -> Result<(), StoreError> {
    let sql = format!("SELECT id FROM policies WHERE id = $1{FOR_NO_KEY_UPDATE}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    Ok(())
}

/// Moves a policy to `status`, if it is still at `version`; `false` when it is not.
pub(crate) async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    version: i64,
    status: PolicyStatus,
    ended_on: Option<Date>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE policies SET status = $1, ended_on = $2, version = version + 1, updated_at = $3 \
         WHERE id = $4 AND version = $5",
    )
    .bind(status.as_str())
    .bind(ended_on)
    .bind(now)
    .bind(id)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the next version of a policy, if it is still at `version`; `false` when it is not.
pub(crate) async fn bump(tx: &mut Tx, id: Uuid, version: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE policies SET version = version + 1, updated_at = $2 WHERE id = $1 AND version = $3")
        .bind(id)
        .bind(now)
        .bind(version)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn count_members(tx: &mut Tx, id: Uuid) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM policy_members WHERE policy_id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?)
}

/// The members of a policy, by id.
pub(crate) async fn member_ids_in(tx: &mut Tx, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT member_id FROM policy_members WHERE policy_id = $1")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?)
}

/// The periods of a member that have not ended by `on`, with their insurer, by id.
pub(crate) async fn periods_of_member_from(
    tx: &mut Tx,
    member: Uuid,
    on: Date,
) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT pm.policy_id, p.insurer_id FROM policy_members pm JOIN policies p ON p.id = pm.policy_id \
         WHERE pm.member_id = $1 AND p.expiry_date >= $2 ORDER BY pm.policy_id",
    )
    .bind(member)
    .bind(on)
    .fetch_all(&mut **tx)
    .await?)
}

pub(crate) async fn set_member_status(
    tx: &mut Tx,
    policy: Uuid,
    member: Uuid,
    status: MemberStatus,
    status_on: Option<Date>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE policy_members SET status = $1, status_on = $2 WHERE policy_id = $3 AND member_id = $4")
        .bind(status.as_str())
        .bind(status_on)
        .bind(policy)
        .bind(member)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn member_insurer(pool: &Pool, member: Uuid) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT insurer_id FROM members WHERE id = $1").bind(member).fetch_optional(pool).await?)
}

pub(crate) async fn member_by_number(pool: &Pool, number: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM members WHERE member_number = $1").bind(number).fetch_optional(pool).await?)
}

/// The member with this number and the period that covers them on `date`: the one containing
/// the date (one awaiting its premium last), or else their latest.
pub(crate) async fn period_of_number(
    pool: &Pool,
    number: &str,
    date: Date,
) -> Result<Option<(Uuid, Uuid)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT pm.member_id, pm.policy_id FROM members m JOIN policy_members pm ON pm.member_id = m.id \
         JOIN policies p ON p.id = pm.policy_id WHERE m.member_number = $1 \
         ORDER BY CASE WHEN p.start_date <= $2 AND p.expiry_date >= $2 THEN 0 ELSE 1 END, \
         CASE WHEN p.status = 'pending' THEN 1 ELSE 0 END, p.start_date DESC LIMIT 1",
    )
    .bind(number)
    .bind(date)
    .fetch_optional(pool)
    .await?)
}

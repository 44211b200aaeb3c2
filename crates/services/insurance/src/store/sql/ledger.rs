//! `accumulator_entries`, and the reservations of approvals not yet used.

use medcov_store::StoreError;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Connection, Pool, Tx};
use crate::domain::adjudication::{CategoryUse, PerSetting};
use crate::domain::ledger::{Entry, Reservation, Sums, Totals};
use crate::store::LedgerKey;
use crate::store::rows::{EntryRow, entry};

/// What a policy's ledger adds up to for `member`, with the approvals of the policy still
/// reserving on `today`, on one connection.
async fn totals_on(conn: &mut Connection, policy: Uuid, member: Uuid, today: Date) -> Result<Totals, StoreError> {
    let (deductible, inpatient, outpatient): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(deductible), 0) AS BIGINT), CAST(COALESCE(SUM(inpatient), 0) AS BIGINT), \
         CAST(COALESCE(SUM(outpatient), 0) AS BIGINT) FROM accumulator_entries WHERE policy_id = $1 AND member_id = $2",
    )
    .bind(policy)
    .bind(member)
    .fetch_one(&mut *conn)
    .await?;
    let member_sums = Sums { deductible, inpatient, outpatient };
    let (deductible, inpatient, outpatient): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(deductible), 0) AS BIGINT), CAST(COALESCE(SUM(inpatient), 0) AS BIGINT), \
         CAST(COALESCE(SUM(outpatient), 0) AS BIGINT) FROM accumulator_entries WHERE policy_id = $1",
    )
    .bind(policy)
    .fetch_one(&mut *conn)
    .await?;
    let policy_sums = Sums { deductible, inpatient, outpatient };
    let categories: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT category, CAST(COALESCE(SUM(count), 0) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) \
         FROM accumulator_entries WHERE policy_id = $1 AND member_id = $2 AND category <> '' GROUP BY category",
    )
    .bind(policy)
    .bind(member)
    .fetch_all(&mut *conn)
    .await?;
    let reservations: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT member_id, reserved_inpatient, reserved_outpatient FROM preauths WHERE policy_id = $1 \
         AND status IN ('approved', 'partially_approved') AND used_by_claim IS NULL AND valid_until >= $2",
    )
    .bind(policy)
    .bind(today)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Totals {
        member: member_sums,
        policy: policy_sums,
        categories: categories
            .into_iter()
            .map(|(category, count, amount)| (category, CategoryUse { count, amount }))
            .collect(),
        reservations: reservations
            .into_iter()
            .map(|(member_id, inpatient, outpatient)| Reservation {
                member_id,
                reserved: PerSetting { inpatient, outpatient },
            })
            .collect(),
    })
}

pub(crate) async fn totals(pool: &Pool, policy: Uuid, member: Uuid, today: Date) -> Result<Totals, StoreError> {
    let mut conn = pool.acquire().await?;
    totals_on(&mut conn, policy, member, today).await
}

pub(crate) async fn totals_in(tx: &mut Tx, policy: Uuid, member: Uuid, today: Date) -> Result<Totals, StoreError> {
    totals_on(tx, policy, member, today).await
}

pub(crate) async fn append(
    tx: &mut Tx,
    key: &LedgerKey,
    entries: &[Entry],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for e in entries {
        sqlx::query(
            "INSERT INTO accumulator_entries (id, policy_id, member_id, claim_id, adjudication_no, reversal, \
             category, deductible, inpatient, outpatient, count, amount, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(Uuid::now_v7())
        .bind(key.policy)
        .bind(key.member)
        .bind(key.claim)
        .bind(key.adjudication_no)
        .bind(key.reversal)
        .bind(&e.category)
        .bind(e.deductible)
        .bind(e.inpatient)
        .bind(e.outpatient)
        .bind(e.count)
        .bind(e.amount)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The entries one adjudication of a claim wrote (not their reversal).
pub(crate) async fn entries_of(tx: &mut Tx, claim: Uuid, adjudication_no: i32) -> Result<Vec<Entry>, StoreError> {
    let rows: Vec<EntryRow> = sqlx::query_as(
        "SELECT category, deductible, inpatient, outpatient, count, amount FROM accumulator_entries \
         WHERE claim_id = $1 AND adjudication_no = $2 AND reversal = $3",
    )
    .bind(claim)
    .bind(adjudication_no)
    .bind(false)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(entry).collect())
}

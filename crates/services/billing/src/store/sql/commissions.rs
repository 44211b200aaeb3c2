//! `agents`, `commission_rates`, `commissions` and `commission_payouts`.

use medcov_domain::TextEnum;
use medcov_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Pool, Tx};
use crate::domain::commission::{Commission, CommissionStatus, Payout};
use crate::store::Keyed;
use crate::store::rows::{COMMISSION_COLUMNS, CommissionRow, PAYOUT_COLUMNS, PayoutRow};

pub(crate) async fn tier(tx: &mut Tx, agent: Uuid, insurer: Uuid) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT tier FROM agents WHERE agent_id = $1 AND insurer_id = $2")
        .bind(agent)
        .bind(insurer)
        .fetch_optional(&mut **tx)
        .await?)
}

pub(crate) async fn rate(tx: &mut Tx, insurer: Uuid, plan: Uuid, tier: &str) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar("SELECT rate_bp FROM commission_rates WHERE insurer_id = $1 AND plan_id = $2 AND tier = $3")
        .bind(insurer)
        .bind(plan)
        .bind(tier)
        .fetch_optional(&mut **tx)
        .await?)
}

pub(crate) async fn set_tier(
    tx: &mut Tx,
    agent: Uuid,
    insurer: Uuid,
    tier: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agents (agent_id, insurer_id, tier, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (agent_id, insurer_id) DO UPDATE SET tier = excluded.tier, updated_at = excluded.updated_at",
    )
    .bind(agent)
    .bind(insurer)
    .bind(tier)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn set_rate(
    tx: &mut Tx,
    insurer: Uuid,
    plan: Uuid,
    tier: &str,
    rate_bp: i32,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO commission_rates (insurer_id, plan_id, tier, rate_bp) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (insurer_id, plan_id, tier) DO UPDATE SET rate_bp = excluded.rate_bp",
    )
    .bind(insurer)
    .bind(plan)
    .bind(tier)
    .bind(rate_bp)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn insert(tx: &mut Tx, c: &Commission) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO commissions (id, insurer_id, agent_id, policy_id, premium_id, premium_amount, rate_bp, amount, \
         status, earned_at, clawed_back_at, clawback_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(c.id)
    .bind(c.insurer_id)
    .bind(c.agent_id)
    .bind(c.policy_id)
    .bind(c.premium_id)
    .bind(c.premium_amount)
    .bind(c.rate_bp)
    .bind(c.amount)
    .bind(c.status.as_str())
    .bind(c.earned_at)
    .bind(c.clawed_back_at)
    .bind(&c.clawback_reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The commissions on a policy that are still earned.
pub(crate) async fn earned_on_policy(tx: &mut Tx, policy: Uuid) -> Result<Vec<Commission>, StoreError> {
    let sql = format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE policy_id = $1 AND status = $2 ORDER BY id");
    let rows: Vec<CommissionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(policy)
        .bind(CommissionStatus::Earned.as_str())
        .fetch_all(&mut **tx)
        .await?;
    rows.into_iter().map(Commission::try_from).collect()
}

/// The currency of a premium (that of the commissions earned on it).
pub(crate) async fn premium_currency(tx: &mut Tx, premium: Uuid) -> Result<String, StoreError> {
    let currency: Option<String> = sqlx::query_scalar("SELECT currency FROM premiums WHERE id = $1")
        .bind(premium)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(currency.unwrap_or_default())
}

pub(crate) async fn claw_back(tx: &mut Tx, id: Uuid, at: OffsetDateTime, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE commissions SET status = $1, clawed_back_at = $2, clawback_reason = $3 WHERE id = $4")
        .bind(CommissionStatus::ClawedBack.as_str())
        .bind(at)
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Commissions earned in `[from, to)`, for an agent and/or an insurer, oldest first.
pub(crate) async fn list(
    pool: &Pool,
    insurer: Option<Uuid>,
    agent: Option<Uuid>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Commission>, StoreError> {
    let sql = format!(
        "SELECT {COMMISSION_COLUMNS} FROM commissions WHERE ($1 IS NULL OR insurer_id = $1) \
         AND ($2 IS NULL OR agent_id = $2) AND earned_at >= $3 AND earned_at < $4 ORDER BY earned_at, id"
    );
    let rows: Vec<CommissionRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(insurer).bind(agent).bind(from).bind(to).fetch_all(pool).await?;
    rows.into_iter().map(Commission::try_from).collect()
}

/// Claims for `payout` the agent's earned, unpaid commissions and those clawed back after
/// they were paid (not yet recovered), of one currency (the first by its code of those the
/// agent has open; another currency is another payout); returns what they come to: (owed,
/// recovered, currency). A concurrent payout of the same agent waits on these rows, then finds
/// nothing left to claim.
pub(crate) async fn claim_for_payout(
    tx: &mut Tx,
    payout: Uuid,
    insurer: Uuid,
    agent: Uuid,
) -> Result<(i64, i64, String), StoreError> {
    let (earned, clawed_back) = (CommissionStatus::Earned.as_str(), CommissionStatus::ClawedBack.as_str());
    let currency: Option<String> = sqlx::query_scalar(
        "SELECT MIN(p.currency) FROM commissions c JOIN premiums p ON p.id = c.premium_id \
         WHERE c.insurer_id = $1 AND c.agent_id = $2 AND ((c.status = $3 AND c.payout_id IS NULL) \
         OR (c.status = $4 AND c.payout_id IS NOT NULL AND c.recovered_by IS NULL))",
    )
    .bind(insurer)
    .bind(agent)
    .bind(earned)
    .bind(clawed_back)
    .fetch_one(&mut **tx)
    .await?;
    let currency = currency.unwrap_or_default();
    let of_currency = "premium_id IN (SELECT id FROM premiums WHERE currency = $5)";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE commissions SET payout_id = $1 WHERE insurer_id = $2 AND agent_id = $3 AND status = $4 \
         AND payout_id IS NULL AND {of_currency}"
    )))
    .bind(payout)
    .bind(insurer)
    .bind(agent)
    .bind(earned)
    .bind(&currency)
    .execute(&mut **tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE commissions SET recovered_by = $1 WHERE insurer_id = $2 AND agent_id = $3 AND status = $4 \
         AND payout_id IS NOT NULL AND recovered_by IS NULL AND {of_currency}"
    )))
    .bind(payout)
    .bind(insurer)
    .bind(agent)
    .bind(clawed_back)
    .bind(&currency)
    .execute(&mut **tx)
    .await?;
    let (owed, recovered): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN payout_id = $1 AND status = $2 THEN amount ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN recovered_by = $1 THEN amount ELSE 0 END), 0) AS BIGINT) \
         FROM commissions WHERE payout_id = $1 OR recovered_by = $1",
    )
    .bind(payout)
    .bind(earned)
    .fetch_one(&mut **tx)
    .await?;
    Ok((owed, recovered, currency))
}

pub(crate) async fn insert_payout(tx: &mut Tx, payout: &Payout, keyed: &Keyed<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO commission_payouts (id, insurer_id, agent_id, amount, method, external_reference, \
         idempotency_key, request_hash, created_by, created_at, currency) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(payout.id)
    .bind(payout.insurer_id)
    .bind(payout.agent_id)
    .bind(payout.amount)
    .bind(payout.method.as_str())
    .bind(&payout.external_reference)
    .bind(keyed.key)
    .bind(keyed.request_hash)
    .bind(keyed.created_by)
    .bind(payout.created_at)
    .bind(&payout.currency)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The payout made under an insurer's Idempotency-Key.
pub(crate) async fn payout_under_key(pool: &Pool, insurer: Uuid, key: &str) -> Result<Option<Payout>, StoreError> {
    let sql = format!("SELECT {PAYOUT_COLUMNS} FROM commission_payouts WHERE insurer_id = $1 AND idempotency_key = $2");
    let row: Option<PayoutRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(insurer).bind(key).fetch_optional(pool).await?;
    row.map(Payout::try_from).transpose()
}

//! `/premiums`, `/agents`, `/commission-rates`, `/commissions`: what policy holders pay, and
//! what the agents who sold the policies earn.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, FieldError, Json, Path, Query};
use medcov_security::{Authorized, Policy, Principal, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::invoices::idempotency_key;
use super::{actor, insurer_in_scope, limit_offset};
use crate::domain::ledger::Method;
use crate::store::premiums::{Commission, NewPayout, Payout, Premium, PremiumPayment};
use crate::store::{BillingStore, NewPayment};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_premiums))
        .routes(routes!(get_premium))
        .routes(routes!(pay_premium))
        .routes(routes!(set_agent))
        .routes(routes!(set_rate))
        .routes(routes!(statement))
        .routes(routes!(pay_out))
        .with_state(store)
}

/// Who reads premiums.
pub struct PremiumReaders;
impl Policy for PremiumReaders {
    const ROLES: &'static [Role] = &[Role::Admin, Role::BillingClerk, Role::Agent, Role::Auditor, Role::Service];
}

/// Who takes premium payments.
pub struct Collectors;
impl Policy for Collectors {
    const ROLES: &'static [Role] = &[Role::Admin, Role::BillingClerk, Role::Service];
}

/// Who sets tiers and rates.
pub struct InsurerAdmins;
impl Policy for InsurerAdmins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PremiumQuery {
    /// `issued`, `partially_paid`, `paid` or `void`.
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The caller's insurer's premiums, newest first.
#[utoipa::path(get, path = "/premiums", tag = "premiums", params(PremiumQuery), responses((status = 200, body = Vec<Premium>)))]
async fn list_premiums(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Query(query): Query<PremiumQuery>,
) -> Result<Json<Vec<Premium>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    Ok(Json(store.premiums(insurer_in_scope(&principal), query.status.as_deref(), limit, offset).await?))
}

async fn visible(store: &BillingStore, principal: &Principal, id: Uuid) -> Result<Premium, ApiError> {
    store
        .premium(id)
        .await?
        .filter(|p| principal.scope.covers_insurer(p.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such premium".into()))
}

/// One premium.
#[utoipa::path(get, path = "/premiums/{id}", tag = "premiums",
    responses((status = 200, body = Premium), (status = 404, body = medcov_http::Problem)))]
async fn get_premium(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<Premium>, ApiError> {
    Ok(Json(visible(&store, &principal, id).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"method": "mobile_money", "amount": 1800000, "external_reference": "MPESA-QK71X9"}))]
pub struct PremiumPaymentRequest {
    pub method: Method,
    pub amount: i64,
    #[serde(default)]
    pub external_reference: Option<String>,
}

/// Record a premium payment (`Idempotency-Key` required, as for invoices). The payment that
/// completes the premium emits `billing.premium_paid.v1` (which activates the policy) and
/// earns the selling agent's commission.
#[utoipa::path(post, path = "/premiums/{id}/payments", tag = "premiums", request_body = PremiumPaymentRequest,
    params(("Idempotency-Key" = String, Header, description = "A key unique to this payment attempt")),
    responses((status = 201, description = "The payment; a repeat under the same key carries `Idempotency-Replayed: true`.", body = PremiumPayment), (status = 404, body = medcov_http::Problem),
        (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn pay_premium(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<PremiumPaymentRequest>,
) -> Result<(StatusCode, HeaderMap, Json<PremiumPayment>), ApiError> {
    let key = idempotency_key(&headers)?;
    if !(1..=1_000_000_000_000).contains(&input.amount) {
        return Err(ApiError::Validation(vec![FieldError::new("amount", "must be 1 to 10^12 minor units")]));
    }
    let premium = visible(&store, &principal, id).await?;
    let canonical = serde_json::to_string(&(id, &input)).map_err(ApiError::internal)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    let payment = NewPayment {
        payer: crate::domain::invoice::Payer::Patient,
        method: input.method,
        amount: input.amount,
        external_reference: input.external_reference.map(|r| r.trim().to_owned()),
        idempotency_key: key,
        request_hash: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    };
    let (recorded, created) = store.pay_premium(premium.id, &payment, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, super::invoices::replayed(!created), Json(recorded)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"insurer_id": "0190f5a4-0000-7000-8000-0000000000aa", "tier": "gold"}))]
pub struct AgentTier {
    pub insurer_id: Uuid,
    /// `standard` unless set.
    pub tier: String,
}

fn check_tier(tier: &str) -> Result<String, ApiError> {
    let tier = tier.trim().to_lowercase();
    if tier.is_empty() || tier.len() > 30 || !tier.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ApiError::Validation(vec![FieldError::new("tier", "must be 1 to 30 of a-z and `_`")]));
    }
    Ok(tier)
}

/// Set an agent's tier (the agent is their user id).
#[utoipa::path(put, path = "/agents/{id}", tag = "premiums", request_body = AgentTier,
    responses((status = 204), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn set_agent(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<AgentTier>,
) -> Result<StatusCode, ApiError> {
    if !principal.scope.covers_insurer(input.insurer_id) {
        return Err(ApiError::NotFound("no such insurer".into()));
    }
    let tier = check_tier(&input.tier)?;
    store.set_agent(id, input.insurer_id, &tier).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"insurer_id": "0190f5a4-0000-7000-8000-0000000000aa", "plan_id": "0190f5a4-0000-7000-8000-0000000000bb", "tier": "standard", "rate_bp": 1000}))]
pub struct CommissionRate {
    pub insurer_id: Uuid,
    pub plan_id: Uuid,
    pub tier: String,
    /// Basis points of the premium (1 000 = 10 %).
    pub rate_bp: u32,
}

/// Set the commission rate of a plan for a tier of agents.
#[utoipa::path(put, path = "/commission-rates", tag = "premiums", request_body = CommissionRate,
    responses((status = 204), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn set_rate(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Json(input): Json<CommissionRate>,
) -> Result<StatusCode, ApiError> {
    if !principal.scope.covers_insurer(input.insurer_id) {
        return Err(ApiError::NotFound("no such insurer".into()));
    }
    let tier = check_tier(&input.tier)?;
    if input.rate_bp > 5_000 {
        return Err(ApiError::Validation(vec![FieldError::new("rate_bp", "must be at most 5000 (50 %)")]));
    }
    store.set_rate(input.insurer_id, input.plan_id, &tier, input.rate_bp).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// The agent; agents see only themselves.
    agent_id: Option<Uuid>,
    /// Start of the period (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    from: OffsetDateTime,
    /// End of the period, excluded (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    to: OffsetDateTime,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Statement {
    pub agent_id: Option<Uuid>,
    /// Earned in the period and not clawed back.
    pub earned: i64,
    /// Earned in the period, then clawed back.
    pub clawed_back: i64,
    pub commissions: Vec<Commission>,
}

/// A commission statement for a period.
#[utoipa::path(get, path = "/commissions", tag = "premiums", params(StatementQuery),
    responses((status = 200, body = Statement), (status = 422, body = medcov_http::Problem)))]
async fn statement(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Query(query): Query<StatementQuery>,
) -> Result<Json<Statement>, ApiError> {
    if query.to <= query.from {
        return Err(ApiError::Validation(vec![FieldError::new("to", "must be after from")]));
    }
    // An agent's statement is their own.
    let agent = if principal.roles.contains(&Role::Agent) && !principal.roles.contains(&Role::Admin) {
        Some(principal.id)
    } else {
        query.agent_id
    };
    let commissions = store.commissions(insurer_in_scope(&principal), agent, query.from, query.to).await?;
    let earned = commissions.iter().filter(|c| c.status == "earned").map(|c| c.amount).sum();
    let clawed_back = commissions.iter().filter(|c| c.status == "clawed_back").map(|c| c.amount).sum();
    Ok(Json(Statement { agent_id: agent, earned, clawed_back, commissions }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_id": "0190f5a4-0000-7000-8000-0000000000ac", "insurer_id": "0190f5a4-0000-7000-8000-0000000000aa",
    "method": "bank_transfer", "external_reference": "EFT-COMM-2026-11"}))]
pub struct PayoutRequest {
    pub agent_id: Uuid,
    pub insurer_id: Uuid,
    /// `bank_transfer` or `mobile_money`.
    pub method: Method,
    pub external_reference: String,
}

/// Pay an agent what they are owed (earned, unpaid commissions less those clawed back after
/// they were paid). `Idempotency-Key` required; 409 when nothing is owed.
#[utoipa::path(post, path = "/commissions/payouts", tag = "premiums", request_body = PayoutRequest,
    params(("Idempotency-Key" = String, Header, description = "A key unique to this payout")),
    responses((status = 201, description = "The payout; a repeat under the same key carries `Idempotency-Replayed: true`.", body = Payout), (status = 404, body = medcov_http::Problem),
        (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn pay_out(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Collectors>,
    headers: HeaderMap,
    Json(input): Json<PayoutRequest>,
) -> Result<(StatusCode, HeaderMap, Json<Payout>), ApiError> {
    let key = idempotency_key(&headers)?;
    if !principal.scope.covers_insurer(input.insurer_id) {
        return Err(ApiError::NotFound("no such insurer".into()));
    }
    if !matches!(input.method, Method::BankTransfer | Method::MobileMoney) {
        return Err(ApiError::Validation(vec![FieldError::new("method", "must be bank_transfer or mobile_money")]));
    }
    let reference = input.external_reference.trim();
    if reference.is_empty() || reference.chars().count() > 100 {
        return Err(ApiError::Validation(vec![FieldError::new("external_reference", "must be 1 to 100 characters")]));
    }
    let canonical = serde_json::to_string(&input).map_err(ApiError::internal)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let request = NewPayout {
        insurer: input.insurer_id,
        agent: input.agent_id,
        method: input.method,
        external_reference: reference,
        key: &key,
        request_hash: &hash,
    };
    let (payout, created) = store.pay_out(&request, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, super::invoices::replayed(!created), Json(payout)))
}

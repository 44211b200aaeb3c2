//! `/premiums`, `/agents`, `/commission-rates`, `/commissions`: what policy holders pay, and
//! what the agents who sold the policies earn.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, Json, Page, Path, Query};
use medcov_security::{Authorized, Policy, Role};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{actor, idempotency_key, limit_offset, replayed, request_hash};
use crate::domain::commission::{self as commission, CommissionStatus};
use crate::domain::invoice::{MAX_AMOUNT, Payer, Status};
use crate::domain::ledger::Method;
use crate::domain::premium as domain;
use crate::service::{BillingService, NewPayment, NewPayout};

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_premiums))
        .routes(routes!(get_premium))
        .routes(routes!(pay_premium))
        .routes(routes!(set_agent))
        .routes(routes!(set_rate))
        .routes(routes!(statement))
        .routes(routes!(pay_out))
        .with_state(service)
}

/// A policy period's premium.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Premium {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub policy_id: Uuid,
    pub plan_id: Uuid,
    pub holder_id: Uuid,
    pub agent_id: Option<Uuid>,
    #[schema(example = "PRM-20261126-1A2B3C4D5E6F")]
    pub number: String,
    pub amount: i64,
    pub currency: String,
    /// `issued`, `partially_paid`, `paid` or `void`.
    pub status: Status,
    pub paid: i64,
    #[schema(value_type = String, format = Date)]
    pub due_date: Date,
    pub void_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<OffsetDateTime>,
}

impl From<domain::Premium> for Premium {
    fn from(p: domain::Premium) -> Self {
        Premium {
            id: p.id,
            insurer_id: p.insurer_id,
            policy_id: p.policy_id,
            plan_id: p.plan_id,
            holder_id: p.holder_id,
            agent_id: p.agent_id,
            number: p.number,
            amount: p.amount,
            currency: p.currency,
            status: p.status,
            paid: p.paid,
            due_date: p.due_date,
            void_reason: p.void_reason,
            created_at: p.created_at,
            paid_at: p.paid_at,
        }
    }
}

/// A premium payment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PremiumPayment {
    pub id: Uuid,
    pub premium_id: Uuid,
    pub method: Method,
    pub amount: i64,
    pub applied: i64,
    pub credit: i64,
    pub external_reference: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<domain::PremiumPayment> for PremiumPayment {
    fn from(p: domain::PremiumPayment) -> Self {
        PremiumPayment {
            id: p.id,
            premium_id: p.premium_id,
            method: p.method,
            amount: p.amount,
            applied: p.applied,
            credit: p.credit,
            external_reference: p.external_reference,
            created_at: p.created_at,
        }
    }
}

/// A commission, earned on a paid premium.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Commission {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub agent_id: Uuid,
    pub policy_id: Uuid,
    pub premium_id: Uuid,
    pub premium_amount: i64,
    /// Basis points of the premium.
    pub rate_bp: i32,
    pub amount: i64,
    /// `earned` or `clawed_back`.
    pub status: CommissionStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub earned_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub clawed_back_at: Option<OffsetDateTime>,
    pub clawback_reason: Option<String>,
}

impl From<commission::Commission> for Commission {
    fn from(c: commission::Commission) -> Self {
        Commission {
            id: c.id,
            insurer_id: c.insurer_id,
            agent_id: c.agent_id,
            policy_id: c.policy_id,
            premium_id: c.premium_id,
            premium_amount: c.premium_amount,
            rate_bp: c.rate_bp,
            amount: c.amount,
            status: c.status,
            earned_at: c.earned_at,
            clawed_back_at: c.clawed_back_at,
            clawback_reason: c.clawback_reason,
        }
    }
}

/// A payout of commissions to an agent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Payout {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub agent_id: Uuid,
    pub amount: i64,
    /// One payout pays commissions of one currency.
    #[schema(example = "KES")]
    pub currency: String,
    pub method: Method,
    pub external_reference: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<commission::Payout> for Payout {
    fn from(p: commission::Payout) -> Self {
        Payout {
            id: p.id,
            insurer_id: p.insurer_id,
            agent_id: p.agent_id,
            amount: p.amount,
            currency: p.currency,
            method: p.method,
            external_reference: p.external_reference,
            created_at: p.created_at,
        }
    }
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
    #[param(pattern = "^(issued|partially_paid|paid|void)$")]
    status: Option<String>,
    /// Only this policy's premiums.
    policy_id: Option<Uuid>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Skip this many (the `paging.next_offset` of the previous page).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// The caller's insurer's premiums, newest first.
#[utoipa::path(get, path = "/premiums", tag = "premiums", params(PremiumQuery), responses((status = 200, body = Page<Premium>)))]
async fn list_premiums(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Query(query): Query<PremiumQuery>,
) -> Result<Json<Page<Premium>>, ApiError> {
    let (limit, offset) = limit_offset(query.limit, query.offset)?;
    let premiums =
        service.premiums(&principal.scope, query.status.as_deref(), query.policy_id, limit + 1, offset).await?;
    Ok(Json(Page::offset(premiums, limit, offset).map(Premium::from)))
}

/// One premium.
#[utoipa::path(get, path = "/premiums/{id}", tag = "premiums",
    responses((status = 200, body = Premium), (status = 404, body = medcov_http::Problem)))]
async fn get_premium(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<Premium>, ApiError> {
    Ok(Json(service.premium(&principal.scope, id).await?.into()))
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<PremiumPaymentRequest>,
) -> Result<(StatusCode, HeaderMap, Json<PremiumPayment>), ApiError> {
    let key = idempotency_key(&headers, &principal)?;
    if !(1..=MAX_AMOUNT).contains(&input.amount) {
        return Err(ApiError::field("amount", "must be 1 to 10^12 minor units"));
    }
    let payment = NewPayment {
        payer: Payer::Patient,
        method: input.method,
        amount: input.amount,
        external_reference: input.external_reference.as_deref().map(|r| r.trim().to_owned()),
        idempotency_key: key,
        request_hash: request_hash(&(id, &input))?,
    };
    let (recorded, created) = service.pay_premium(&principal.scope, id, &payment, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, replayed(!created), Json(recorded.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"insurer_id": "0190f5a4-0000-7000-8000-0000000000aa", "tier": "gold"}))]
pub struct AgentTier {
    pub insurer_id: Uuid,
    /// `standard` unless set.
    pub tier: String,
}

/// Set an agent's tier (the agent is their user id).
#[utoipa::path(put, path = "/agents/{id}", tag = "premiums", request_body = AgentTier,
    responses((status = 204), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn set_agent(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Path(id): Path<Uuid>,
    Json(input): Json<AgentTier>,
) -> Result<StatusCode, ApiError> {
    service.set_agent_tier(&principal.scope, id, input.insurer_id, &input.tier).await?;
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<InsurerAdmins>,
    Json(input): Json<CommissionRate>,
) -> Result<StatusCode, ApiError> {
    let scope = &principal.scope;
    service.set_commission_rate(scope, input.insurer_id, input.plan_id, &input.tier, input.rate_bp).await?;
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

/// An agent's commission statement for a period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CommissionStatement)]
pub struct Statement {
    pub agent_id: Option<Uuid>,
    /// Earned in the period and not clawed back.
    pub earned: i64,
    /// Earned in the period, then clawed back.
    pub clawed_back: i64,
    pub commissions: Vec<Commission>,
}

/// A commission statement for a period. An agent's is their own: asking for another agent's is
/// 403, never answered with their own.
#[utoipa::path(get, path = "/commissions", tag = "premiums", params(StatementQuery),
    responses((status = 200, body = Statement), (status = 403, description = "An agent asked for another agent's statement.", body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn statement(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Query(query): Query<StatementQuery>,
) -> Result<Json<Statement>, ApiError> {
    // An agent's statement is their own.
    let agent = if principal.roles.contains(&Role::Agent) && !principal.roles.contains(&Role::Admin) {
        if query.agent_id.is_some_and(|asked| asked != principal.id) {
            return Err(ApiError::Forbidden("an agent sees their own commission statement only".into()));
        }
        Some(principal.id)
    } else {
        query.agent_id
    };
    let (commissions, (earned, clawed_back)) =
        service.commission_statement(&principal.scope, agent, query.from, query.to).await?;
    let commissions = commissions.into_iter().map(Commission::from).collect();
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
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Collectors>,
    headers: HeaderMap,
    Json(input): Json<PayoutRequest>,
) -> Result<(StatusCode, HeaderMap, Json<Payout>), ApiError> {
    let key = idempotency_key(&headers, &principal)?;
    if !principal.scope.covers_insurer(input.insurer_id) {
        return Err(ApiError::NotFound("no such insurer".into()));
    }
    if !matches!(input.method, Method::BankTransfer | Method::MobileMoney) {
        return Err(ApiError::field("method", "must be bank_transfer or mobile_money"));
    }
    let reference = input.external_reference.trim();
    if reference.is_empty() || reference.chars().count() > 100 {
        return Err(ApiError::field("external_reference", "must be 1 to 100 characters"));
    }
    let request = NewPayout {
        insurer: input.insurer_id,
        agent: input.agent_id,
        method: input.method,
        external_reference: reference.to_owned(),
        idempotency_key: key,
        request_hash: request_hash(&input)?,
    };
    let (payout, created) = service.pay_out(&principal.scope, &request, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, replayed(!created), Json(payout.into())))
}

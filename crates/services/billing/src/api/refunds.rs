//! Refunds, asked for by one person and approved by another; only the approval moves money.
//!
//! - `/payments/{id}/refunds` and `/refunds`: refunds of care payments (billing clerks); the
//!   invoice is owed again for the rest.
//! - `/premium-payments/{id}/refunds` and `/premium-refunds`: refunds of premium payments
//!   (collectors); the premium is owed again for the rest, and the agent's commission is clawed
//!   back when the premium is no longer fully paid (within `billing.commission_clawback_days`
//!   of earning it).
//!
//! Both are one service operation on a [`Kind`]; each keeps its own routes and JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, Json, Path};
use medcov_security::{Authorized, Principal};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::premiums::{Collectors, PremiumReaders};
use super::{Billers, Readers, actor, reason};
use crate::domain::refund::{self as domain, Kind, RefundStatus};
use crate::service::BillingService;

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(request))
        .routes(routes!(get_refund))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .with_state(service)
}

pub fn premium_router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(request_premium_refund))
        .routes(routes!(get_premium_refund))
        .routes(routes!(approve_premium_refund))
        .routes(routes!(reject_premium_refund))
        .with_state(service)
}

/// A refund of a care payment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refund {
    pub id: Uuid,
    pub hospital_id: Uuid,
    pub payment_id: Uuid,
    pub invoice_id: Uuid,
    pub amount: i64,
    /// Taken from the payment's credit (the overpaid part).
    pub from_credit: i64,
    /// Taken from what the payment settled on the invoice (owed again).
    pub from_applied: i64,
    pub reason: String,
    /// `requested`, `completed` or `rejected`.
    pub status: RefundStatus,
    pub requested_by: Uuid,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
}

impl From<domain::Refund> for Refund {
    fn from(r: domain::Refund) -> Self {
        Refund {
            id: r.id,
            hospital_id: r.tenant_id,
            payment_id: r.payment_id,
            invoice_id: r.owed_id,
            amount: r.amount,
            from_credit: r.from_credit,
            from_applied: r.from_applied,
            reason: r.reason,
            status: r.status,
            requested_by: r.requested_by,
            decided_by: r.decided_by,
            decision_note: r.decision_note,
            created_at: r.created_at,
            decided_at: r.decided_at,
        }
    }
}

/// A refund of a premium payment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0193a0b4-5f6e-7c3d-8a9b-112233445566", "insurer_id": "0193a0b4-0000-7000-8000-000000000001",
    "premium_payment_id": "0193a0b4-1111-7000-8000-000000000002", "premium_id": "0193a0b4-2222-7000-8000-000000000003",
    "amount": 200000, "from_credit": 0, "from_applied": 200000, "reason": "paid twice by the employer", "status": "requested",
    "requested_by": "0193a0b4-3333-7000-8000-000000000004", "decided_by": null, "decision_note": null,
    "created_at": "2026-11-26T09:00:00Z", "decided_at": null}))]
pub struct PremiumRefund {
    pub id: Uuid,
    pub insurer_id: Uuid,
    pub premium_payment_id: Uuid,
    pub premium_id: Uuid,
    pub amount: i64,
    /// Taken from the payment's credit (the overpaid part).
    pub from_credit: i64,
    /// Taken from what the payment settled on the premium (owed again).
    pub from_applied: i64,
    pub reason: String,
    /// `requested`, `completed` or `rejected`.
    pub status: RefundStatus,
    pub requested_by: Uuid,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
}

impl From<domain::Refund> for PremiumRefund {
    fn from(r: domain::Refund) -> Self {
        PremiumRefund {
            id: r.id,
            insurer_id: r.tenant_id,
            premium_payment_id: r.payment_id,
            premium_id: r.owed_id,
            amount: r.amount,
            from_credit: r.from_credit,
            from_applied: r.from_applied,
            reason: r.reason,
            status: r.status,
            requested_by: r.requested_by,
            decided_by: r.decided_by,
            decision_note: r.decision_note,
            created_at: r.created_at,
            decided_at: r.decided_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 150000, "reason": "overpaid at the desk"}))]
pub struct RefundRequest {
    /// Minor units; at most what the payment has left after other refunds.
    pub amount: i64,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "checked against the bank statement"}))]
pub struct Decision {
    #[serde(default)]
    pub note: Option<String>,
}

async fn ask(
    service: &BillingService,
    principal: &Principal,
    kind: Kind,
    payment: Uuid,
    input: RefundRequest,
) -> Result<domain::Refund, ApiError> {
    let reason = reason(&input.reason)?;
    service.request_refund(&principal.scope, kind, payment, input.amount, reason, &actor(principal)).await
}

async fn decide(
    service: &BillingService,
    principal: &Principal,
    kind: Kind,
    id: Uuid,
    approve: bool,
    input: Decision,
) -> Result<domain::Refund, ApiError> {
    let note = input.note.as_deref();
    service.decide_refund(&principal.scope, kind, id, approve, note, &actor(principal)).await
}

/// Ask for a refund of (part of) a payment. It waits for a second person's approval.
#[utoipa::path(post, path = "/payments/{id}/refunds", tag = "refunds", request_body = RefundRequest,
    responses((status = 201, body = Refund), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn request(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<RefundRequest>,
) -> Result<(StatusCode, Json<Refund>), ApiError> {
    let refund = ask(&service, &principal, Kind::Care, id, input).await?;
    Ok((StatusCode::CREATED, Json(refund.into())))
}

/// One refund.
#[utoipa::path(get, path = "/refunds/{id}", tag = "refunds",
    responses((status = 200, body = Refund), (status = 404, body = medcov_http::Problem)))]
async fn get_refund(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Refund>, ApiError> {
    Ok(Json(service.refund(&principal.scope, Kind::Care, id).await?.into()))
}

/// Approve a refund: the money goes back (credit first), the invoice is owed again for the
/// rest, and `billing.refund_completed.v1` is emitted. The person who asked cannot approve
/// (409).
#[utoipa::path(post, path = "/refunds/{id}/approve", tag = "refunds", request_body = Decision,
    responses((status = 200, body = Refund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn approve(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<Refund>, ApiError> {
    Ok(Json(decide(&service, &principal, Kind::Care, id, true, input).await?.into()))
}

/// Reject a refund request.
#[utoipa::path(post, path = "/refunds/{id}/reject", tag = "refunds", request_body = Decision,
    responses((status = 200, body = Refund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn reject(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<Refund>, ApiError> {
    Ok(Json(decide(&service, &principal, Kind::Care, id, false, input).await?.into()))
}

/// Ask for a refund of (part of) a premium payment. It waits for a second person's approval.
#[utoipa::path(post, path = "/premium-payments/{id}/refunds", tag = "premiums", request_body = RefundRequest,
    responses((status = 201, body = PremiumRefund), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn request_premium_refund(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    Json(input): Json<RefundRequest>,
) -> Result<(StatusCode, Json<PremiumRefund>), ApiError> {
    let refund = ask(&service, &principal, Kind::Premium, id, input).await?;
    Ok((StatusCode::CREATED, Json(refund.into())))
}

/// One premium refund.
#[utoipa::path(get, path = "/premium-refunds/{id}", tag = "premiums",
    responses((status = 200, body = PremiumRefund), (status = 404, body = medcov_http::Problem)))]
async fn get_premium_refund(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<PremiumRefund>, ApiError> {
    Ok(Json(service.refund(&principal.scope, Kind::Premium, id).await?.into()))
}

/// Approve a premium refund: the money goes back (credit first), the premium is owed again for
/// the rest, `billing.premium_refunded.v1` is emitted, and a commission earned on a premium no
/// longer fully paid is clawed back. The person who asked cannot approve (409).
#[utoipa::path(post, path = "/premium-refunds/{id}/approve", tag = "premiums", request_body = Decision,
    responses((status = 200, body = PremiumRefund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn approve_premium_refund(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<PremiumRefund>, ApiError> {
    Ok(Json(decide(&service, &principal, Kind::Premium, id, true, input).await?.into()))
}

/// Reject a premium refund request.
#[utoipa::path(post, path = "/premium-refunds/{id}/reject", tag = "premiums", request_body = Decision,
    responses((status = 200, body = PremiumRefund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn reject_premium_refund(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<PremiumRefund>, ApiError> {
    Ok(Json(decide(&service, &principal, Kind::Premium, id, false, input).await?.into()))
}

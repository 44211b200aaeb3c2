//! `/premium-payments/{id}/refunds` and `/premium-refunds`: a premium refund is asked for by
//! one person and approved by another; only the approval moves money, and it claws back the
//! agent's commission when the premium is no longer fully paid (within
//! `billing.commission_clawback_days` of earning it).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Path};
use medcov_security::{Authorized, Principal};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::actor;
use super::premiums::{Collectors, PremiumReaders};
use super::refunds::{Decision, RefundRequest};
use crate::store::BillingStore;
use crate::store::premium_refunds::PremiumRefund;

#[derive(Clone)]
struct Refunds {
    store: Arc<BillingStore>,
    clawback_days: u32,
}

pub fn router(store: Arc<BillingStore>, clawback_days: u32) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(request_premium_refund))
        .routes(routes!(get_premium_refund))
        .routes(routes!(approve_premium_refund))
        .routes(routes!(reject_premium_refund))
        .with_state(Refunds { store, clawback_days })
}

/// Ask for a refund of (part of) a premium payment. It waits for a second person's approval.
#[utoipa::path(post, path = "/premium-payments/{id}/refunds", tag = "premiums", request_body = RefundRequest,
    responses((status = 201, body = PremiumRefund), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn request_premium_refund(
    State(refunds): State<Refunds>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    Json(input): Json<RefundRequest>,
) -> Result<(StatusCode, Json<PremiumRefund>), ApiError> {
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::Validation(vec![FieldError::new("reason", "must be 1 to 500 characters")]));
    }
    refunds
        .store
        .premium_payment_insurer(id)
        .await?
        .filter(|insurer| principal.scope.covers_insurer(*insurer))
        .ok_or_else(|| ApiError::NotFound("no such premium payment".into()))?;
    let refund = refunds.store.request_premium_refund(id, input.amount, reason, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(refund)))
}

async fn visible(store: &BillingStore, principal: &Principal, id: Uuid) -> Result<PremiumRefund, ApiError> {
    store
        .premium_refund(id)
        .await?
        .filter(|r| principal.scope.covers_insurer(r.insurer_id))
        .ok_or_else(|| ApiError::NotFound("no such premium refund".into()))
}

/// One premium refund.
#[utoipa::path(get, path = "/premium-refunds/{id}", tag = "premiums",
    responses((status = 200, body = PremiumRefund), (status = 404, body = medcov_http::Problem)))]
async fn get_premium_refund(
    State(refunds): State<Refunds>,
    Authorized(principal, _): Authorized<PremiumReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<PremiumRefund>, ApiError> {
    Ok(Json(visible(&refunds.store, &principal, id).await?))
}

/// Approve a premium refund: the money goes back (credit first), the premium is owed again for
/// the rest, `billing.premium_refunded.v1` is emitted, and a commission earned on a premium no
/// longer fully paid is clawed back. The person who asked cannot approve (409).
#[utoipa::path(post, path = "/premium-refunds/{id}/approve", tag = "premiums", request_body = Decision,
    responses((status = 200, body = PremiumRefund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn approve_premium_refund(
    State(refunds): State<Refunds>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<PremiumRefund>, ApiError> {
    decide(&refunds, &principal, id, true, input).await
}

/// Reject a premium refund request.
#[utoipa::path(post, path = "/premium-refunds/{id}/reject", tag = "premiums", request_body = Decision,
    responses((status = 200, body = PremiumRefund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn reject_premium_refund(
    State(refunds): State<Refunds>,
    Authorized(principal, _): Authorized<Collectors>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<PremiumRefund>, ApiError> {
    decide(&refunds, &principal, id, false, input).await
}

async fn decide(
    refunds: &Refunds,
    principal: &Principal,
    id: Uuid,
    approve: bool,
    input: Decision,
) -> Result<Json<PremiumRefund>, ApiError> {
    let refund = visible(&refunds.store, principal, id).await?;
    let (note, days) = (input.note.as_deref(), refunds.clawback_days);
    Ok(Json(refunds.store.decide_premium_refund(refund.id, approve, note, days, &actor(principal)).await?))
}

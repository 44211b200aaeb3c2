//! `/payments/{id}/refunds` and `/refunds`: a refund is asked for by one person and approved
//! by another; only the approval moves money.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Path};
use medcov_security::{Authorized, Principal};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Billers, Readers, actor};
use crate::store::BillingStore;
use crate::store::refunds::Refund;

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(request))
        .routes(routes!(get_refund))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .with_state(store)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 150000, "reason": "overpaid at the desk"}))]
pub struct RefundRequest {
    /// Minor units; at most what the payment has left after other refunds.
    pub amount: i64,
    pub reason: String,
}

/// Ask for a refund of (part of) a payment. It waits for a second person's approval.
#[utoipa::path(post, path = "/payments/{id}/refunds", tag = "refunds", request_body = RefundRequest,
    responses((status = 201, body = Refund), (status = 404, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn request(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<RefundRequest>,
) -> Result<(StatusCode, Json<Refund>), ApiError> {
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::Validation(vec![FieldError::new("reason", "must be 1 to 500 characters")]));
    }
    store
        .payment(id)
        .await?
        .filter(|(_, hospital)| principal.scope.covers_hospital(*hospital))
        .ok_or_else(|| ApiError::NotFound("no such payment".into()))?;
    let refund = store.request_refund(id, input.amount, reason, &actor(&principal)).await?;
    Ok((StatusCode::CREATED, Json(refund)))
}

async fn visible(store: &BillingStore, principal: &Principal, id: Uuid) -> Result<Refund, ApiError> {
    store
        .refund(id)
        .await?
        .filter(|r| principal.scope.covers_hospital(r.hospital_id))
        .ok_or_else(|| ApiError::NotFound("no such refund".into()))
}

/// One refund.
#[utoipa::path(get, path = "/refunds/{id}", tag = "refunds",
    responses((status = 200, body = Refund), (status = 404, body = medcov_http::Problem)))]
async fn get_refund(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Path(id): Path<Uuid>,
) -> Result<Json<Refund>, ApiError> {
    Ok(Json(visible(&store, &principal, id).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "checked against the bank statement"}))]
pub struct Decision {
    #[serde(default)]
    pub note: Option<String>,
}

/// Approve a refund: the money goes back (credit first), the invoice is owed again for the
/// rest, and `billing.refund_completed.v1` is emitted. The person who asked cannot approve
/// (409).
#[utoipa::path(post, path = "/refunds/{id}/approve", tag = "refunds", request_body = Decision,
    responses((status = 200, body = Refund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn approve(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<Refund>, ApiError> {
    decide(&store, &principal, id, true, input).await
}

/// Reject a refund request.
#[utoipa::path(post, path = "/refunds/{id}/reject", tag = "refunds", request_body = Decision,
    responses((status = 200, body = Refund), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn reject(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Path(id): Path<Uuid>,
    Json(input): Json<Decision>,
) -> Result<Json<Refund>, ApiError> {
    decide(&store, &principal, id, false, input).await
}

async fn decide(
    store: &BillingStore,
    principal: &Principal,
    id: Uuid,
    approve: bool,
    input: Decision,
) -> Result<Json<Refund>, ApiError> {
    let refund = visible(store, principal, id).await?;
    Ok(Json(store.decide_refund(refund.id, approve, input.note.as_deref(), &actor(principal)).await?))
}

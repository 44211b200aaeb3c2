//! `/audit`: the authentication audit log.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Query};
use medcov_security::Authorized;

use super::Overseers;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::audit::AuditEntry;
use crate::service::AuthService;

pub fn router(service: Arc<AuthService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(audit_log)).with_state(service)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries about this user.
    user_id: Option<Uuid>,
    /// Only this event, e.g. `login_failed`.
    event: Option<String>,
    /// Entries after this id (the `next_after` of the previous page).
    after: Option<Uuid>,
    /// At most this many (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    items: Vec<AuditEntry>,
    next_after: Option<Uuid>,
}

/// Authentication and administration events, oldest first. Platform auditors and
/// administrators see everything; tenant ones ask for one of their users at a time.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = medcov_http::Problem)))]
async fn audit_log(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<Overseers>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let items = service.audit_log(&principal, query.user_id, query.event.as_deref(), query.after, limit).await?;
    let next_after = if items.len() as i64 == limit { items.last().map(|e| e.id) } else { None };
    Ok(Json(AuditPage { items, next_after }))
}

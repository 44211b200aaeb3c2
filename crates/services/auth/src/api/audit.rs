//! `/audit`: the authentication audit log.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Page, Query};
use medcov_security::Authorized;

use super::Overseers;
use serde::Deserialize;
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
    /// Entries after this id (the `paging.next_after` of the previous page).
    after: Option<Uuid>,
    /// At most this many (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Authentication and administration events, oldest first. Platform auditors and
/// administrators see everything; tenant ones ask for one of their users at a time.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = medcov_http::Problem)))]
async fn audit_log(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<Overseers>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let items = service.audit_log(&principal, query.user_id, query.event.as_deref(), query.after, limit + 1).await?;
    Ok(Json(Page::after(items, limit, query.after, |e| e.id)))
}

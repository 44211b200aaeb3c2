//! `/access-log`: who read or wrote which patient record.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Query};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Auditors, hospitals_in_scope};
use crate::store::{AccessEntry, HospitalStore};

pub fn router(store: Arc<HospitalStore>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(access_log)).with_state(store)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// Entries about this patient.
    patient_id: Option<Uuid>,
    /// Entries by this user.
    user_id: Option<Uuid>,
    /// Entries after this id (the `next_after` of the previous page).
    after: Option<Uuid>,
    /// At most this many (1 to 500, default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessPage {
    items: Vec<AccessEntry>,
    next_after: Option<Uuid>,
}

/// Reads and writes of patient records, oldest first, within the caller's hospitals.
#[utoipa::path(get, path = "/access-log", tag = "audit", params(AccessQuery),
    responses((status = 200, body = AccessPage), (status = 403, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn access_log(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<Auditors>,
    Query(query): Query<AccessQuery>,
) -> Result<Json<AccessPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let scope = hospitals_in_scope(&principal);
    let items = store
        .access_log(scope.as_deref(), query.patient_id, query.user_id, query.after, limit)
        .await
        .map_err(ApiError::internal)?;
    let next_after = if items.len() as i64 == limit { items.last().map(|e| e.id) } else { None };
    Ok(Json(AccessPage { items, next_after }))
}

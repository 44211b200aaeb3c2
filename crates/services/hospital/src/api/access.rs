//! `/access-log`: who read or wrote which patient record.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Page, Query};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Auditors;
use crate::domain::access::{AccessAction, AccessEntry};
use crate::service::HospitalService;

pub fn router(service: Arc<HospitalService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(access_log)).with_state(service)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// Entries about this patient.
    patient_id: Option<Uuid>,
    /// Entries by this user.
    user_id: Option<Uuid>,
    /// Entries after this id (the `paging.next_after` of the previous page).
    after: Option<Uuid>,
    /// At most this many (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// One read or write of a patient record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AccessEntry)]
pub struct AccessView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    /// `create`, `read`, `update`, `search`, `history`, `coverage_read`, `encounter_open`, ...
    pub action: AccessAction,
    pub request_id: Option<String>,
}

impl From<AccessEntry> for AccessView {
    fn from(e: AccessEntry) -> Self {
        AccessView {
            id: e.id,
            at: e.at,
            user_id: e.user_id,
            patient_id: e.patient_id,
            hospital_id: e.hospital_id,
            action: e.action,
            request_id: e.request_id,
        }
    }
}

/// Reads and writes of patient records, oldest first, within the caller's hospitals.
#[utoipa::path(get, path = "/access-log", tag = "audit", params(AccessQuery),
    responses((status = 200, body = Page<AccessView>), (status = 403, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn access_log(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<Auditors>,
    Query(query): Query<AccessQuery>,
) -> Result<Json<Page<AccessView>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let entries = service.access_log(&principal, (query.patient_id, query.user_id), query.after, limit + 1).await?;
    Ok(Json(Page::after(entries, limit, query.after, |e| e.id).map(AccessView::from)))
}

//! `/insurers`: the tenants of the insurance service.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Page, Path};
use medcov_security::{Authorized, Principal};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::PlatformAdmins;
use crate::domain::insurer;
use crate::service::InsuranceService;

pub fn router(service: Arc<InsuranceService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(create_insurer, list_insurers)).routes(routes!(get_insurer)).with_state(service)
}

/// An insurer: the tenant of the insurance service.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Insurer {
    pub id: Uuid,
    #[schema(example = "AAR")]
    pub code: String,
    #[schema(example = "AAR Insurance")]
    pub name: String,
    #[schema(example = "KES")]
    pub currency: String,
    /// IANA time zone by which the insurer's own dates are counted.
    #[schema(example = "Africa/Nairobi")]
    pub timezone: String,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<insurer::Insurer> for Insurer {
    fn from(i: insurer::Insurer) -> Self {
        Insurer {
            id: i.id,
            code: i.code,
            name: i.name,
            currency: i.currency,
            timezone: i.timezone,
            active: i.active,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "AAR", "name": "AAR Insurance", "currency": "KES", "timezone": "Africa/Nairobi"}))]
pub struct NewInsurer {
    /// 2 to 10 upper-case letters and digits; it prefixes member and policy numbers.
    pub code: String,
    pub name: String,
    /// ISO 4217; plans of the insurer are priced in it.
    pub currency: String,
    /// IANA time zone (`UTC` when left out) by which the insurer's own dates are counted:
    /// today for approvals and reservations, the day a policy ends.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Register an insurer (platform administrators).
#[utoipa::path(post, path = "/insurers", tag = "insurers", request_body = NewInsurer,
    responses((status = 201, body = Insurer), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn create_insurer(
    State(service): State<Arc<InsuranceService>>,
    _admin: Authorized<PlatformAdmins>,
    Json(input): Json<NewInsurer>,
) -> Result<(StatusCode, Json<Insurer>), ApiError> {
    let code = input.code.trim().to_owned();
    let mut errors = Vec::new();
    if !(2..=10).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        errors.push(FieldError::new("code", "must be 2 to 10 of A-Z and 0-9"));
    }
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    } else if let Some(problem) = medcov_domain::text::display_problem("name", &input.name) {
        errors.push(problem);
    }
    if let Err(why) = medcov_money::Currency::parse(&input.currency) {
        errors.push(FieldError::new("currency", why));
    }
    let timezone = input.timezone.as_deref().unwrap_or("UTC");
    if !medcov_domain::calendar::is_zone(timezone) {
        errors.push(FieldError::new("timezone", "must be an IANA time zone such as `Africa/Nairobi` or `UTC`"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let insurer = service.create_insurer(&code, input.name.trim(), (&input.currency, timezone)).await?;
    Ok((StatusCode::CREATED, Json(insurer.into())))
}

/// Every insurer: the directory is not confidential.
#[utoipa::path(get, path = "/insurers", tag = "insurers", responses((status = 200, body = Page<Insurer>)))]
async fn list_insurers(
    State(service): State<Arc<InsuranceService>>,
    _principal: Principal,
) -> Result<Json<Page<Insurer>>, ApiError> {
    Ok(Json(Page::whole(service.insurers().await?).map(Insurer::from)))
}

/// One insurer.
#[utoipa::path(get, path = "/insurers/{id}", tag = "insurers",
    responses((status = 200, body = Insurer), (status = 404, body = medcov_http::Problem)))]
async fn get_insurer(
    State(service): State<Arc<InsuranceService>>,
    _principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Insurer>, ApiError> {
    service.insurer(id).await?.map(|i| Json(i.into())).ok_or_else(|| ApiError::NotFound("no such insurer".into()))
}

//! `/price-list`: what each service costs at a hospital, by period.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Query};
use medcov_security::Authorized;
use serde::Deserialize;
use time::Date;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Billers, Readers, actor};
use crate::store::{BillingStore, PriceEntry};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(add_price, list_prices)).with_state(store)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hospital_id": "0190f5a4-0000-7000-8000-000000000001", "service_code": "LAB-FBC", "category": "laboratory",
    "description": "Full blood count", "unit_price": 125000, "currency": "KES", "effective_from": "2026-01-01"}))]
pub struct NewPrice {
    pub hospital_id: Uuid,
    pub service_code: String,
    pub category: String,
    pub description: String,
    /// Minor units.
    pub unit_price: i64,
    pub currency: String,
    #[schema(value_type = String, format = Date)]
    pub effective_from: Date,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<Date>,
}

/// Add a price. Periods of one service code never overlap (409).
#[utoipa::path(post, path = "/price-list", tag = "prices", request_body = NewPrice,
    responses((status = 201, body = PriceEntry), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn add_price(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Billers>,
    Json(input): Json<NewPrice>,
) -> Result<(StatusCode, Json<PriceEntry>), ApiError> {
    if !principal.scope.covers_hospital(input.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let code = input.service_code.trim().to_uppercase();
    let mut errors = Vec::new();
    if !(2..=20).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        errors.push(FieldError::new("service_code", "must be 2 to 20 of A-Z, 0-9, `-` and `.`"));
    }
    let category = input.category.trim().to_lowercase();
    if category.is_empty() || !category.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        errors.push(FieldError::new("category", "must be a-z and `_`, such as `laboratory`"));
    }
    if input.description.trim().is_empty() || input.description.chars().count() > 200 {
        errors.push(FieldError::new("description", "must be 1 to 200 characters"));
    }
    if !(0..=1_000_000_000_000).contains(&input.unit_price) {
        errors.push(FieldError::new("unit_price", "must be 0 to 10^12 minor units"));
    }
    if let Err(why) = medcov_money::Currency::parse(&input.currency) {
        errors.push(FieldError::new("currency", why));
    }
    if input.effective_to.is_some_and(|to| to < input.effective_from) {
        errors.push(FieldError::new("effective_to", "must not be before effective_from"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let entry = PriceEntry {
        id: Uuid::now_v7(),
        hospital_id: input.hospital_id,
        service_code: code,
        category,
        description: input.description.trim().to_owned(),
        unit_price: input.unit_price,
        currency: input.currency,
        effective_from: input.effective_from,
        effective_to: input.effective_to,
    };
    store.add_price(&entry, actor(&principal).user_id).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PriceQuery {
    hospital_id: Uuid,
    /// Only the prices valid on this day.
    #[param(value_type = Option<String>, format = Date)]
    on: Option<Date>,
}

/// A hospital's price list.
#[utoipa::path(get, path = "/price-list", tag = "prices", params(PriceQuery),
    responses((status = 200, body = Vec<PriceEntry>), (status = 404, body = medcov_http::Problem)))]
async fn list_prices(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<PriceQuery>,
) -> Result<Json<Vec<PriceEntry>>, ApiError> {
    if !principal.scope.covers_hospital(query.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    Ok(Json(store.prices(query.hospital_id, query.on).await?))
}

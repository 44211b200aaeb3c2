//! `/price-list`: what each service costs at a hospital, by period.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, FieldError, Json, Page, Query};
use medcov_security::Authorized;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Billers, Readers, actor};
use crate::domain::prices::{self as domain, Price};
use crate::service::BillingService;

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(add_price, list_prices))
        .routes(routes!(import_prices))
        .routes(routes!(export_prices))
        .with_state(service)
}

/// One price of a service at a hospital over a period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceEntry {
    pub id: Uuid,
    pub hospital_id: Uuid,
    #[schema(example = "LAB-FBC")]
    pub service_code: String,
    #[schema(example = "laboratory")]
    pub category: String,
    #[schema(example = "Full blood count")]
    pub description: String,
    /// Minor units.
    #[schema(example = 125000)]
    pub unit_price: i64,
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, format = Date)]
    pub effective_from: Date,
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_to: Option<Date>,
}

impl From<Price> for PriceEntry {
    fn from(p: Price) -> Self {
        PriceEntry {
            id: p.id,
            hospital_id: p.hospital_id,
            service_code: p.service_code,
            category: p.category,
            description: p.description,
            unit_price: p.unit_price,
            currency: p.currency,
            effective_from: p.effective_from,
            effective_to: p.effective_to,
        }
    }
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

impl From<NewPrice> for domain::NewPrice {
    fn from(p: NewPrice) -> Self {
        domain::NewPrice {
            hospital_id: p.hospital_id,
            service_code: p.service_code,
            category: p.category,
            description: p.description,
            unit_price: p.unit_price,
            currency: p.currency,
            effective_from: p.effective_from,
            effective_to: p.effective_to,
        }
    }
}

/// Add a price. Periods of one service code never overlap (409); a price is in the hospital's
/// currency (422 naming `currency` otherwise).
#[utoipa::path(post, path = "/price-list", tag = "prices", request_body = NewPrice,
    responses((status = 201, body = PriceEntry), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn add_price(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    headers: axum::http::HeaderMap,
    Json(input): Json<NewPrice>,
) -> Result<(StatusCode, Json<PriceEntry>), ApiError> {
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    let price = service.add_price(&principal.scope, input.into(), actor(&principal).user_id, authorization).await?;
    Ok((StatusCode::CREATED, Json(price.into())))
}

/// The columns of a price list's CSV, in order.
pub const CSV_HEADER: &str = "service_code,category,description,unit_price,currency,effective_from,effective_to";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    hospital_id: Uuid,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// The line of the file (1 is the header).
    pub line: usize,
    pub service_code: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub imported: usize,
    pub rejected: Vec<Rejected>,
}

/// Import prices from CSV (`text/csv`): a header line with the columns
/// `service_code,category,description,unit_price,currency,effective_from,effective_to` (unit
/// price in minor units, dates as `YYYY-MM-DD`, `effective_to` may be empty), then one price per
/// line. Good lines are added; each bad one is reported with its line number and why.
#[utoipa::path(post, path = "/price-list/import", tag = "prices", params(ImportQuery),
    request_body(content = String, content_type = "text/csv", example = json!("service_code,category,description,unit_price,currency,effective_from,effective_to\nLAB-FBC,laboratory,\"Blood count, full\",125000,KES,2026-01-01,\n")),
    responses((status = 200, body = ImportReport), (status = 404, body = medcov_http::Problem), (status = 415, body = medcov_http::Problem), (status = 422, body = medcov_http::Problem)))]
async fn import_prices(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Billers>,
    Query(query): Query<ImportQuery>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Result<Json<ImportReport>, ApiError> {
    if !principal.scope.covers_hospital(query.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("text/csv") {
        return Err(ApiError::UnsupportedMediaType("send the price list as text/csv".into()));
    }
    let rows =
        crate::domain::csv::parse(&body).map_err(|e| ApiError::Validation(vec![FieldError::new("(body)", e)]))?;
    let Some(((_, header), rows)) = rows.split_first() else {
        return Err(ApiError::Validation(vec![FieldError::new("(body)", "the file is empty")]));
    };
    if header.iter().map(|h| h.trim()).collect::<Vec<_>>().join(",") != CSV_HEADER {
        return Err(ApiError::Validation(vec![FieldError::new(
            "(body)",
            format!("the first line must be `{CSV_HEADER}`"),
        )]));
    }
    let who = actor(&principal).user_id;
    let mut report = ImportReport { imported: 0, rejected: Vec::new() };
    for (line, fields) in rows {
        let code = fields.first().cloned().unwrap_or_default();
        let reject = |reasons: Vec<String>| Rejected { line: *line, service_code: code.clone(), reasons };
        if fields.len() != 7 {
            report.rejected.push(reject(vec![format!("has {} columns, not 7", fields.len())]));
            continue;
        }
        let date = |i: usize, name: &str| -> Result<Option<Date>, String> {
            let text = fields[i].trim();
            if text.is_empty() {
                return Ok(None);
            }
            Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
                .map(Some)
                .map_err(|_| format!("{name}: `{text}` is not a date like 2026-01-31"))
        };
        let mut reasons = Vec::new();
        let unit_price = fields[3]
            .trim()
            .parse::<i64>()
            .map_err(|_| reasons.push("unit_price: must be a whole number of minor units".to_owned()))
            .unwrap_or(-1);
        let from = date(5, "effective_from").unwrap_or_else(|e| {
            reasons.push(e);
            None
        });
        let to = date(6, "effective_to").unwrap_or_else(|e| {
            reasons.push(e);
            None
        });
        if from.is_none() && reasons.iter().all(|r| !r.starts_with("effective_from")) {
            reasons.push("effective_from: is required".to_owned());
        }
        if !reasons.is_empty() {
            report.rejected.push(reject(reasons));
            continue;
        }
        let input = NewPrice {
            hospital_id: query.hospital_id,
            service_code: fields[0].clone(),
            category: fields[1].clone(),
            description: crate::domain::csv::text(&fields[2]),
            unit_price,
            currency: fields[4].trim().to_owned(),
            effective_from: from.unwrap_or(Date::MIN),
            effective_to: to,
        };
        match service
            .add_price(&principal.scope, input.into(), who, headers.get(axum::http::header::AUTHORIZATION))
            .await
        {
            Ok(_) => report.imported += 1,
            Err(ApiError::Validation(errors)) => {
                report.rejected.push(reject(errors.into_iter().map(|e| format!("{}: {}", e.field, e.reason)).collect()))
            }
            Err(ApiError::Conflict(why)) => report.rejected.push(reject(vec![why])),
            Err(other) => return Err(other),
        }
    }
    Ok(Json(report))
}

/// A hospital's price list as CSV, in the import's columns (valid on `on` if given).
#[utoipa::path(get, path = "/price-list/export", tag = "prices", params(PriceQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = medcov_http::Problem)))]
async fn export_prices(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<PriceQuery>,
) -> Result<axum::response::Response, ApiError> {
    use crate::domain::csv::field;
    use axum::response::IntoResponse;
    let mut csv = format!("{CSV_HEADER}\n");
    for p in service.prices(&principal.scope, query.hospital_id, query.on).await? {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            field(&p.service_code),
            field(&p.category),
            field(&p.description),
            p.unit_price,
            p.currency,
            p.effective_from,
            p.effective_to.map(|d| d.to_string()).unwrap_or_default()
        ));
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
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
    responses((status = 200, body = Page<PriceEntry>), (status = 404, body = medcov_http::Problem)))]
async fn list_prices(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<PriceQuery>,
) -> Result<Json<Page<PriceEntry>>, ApiError> {
    let prices = service.prices(&principal.scope, query.hospital_id, query.on).await?;
    Ok(Json(Page::whole(prices).map(PriceEntry::from)))
}

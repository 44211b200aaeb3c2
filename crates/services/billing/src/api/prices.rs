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
    OpenApiRouter::new()
        .routes(routes!(add_price, list_prices))
        .routes(routes!(import_prices))
        .routes(routes!(export_prices))
        .with_state(store)
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
    let entry = checked(input).map_err(ApiError::Validation)?;
    store.add_price(&entry, actor(&principal).user_id).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// A price to add, checked: every problem names its field.
fn checked(input: NewPrice) -> Result<PriceEntry, Vec<FieldError>> {
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
        return Err(errors);
    }
    Ok(PriceEntry {
        id: Uuid::now_v7(),
        hospital_id: input.hospital_id,
        service_code: code,
        category,
        description: input.description.trim().to_owned(),
        unit_price: input.unit_price,
        currency: input.currency,
        effective_from: input.effective_from,
        effective_to: input.effective_to,
    })
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
    State(store): State<Arc<BillingStore>>,
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
            description: fields[2].clone(),
            unit_price,
            currency: fields[4].trim().to_owned(),
            effective_from: from.unwrap_or(Date::MIN),
            effective_to: to,
        };
        match checked(input) {
            Err(errors) => {
                report.rejected.push(reject(errors.into_iter().map(|e| format!("{}: {}", e.field, e.reason)).collect()))
            }
            Ok(entry) => match store.add_price(&entry, who).await {
                Ok(()) => report.imported += 1,
                Err(crate::store::StoreError::Conflict(why)) => report.rejected.push(reject(vec![why])),
                Err(other) => return Err(other.into()),
            },
        }
    }
    Ok(Json(report))
}

/// A hospital's price list as CSV, in the import's columns (valid on `on` if given).
#[utoipa::path(get, path = "/price-list/export", tag = "prices", params(PriceQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = medcov_http::Problem)))]
async fn export_prices(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Readers>,
    Query(query): Query<PriceQuery>,
) -> Result<axum::response::Response, ApiError> {
    use crate::domain::csv::field;
    use axum::response::IntoResponse;
    if !principal.scope.covers_hospital(query.hospital_id) {
        return Err(ApiError::NotFound("no such hospital".into()));
    }
    let mut csv = format!("{CSV_HEADER}\n");
    for p in store.prices(query.hospital_id, query.on).await? {
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

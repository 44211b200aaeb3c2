//! `/reports`: cash by day and method, aged receivables, commissions by agent; JSON, or CSV
//! with `format=csv`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use medcov_http::{ApiError, FieldError, Json, Query};
use medcov_security::{Authorized, Policy, Role};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{insurer_in_scope, tenants_in_scope};
use crate::store::BillingStore;
use crate::store::reports::{AgedRow, CashRow, CommissionRow, CsvRow};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(daily_cash))
        .routes(routes!(aged_receivables))
        .routes(routes!(commissions))
        .with_state(store)
}

/// Who reads reports.
pub struct Reporters;
impl Policy for Reporters {
    const ROLES: &'static [Role] = &[Role::Admin, Role::BillingClerk, Role::Auditor];
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// Rows as JSON, or as CSV with a header line (every value is a number, a date, an id or a
/// fixed word, so nothing needs quoting).
fn respond<T: Serialize + CsvRow>(format: Format, name: &str, rows: Vec<T>) -> Result<Response, ApiError> {
    if format == Format::Json {
        return Ok(Json(rows).into_response());
    }
    let mut csv = format!("{}\n", T::HEADER);
    for row in &rows {
        csv.push_str(&row.csv());
        csv.push('\n');
    }
    let disposition = format!("attachment; filename=\"{name}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        csv,
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Period {
    #[param(value_type = String, format = Date)]
    from: Date,
    #[param(value_type = String, format = Date)]
    to: Date,
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// Money received and refunded per day and method (the caller's hospitals or insurer).
#[utoipa::path(get, path = "/reports/daily-cash", tag = "reports", params(Period),
    responses((status = 200, body = Vec<CashRow>, description = "JSON, or CSV with format=csv"), (status = 422, body = medcov_http::Problem)))]
async fn daily_cash(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Reporters>,
    Query(query): Query<Period>,
) -> Result<Response, ApiError> {
    if query.to < query.from || (query.to - query.from).whole_days() > 366 {
        return Err(ApiError::Validation(vec![FieldError::new("to", "must be on or after from, within a year")]));
    }
    let tenants = tenants_in_scope(&principal);
    let rows = store.daily_cash(tenants.as_deref(), query.from, query.to).await?;
    respond(query.format, "daily-cash", rows)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// The day ages are counted to (today by default).
    #[param(value_type = Option<String>, format = Date)]
    as_of: Option<Date>,
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// What patients and insurers owe on issued invoices, by age: 0–30, 31–60, 61–90 and over 90
/// days since issue.
#[utoipa::path(get, path = "/reports/aged-receivables", tag = "reports", params(AsOf),
    responses((status = 200, body = Vec<AgedRow>, description = "JSON, or CSV with format=csv")))]
async fn aged_receivables(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Reporters>,
    Query(query): Query<AsOf>,
) -> Result<Response, ApiError> {
    let tenants = tenants_in_scope(&principal);
    let as_of = query.as_of.unwrap_or_else(|| OffsetDateTime::now_utc().date());
    let rows = store.aged_receivables(tenants.as_deref(), as_of).await?;
    respond(query.format, "aged-receivables", rows)
}

/// Commissions per agent earned in a period (the caller's insurer).
#[utoipa::path(get, path = "/reports/commissions", tag = "reports", params(Period),
    responses((status = 200, body = Vec<CommissionRow>, description = "JSON, or CSV with format=csv"), (status = 422, body = medcov_http::Problem)))]
async fn commissions(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Reporters>,
    Query(query): Query<Period>,
) -> Result<Response, ApiError> {
    if query.to < query.from {
        return Err(ApiError::Validation(vec![FieldError::new("to", "must be on or after from")]));
    }
    let from = query.from.midnight().assume_utc();
    let to = query.to.next_day().unwrap_or(query.to).midnight().assume_utc();
    let rows = store.commissions_by_agent(insurer_in_scope(&principal), from, to).await?;
    respond(query.format, "commissions", rows)
}

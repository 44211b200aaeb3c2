//! `/reports`: cash by day and method, aged receivables, commissions by agent; JSON, or CSV
//! with `format=csv`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use medcov_domain::TextEnum;
use medcov_http::{ApiError, Json, Page, Query};
use medcov_security::{Authorized, Policy, Role};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::csv::field;
use crate::domain::invoice::Payer;
use crate::domain::ledger::Method;
use crate::domain::reports::{Aged, AgentCommissions, CashDay};
use crate::service::BillingService;

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(daily_cash))
        .routes(routes!(aged_receivables))
        .routes(routes!(commissions))
        .with_state(service)
}

/// One currency, one local day, one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CashRow {
    /// Every amount of the row is in it; rows of two currencies are never added.
    #[schema(example = "KES")]
    pub currency: String,
    /// The local day of the hospital or insurer whose books the money is in.
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    pub method: Method,
    pub received: i64,
    pub refunded: i64,
    /// Commissions paid out to agents.
    pub paid_out: i64,
    /// received - refunded - paid_out.
    pub net: i64,
}

impl From<CashDay> for CashRow {
    fn from(d: CashDay) -> Self {
        CashRow {
            currency: d.currency,
            date: d.date,
            method: d.method,
            received: d.received,
            refunded: d.refunded,
            paid_out: d.paid_out,
            net: d.net,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgedRow {
    #[schema(example = "KES")]
    pub currency: String,
    /// `patient` or `insurer`.
    pub payer: Payer,
    /// The patient or the insurer.
    pub party_id: Option<Uuid>,
    /// Issued 0 to 30 days before the report date.
    pub current: i64,
    pub days_31_60: i64,
    pub days_61_90: i64,
    pub over_90: i64,
    pub total: i64,
}

impl From<Aged> for AgedRow {
    fn from(a: Aged) -> Self {
        AgedRow {
            currency: a.currency,
            payer: a.payer,
            party_id: a.party_id,
            current: a.current,
            days_31_60: a.days_31_60,
            days_61_90: a.days_61_90,
            over_90: a.over_90,
            total: a.total,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CommissionRow {
    pub agent_id: Uuid,
    #[schema(example = "KES")]
    pub currency: String,
    pub commissions: i64,
    pub earned: i64,
    pub clawed_back: i64,
}

impl From<AgentCommissions> for CommissionRow {
    fn from(c: AgentCommissions) -> Self {
        CommissionRow {
            agent_id: c.agent_id,
            currency: c.currency,
            commissions: c.commissions,
            earned: c.earned,
            clawed_back: c.clawed_back,
        }
    }
}

/// A report row as a CSV line, in the order of its header.
trait CsvRow {
    const HEADER: &'static str;
    fn csv(&self) -> String;
}

impl CsvRow for CashRow {
    const HEADER: &'static str = "currency,date,method,received,refunded,paid_out,net";
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{}",
            field(&self.currency),
            self.date,
            self.method.as_str(),
            self.received,
            self.refunded,
            self.paid_out,
            self.net
        )
    }
}

impl CsvRow for AgedRow {
    const HEADER: &'static str = "currency,payer,party_id,current,days_31_60,days_61_90,over_90,total";
    fn csv(&self) -> String {
        let party = self.party_id.map(|p| p.to_string()).unwrap_or_default();
        format!(
            "{},{},{party},{},{},{},{},{}",
            field(&self.currency),
            self.payer.as_str(),
            self.current,
            self.days_31_60,
            self.days_61_90,
            self.over_90,
            self.total
        )
    }
}

impl CsvRow for CommissionRow {
    const HEADER: &'static str = "agent_id,currency,commissions,earned,clawed_back";
    fn csv(&self) -> String {
        format!("{},{},{},{},{}", self.agent_id, field(&self.currency), self.commissions, self.earned, self.clawed_back)
    }
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

/// Rows as JSON (the list envelope, whole), or as CSV with a header line (every value is a number, a date, an id, a
/// fixed word or a currency code; text goes through `csv::field`, which also keeps a cell from
/// being run as a formula).
fn respond<T: Serialize + CsvRow>(format: Format, name: &str, rows: Vec<T>) -> Result<Response, ApiError> {
    if format == Format::Json {
        return Ok(Json(Page::whole(rows)).into_response());
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

/// Money received, refunded and paid out (commissions) per currency, day and method (the
/// caller's hospitals or insurer). A day is the local day of the hospital or insurer whose
/// books the money is in; two currencies are never added.
#[utoipa::path(get, path = "/reports/daily-cash", tag = "reports", params(Period),
    responses((status = 200, description = "JSON, or CSV with `format=csv`.", content((Page<CashRow> = "application/json"), (String = "text/csv"))), (status = 422, body = medcov_http::Problem)))]
async fn daily_cash(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Reporters>,
    headers: axum::http::HeaderMap,
    Query(query): Query<Period>,
) -> Result<Response, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION);
    let rows = service.daily_cash(&principal.scope, (query.from, query.to), authorization).await?;
    respond(query.format, "daily-cash", rows.into_iter().map(CashRow::from).collect())
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

/// What patients and insurers owe on issued invoices, per currency, by age: 0–30, 31–60,
/// 61–90 and over 90 days since issue.
#[utoipa::path(get, path = "/reports/aged-receivables", tag = "reports", params(AsOf),
    responses((status = 200, description = "JSON, or CSV with `format=csv`.", content((Page<AgedRow> = "application/json"), (String = "text/csv")))))]
async fn aged_receivables(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Reporters>,
    headers: axum::http::HeaderMap,
    Query(query): Query<AsOf>,
) -> Result<Response, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION);
    let rows = service.aged_receivables(&principal.scope, query.as_of, authorization).await?;
    respond(query.format, "aged-receivables", rows.into_iter().map(AgedRow::from).collect())
}

/// Commissions per agent and currency earned in a period of the insurer's local days (the
/// caller's insurer).
#[utoipa::path(get, path = "/reports/commissions", tag = "reports", params(Period),
    responses((status = 200, description = "JSON, or CSV with `format=csv`.", content((Page<CommissionRow> = "application/json"), (String = "text/csv"))), (status = 422, body = medcov_http::Problem)))]
async fn commissions(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Reporters>,
    headers: axum::http::HeaderMap,
    Query(query): Query<Period>,
) -> Result<Response, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION);
    let rows = service.commissions_by_agent(&principal.scope, (query.from, query.to), authorization).await?;
    respond(query.format, "commissions", rows.into_iter().map(CommissionRow::from).collect())
}

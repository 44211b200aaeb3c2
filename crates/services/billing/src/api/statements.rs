//! Statements: what a patient owes and paid, and what an insurer was billed, paid and owes.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Path};
use medcov_security::{Authorized, Policy, Role};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::invoice::Status;
use crate::domain::reports as domain;
use crate::service::BillingService;

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(patient_statement)).routes(routes!(insurer_statement)).with_state(service)
}

/// Who reads statements.
pub struct StatementReaders;
impl Policy for StatementReaders {
    const ROLES: &'static [Role] = &[Role::Admin, Role::BillingClerk, Role::Auditor, Role::Service];
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatementLine {
    pub invoice_id: Uuid,
    pub number: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_service: time::Date,
    pub currency: String,
    pub status: Status,
    pub total: i64,
    /// This payer's share of it.
    pub share: i64,
    /// On an insurer's statement: of its share, what it pays ex gratia, beyond the plan's
    /// limits, on its own line: never covered benefit. 0 on a patient's statement.
    pub ex_gratia: i64,
    pub paid: i64,
    pub outstanding: i64,
    /// On a patient's statement: why they pay their share, the insurer's adjustments of the
    /// invoice summed by code (`deductible`, `co_pay`, `co_insurance`, `benefit_limit`,
    /// `ceiling`, `exclusion`, `waiting_period`, `not_covered`, `override`, `ex_gratia`).
    pub adjustments: Vec<crate::domain::invoice::LineAdjustment>,
}

/// What a payer was billed, paid and owes in one currency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Totals {
    #[schema(example = "KES")]
    pub currency: String,
    pub billed: i64,
    /// Of `billed`, what an insurer pays ex gratia, beyond the plan's limits; the rest is
    /// covered benefit.
    pub ex_gratia: i64,
    pub paid: i64,
    pub outstanding: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Statement {
    /// The patient or the insurer.
    pub party_id: Uuid,
    /// Per currency (by code): amounts in two currencies are never added.
    pub totals: Vec<Totals>,
    /// Issued invoices, newest first (drafts and void ones are left out).
    pub invoices: Vec<StatementLine>,
}

impl From<domain::Statement> for Statement {
    fn from(s: domain::Statement) -> Self {
        Statement {
            party_id: s.party_id,
            totals: s
                .totals
                .into_iter()
                .map(|t| Totals {
                    currency: t.currency,
                    billed: t.billed,
                    ex_gratia: t.ex_gratia,
                    paid: t.paid,
                    outstanding: t.outstanding,
                })
                .collect(),
            invoices: s
                .invoices
                .into_iter()
                .map(|l| StatementLine {
                    invoice_id: l.invoice_id,
                    number: l.number,
                    date_of_service: l.date_of_service,
                    currency: l.currency,
                    status: l.status,
                    total: l.total,
                    share: l.share,
                    ex_gratia: l.ex_gratia,
                    paid: l.paid,
                    outstanding: l.outstanding,
                    adjustments: l.adjustments,
                })
                .collect(),
        }
    }
}

/// A patient's statement at the caller's hospitals: their shares billed, paid and owed. 404
/// when the patient has no invoice there.
#[utoipa::path(get, path = "/patients/{id}/statement", tag = "statements",
    responses((status = 200, body = Statement), (status = 404, description = "No invoice of this patient at the caller's hospitals.", body = medcov_http::Problem)))]
async fn patient_statement(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<StatementReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<Statement>, ApiError> {
    Ok(Json(service.patient_statement(&principal.scope, id).await?.into()))
}

/// An insurer's statement: the insurer shares billed to it, paid and owed; for hospital staff
/// at their hospitals, for the insurer's staff at every hospital. 404 when nothing was billed
/// to it there (or it is another insurer).
#[utoipa::path(get, path = "/insurers/{id}/statement", tag = "statements",
    responses((status = 200, body = Statement), (status = 404, body = medcov_http::Problem)))]
async fn insurer_statement(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<StatementReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<Statement>, ApiError> {
    Ok(Json(service.insurer_statement(&principal.scope, id).await?.into()))
}

//! Statements: what a patient owes and paid, and what an insurer was billed, paid and owes.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Path};
use medcov_security::{Authorized, Policy, Role, Scope};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::hospitals_in_scope;
use crate::domain::invoice::Status;
use crate::store::{BillingStore, Invoice};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(patient_statement)).routes(routes!(insurer_statement)).with_state(store)
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
    pub paid: i64,
    pub outstanding: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Statement {
    /// The patient or the insurer.
    pub party_id: Uuid,
    pub billed: i64,
    pub paid: i64,
    pub outstanding: i64,
    /// Issued invoices, newest first (drafts and void ones are left out).
    pub invoices: Vec<StatementLine>,
}

fn statement(party: Uuid, invoices: Vec<Invoice>, insurer: bool) -> Statement {
    let lines: Vec<StatementLine> = invoices
        .into_iter()
        .filter(|i| matches!(i.status, Status::Issued | Status::PartiallyPaid | Status::Paid))
        .map(|i| {
            let (share, paid) =
                if insurer { (i.insurer_share, i.paid_insurer) } else { (i.patient_share, i.paid_patient) };
            StatementLine {
                invoice_id: i.id,
                number: i.number,
                date_of_service: i.date_of_service,
                currency: i.currency,
                status: i.status,
                total: i.total,
                share,
                paid,
                outstanding: share - paid,
            }
        })
        .filter(|l| l.share > 0)
        .collect();
    Statement {
        party_id: party,
        billed: lines.iter().map(|l| l.share).sum(),
        paid: lines.iter().map(|l| l.paid).sum(),
        outstanding: lines.iter().map(|l| l.outstanding).sum(),
        invoices: lines,
    }
}

/// A patient's statement at the caller's hospitals: their shares billed, paid and owed.
#[utoipa::path(get, path = "/patients/{id}/statement", tag = "statements",
    responses((status = 200, body = Statement)))]
async fn patient_statement(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<StatementReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<Statement>, ApiError> {
    let hospitals = hospitals_in_scope(&principal);
    let invoices = store.invoices(hospitals.as_deref(), None, Some(id), 200, 0).await?;
    Ok(Json(statement(id, invoices, false)))
}

/// An insurer's statement: the insurer shares billed to it, paid and owed; for hospital staff
/// at their hospitals, for the insurer's staff at every hospital.
#[utoipa::path(get, path = "/insurers/{id}/statement", tag = "statements",
    responses((status = 200, body = Statement), (status = 404, body = medcov_http::Problem)))]
async fn insurer_statement(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<StatementReaders>,
    Path(id): Path<Uuid>,
) -> Result<Json<Statement>, ApiError> {
    let hospitals = match &principal.scope {
        Scope::Platform => None,
        Scope::Insurer { insurer } if *insurer == id => None,
        Scope::Hospitals { hospitals } => Some(hospitals.clone()),
        _ => return Err(ApiError::NotFound("no such insurer".into())),
    };
    let invoices = store.invoices_of_insurer(id, hospitals.as_deref()).await?;
    Ok(Json(statement(id, invoices, true)))
}

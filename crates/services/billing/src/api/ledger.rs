//! `/ledger`: the reconciliation of the journal with invoices and payments.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Page};
use medcov_security::{Authorized, Policy, Role};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::ledger::{self as domain, Account};
use crate::service::BillingService;

pub fn router(service: Arc<BillingService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(reconciliation)).with_state(service)
}

/// Who checks the books.
pub struct Auditors;
impl Policy for Auditors {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
}

/// One account of the reconciliation, in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reconciled {
    /// Every balance is in one currency: two are never added.
    #[schema(example = "KES")]
    pub currency: String,
    pub account: Account,
    /// Debits minus credits in the journal.
    pub journal: i64,
    /// The same balance derived from invoices and payments.
    pub derived: i64,
    pub agrees: bool,
}

impl From<domain::Reconciled> for Reconciled {
    fn from(r: domain::Reconciled) -> Self {
        Reconciled {
            currency: r.currency,
            account: r.account,
            journal: r.journal,
            derived: r.derived,
            agrees: r.agrees,
        }
    }
}

/// Each account's balance in the journal beside the same balance derived from invoices and
/// payments, per currency (by its code, then account; two currencies are never added);
/// `agrees` is false for any account where they differ (for the caller's hospitals or insurer,
/// the whole platform for its admins and auditors).
#[utoipa::path(get, path = "/ledger/reconciliation", tag = "ledger", responses((status = 200, body = Page<Reconciled>)))]
async fn reconciliation(
    State(service): State<Arc<BillingService>>,
    Authorized(principal, _): Authorized<Auditors>,
) -> Result<Json<Page<Reconciled>>, ApiError> {
    let report = service.reconcile(&principal.scope).await?;
    Ok(Json(Page::whole(report).map(Reconciled::from)))
}

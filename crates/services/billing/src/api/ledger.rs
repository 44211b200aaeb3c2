//! `/ledger`: the reconciliation of the journal with invoices and payments.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json};
use medcov_security::{Authorized, Policy, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenants_in_scope;
use crate::store::{BillingStore, Reconciled};

pub fn router(store: Arc<BillingStore>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(reconciliation)).with_state(store)
}

/// Who checks the books.
pub struct Auditors;
impl Policy for Auditors {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
}

/// Each account's balance in the journal beside the same balance derived from invoices and
/// payments; `agrees` is false for any account where they differ (for the caller's hospitals
/// or insurer).
#[utoipa::path(get, path = "/ledger/reconciliation", tag = "ledger", responses((status = 200, body = Vec<Reconciled>)))]
async fn reconciliation(
    State(store): State<Arc<BillingStore>>,
    Authorized(principal, _): Authorized<Auditors>,
) -> Result<Json<Vec<Reconciled>>, ApiError> {
    let tenants = tenants_in_scope(&principal);
    Ok(Json(store.reconcile(tenants.as_deref()).await?))
}

//! The billing service's HTTP API. Each resource gets its own module and router, merged here.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(info(
    title = "MedCov billing service",
    description = "The billing service owns price lists, invoices, payments, refunds, premiums, agents, commissions and the ledger. Reached through the gateway under `/api/billing/`."
))]
struct ApiDoc;

pub fn router() -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

//! The insurance service's HTTP API. Each resource gets its own module and router, merged here.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(info(
    title = "MedCov insurance service",
    description = "The insurance service owns insurers, plans, policies and members, eligibility, pre-authorisations, claims and accumulators. Reached through the gateway under `/api/insurance/`."
))]
struct ApiDoc;

pub fn router() -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

//! The hospital service's HTTP API. Each resource gets its own module and router, merged here.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(info(
    title = "MedCov hospital service",
    description = "The hospital service owns hospitals, practitioners, patients, appointments and encounters. Reached through the gateway under `/api/hospital/`."
))]
struct ApiDoc;

pub fn router() -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

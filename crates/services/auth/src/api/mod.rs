//! The auth service's HTTP API. Each resource gets its own module and router, merged here.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(info(
    title = "MedCov auth service",
    description = "The auth service owns users, roles, tenant scopes, credentials, tokens and signing keys. Reached through the gateway under `/api/auth/`."
))]
struct ApiDoc;

pub fn router() -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

//! The gateway's HTTP API.

pub mod proxy;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(info(
    title = "MedCov gateway",
    description = "The single public entry of MedCov. `/api/<service>/<path>` is served by `<path>` on the auth, hospital, insurance or billing service; each service's own document is at `/api/<service>/openapi.json`."
))]
struct ApiDoc;

pub fn router(proxy: proxy::ProxyState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(proxy::router(proxy))
}

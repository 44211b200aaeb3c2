//! The gateway's HTTP API.

pub mod cache;
pub mod docs;
pub mod mesh;
pub mod proxy;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(info(
    title = "MedCov gateway",
    description = "The single public entry of MedCov. `/api/<service>/<path>` is served by `<path>` on the auth, hospital, insurance or billing service. This document merges all of them; each service's own is at `/api/<service>/openapi.json`, and `/docs` shows this one in Swagger UI. The gateway's own `/mesh` routes (platform administrators) show and operate its calls to the services: instances, health, circuit breakers and the mesh policy."
))]
struct ApiDoc;

pub fn router(proxy: proxy::ProxyState, mesh: std::sync::Arc<medcov_mesh::Mesh>) -> OpenApiRouter {
    let docs = docs::router(ApiDoc::openapi(), proxy.upstreams.clone());
    let admin = mesh::router(mesh).layer(axum::Extension(proxy.verifier.clone()));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(docs).merge(admin).merge(proxy::router(proxy))
}

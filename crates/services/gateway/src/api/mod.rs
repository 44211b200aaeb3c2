//! The gateway's HTTP API.

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
    let admin = mesh::router(mesh).layer(axum::Extension(proxy.verifier.clone()));
    // The merged document starts with the gateway's own routes (`/mesh`).
    let mut own = ApiDoc::openapi();
    own.merge(admin.get_openapi().clone());
    let docs = docs::Docs::new(own, proxy.upstreams.clone());
    let proxy = proxy::ProxyState { routes: Some(docs.clone()), ..proxy };
    let docs = docs::router(docs);
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(docs).merge(admin).merge(proxy::router(proxy))
}

//! `/.well-known/jwks.json` and `/keys/rotate`.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json};
use medcov_security::{Authorized, JwkSet};

use super::PlatformAdmins;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::AuthService;

pub fn router(service: Arc<AuthService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(jwks)).routes(routes!(rotate)).with_state(service)
}

/// The public keys that verify access tokens, with their key ids.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", responses((status = 200, body = JwkSet)))]
async fn jwks(State(service): State<Arc<AuthService>>) -> Result<Json<JwkSet>, ApiError> {
    service.jwks().await.map(Json)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The id of the key that signs from now on.
    kid: String,
}

/// Start signing with a new key. The old key keeps verifying until the tokens it signed have
/// expired. Platform administrators only.
#[utoipa::path(post, path = "/keys/rotate", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = Rotated), (status = 401, body = medcov_http::Problem), (status = 403, body = medcov_http::Problem)))]
async fn rotate(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<PlatformAdmins>,
) -> Result<Json<Rotated>, ApiError> {
    service.rotate_key(Some(principal.id)).await.map(|kid| Json(Rotated { kid }))
}

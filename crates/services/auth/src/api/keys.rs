//! `/.well-known/jwks.json`, `/revocations` and `/keys/rotate`.

use std::sync::Arc;

use axum::extract::State;
use medcov_http::{ApiError, Json, Query};
use medcov_security::{Authorized, JwkSet, RevocationList};
use time::OffsetDateTime;

use super::PlatformAdmins;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::AuthService;

pub fn router(service: Arc<AuthService>) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(jwks)).routes(routes!(revocations)).routes(routes!(rotate)).with_state(service)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevocationsQuery {
    /// Revocations recorded at or after this instant (RFC 3339); all live ones without it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
}

/// The sessions and users whose access tokens are refused before they expire (logouts, reused
/// refresh tokens, deactivations, changed passwords, roles or scopes). Every MedCov process
/// polls it to refuse those tokens everywhere within a second. For the services: not routed
/// by the gateway.
#[utoipa::path(get, path = "/revocations", tag = "keys", security(()), params(RevocationsQuery),
    responses((status = 200, body = RevocationList)))]
async fn revocations(
    State(service): State<Arc<AuthService>>,
    Query(query): Query<RevocationsQuery>,
) -> Result<Json<RevocationList>, ApiError> {
    service.revocations_since(query.since.unwrap_or(OffsetDateTime::UNIX_EPOCH)).await.map(Json)
}

/// The public keys that verify access tokens, with their key ids.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", security(()), responses((status = 200, body = JwkSet)))]
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

//! The auth service's HTTP API. Each resource has its own module and router, merged here.
//!
//! - `sessions`: login, refresh, logout (no token needed: these are how you get one).
//! - `keys`: the JWKS (public) and key rotation (platform administrators).
//! - `users`: user administration and the caller's own account.
//! - `audit`: the authentication audit log (auditors and administrators).

mod audit;
mod keys;
pub mod limits;
mod sessions;
mod users;

use medcov_security::{Policy, Role};

/// Administrators of any scope.
pub struct Admins;
impl Policy for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// Platform-wide administrators.
pub struct PlatformAdmins;
impl Policy for PlatformAdmins {
    const ROLES: &'static [Role] = &[Role::Admin];
    const PLATFORM_ONLY: bool = true;
}

/// Administrators and auditors.
pub struct Overseers;
impl Policy for Overseers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
}

use std::sync::Arc;

use axum::Extension;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::service::AuthService;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MedCov auth service",
        description = "Users, roles, tenant scopes, credentials, tokens and signing keys. Reached through the gateway under `/api/auth/`. Access tokens are Ed25519-signed JWTs (send `Authorization: Bearer <token>`); refresh tokens are opaque, single-use and rotate on every refresh."
    ),
    components(schemas(medcov_http::Problem, medcov_http::FieldError)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

pub fn router(service: Arc<AuthService>, sign_in: limits::Guard) -> OpenApiRouter {
    let verifier = service.verifier();
    let sessions =
        sessions::router(service.clone()).route_layer(axum::middleware::from_fn_with_state(sign_in, limits::guard));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sessions)
        .merge(keys::router(service.clone()))
        .merge(users::router(service.clone()))
        .merge(audit::router(service))
        .layer(Extension(verifier))
}

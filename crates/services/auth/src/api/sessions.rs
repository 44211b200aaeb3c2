//! `/login`, `/token/refresh`, `/logout`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medcov_http::{ApiError, Json};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::sessions::Tokens;
use crate::service::AuthService;

pub fn router(service: Arc<AuthService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(client_token))
        .with_state(service)
}

/// Tokens handed out by login, refresh and the client-credentials grant.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single use: each refresh returns a new one.
    pub refresh_token: String,
}

impl From<Tokens> for TokenPair {
    fn from(tokens: Tokens) -> Self {
        TokenPair {
            access_token: tokens.access_token,
            token_type: "Bearer".into(),
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "amina.desk", "password": "correct horse battery staple"}))]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "mcr_3q2-4Yk0wH1nW7pZ8cXfT5bV9sL6dR2a"}))]
pub struct RefreshRequest {
    refresh_token: String,
}

/// Sign in. A wrong username, a wrong password, a locked and a deactivated account all get the
/// same 401; the fifth failure in a row locks the account for 15 minutes (configurable).
#[utoipa::path(post, path = "/login", tag = "sessions", security(()), request_body = Credentials,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "Invalid username or password.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn login(
    State(service): State<Arc<AuthService>>,
    Json(body): Json<Credentials>,
) -> Result<Json<TokenPair>, ApiError> {
    service.login(&body.username, &body.password).await.map(|tokens| Json(tokens.into()))
}

/// Exchange a refresh token for new tokens. Each refresh token works once; presenting a used
/// one again revokes the whole session.
#[utoipa::path(post, path = "/token/refresh", tag = "sessions", security(()), request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused.", body = medcov_http::Problem),
    ))]
async fn refresh(
    State(service): State<Arc<AuthService>>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    service.refresh(&body.refresh_token).await.map(|tokens| Json(tokens.into()))
}

/// End the session the refresh token belongs to.
#[utoipa::path(post, path = "/logout", tag = "sessions", security(()), request_body = RefreshRequest,
    responses((status = 204, description = "The session is revoked."), (status = 401, body = medcov_http::Problem)))]
async fn logout(
    State(service): State<Arc<AuthService>>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    service.logout(&body.refresh_token).await.map(|()| StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"grant_type": "client_credentials", "client_id": "svc-claims-import", "client_secret": "mcs_8fJ2kL9qW3eR7tY1uI5oP0aS4dF6gH2j"}))]
pub struct ClientCredentials {
    /// Must be `client_credentials`.
    grant_type: String,
    client_id: String,
    client_secret: String,
}

/// The client-credentials grant for service accounts: an access token, no refresh token.
#[utoipa::path(post, path = "/token", tag = "sessions", security(()), request_body = ClientCredentials,
    responses(
        (status = 200, body = TokenPair, description = "`refresh_token` is empty."),
        (status = 401, body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn client_token(
    State(service): State<Arc<AuthService>>,
    Json(body): Json<ClientCredentials>,
) -> Result<Json<TokenPair>, ApiError> {
    if body.grant_type != "client_credentials" {
        return Err(ApiError::field("grant_type", "must be `client_credentials`"));
    }
    service.client_token(&body.client_id, &body.client_secret).await.map(|tokens| Json(tokens.into()))
}

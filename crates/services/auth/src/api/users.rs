//! `/users` (administration) and `/me` (the caller's own account).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medcov_http::{ApiError, Json, Page, Path, Query};
use medcov_security::{Authorized, Principal, PrincipalKind, Role, Scope};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Admins, Overseers, PlatformAdmins};
use crate::domain::user::{AccountChange, NewAccount, User};
use crate::service::AuthService;

pub fn router(service: Arc<AuthService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(create_service_account))
        .with_state(service)
}

/// A new account.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "amina.desk", "password": "correct horse battery staple", "display_name": "Amina (front desk)", "roles": ["hospital_clerk"], "scope": {"kind": "hospitals", "hospitals": ["0190f5a4-0000-7000-8000-000000000001"]}}))]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(deserialize_with = "medcov_domain::unique::set")]
    pub roles: BTreeSet<Role>,
    pub scope: Scope,
}

impl From<NewUser> for NewAccount {
    fn from(body: NewUser) -> Self {
        NewAccount {
            username: body.username,
            password: body.password,
            display_name: body.display_name,
            roles: body.roles,
            scope: body.scope,
        }
    }
}

/// A change to an account: fields left out keep their value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Amina Okafor", "roles": ["hospital_clerk", "billing_clerk"]}))]
pub struct UserChange {
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "medcov_domain::unique::optional_set")]
    pub roles: Option<BTreeSet<Role>>,
    pub scope: Option<Scope>,
}

impl From<UserChange> for AccountChange {
    fn from(body: UserChange) -> Self {
        AccountChange { display_name: body.display_name, roles: body.roles, scope: body.scope }
    }
}

/// An account as the API shows it (never its password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    id: Uuid,
    username: String,
    display_name: String,
    #[schema(value_type = String)]
    kind: PrincipalKind,
    roles: BTreeSet<Role>,
    scope: Scope,
    active: bool,
    /// Locked after too many failed logins.
    locked: bool,
    /// Send it back as `If-Match: "<version>"` when changing the user.
    version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            kind: user.kind,
            roles: user.roles.clone(),
            scope: user.scope.clone(),
            active: user.active,
            locked: user.failures.is_locked(OffsetDateTime::now_utc()),
            version: user.version,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

fn with_etag(status: StatusCode, user: &User) -> Response {
    let mut response = (status, Json(UserView::from(user))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", user.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The version an `If-Match` header asks for; absent means "whatever is current".
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim().trim_start_matches("W/").trim_matches('"');
    text.parse().map(Some).map_err(|_| ApiError::BadRequest {
        detail: "If-Match must be the ETag of the user, such as \"3\"".into(),
        errors: vec![medcov_http::FieldError::new("If-Match", "must be an ETag returned by this API")],
    })
}

/// Create a user. Administrators only, and only within their own scope.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = NewUser,
    responses(
        (status = 201, body = UserView),
        (status = 403, body = medcov_http::Problem),
        (status = 409, description = "The username is taken.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn create_user(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<Admins>,
    Json(body): Json<NewUser>,
) -> Result<Response, ApiError> {
    let user = service.create_user(Some(&principal), body.into()).await?;
    Ok(with_etag(StatusCode::CREATED, &user))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Return users after this id (the `paging.next_after` of the previous page).
    after: Option<Uuid>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// List users: every user for platform administrators and auditors, the tenant's own users for
/// tenant administrators and auditors.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = Page<UserView>), (status = 403, body = medcov_http::Problem)))]
async fn list_users(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<Overseers>,
    Query(page): Query<UserQuery>,
) -> Result<Json<Page<UserView>>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let users = service.list_users(&principal, page.after, limit + 1).await?;
    Ok(Json(Page::after(users, limit, page.after, |u| u.id).map(|u| UserView::from(&u))))
}

/// One user. Users outside the caller's scope are not found.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView, headers(("ETag" = String))), (status = 404, body = medcov_http::Problem)))]
async fn get_user(
    State(service): State<Arc<AuthService>>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = service.visible_user(&principal, id).await?;
    Ok(with_etag(StatusCode::OK, &user))
}

/// Change a user's display name, roles or scope. Send `If-Match` with the ETag you read: a
/// stale one gets 412.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])), request_body = UserChange,
    responses(
        (status = 200, body = UserView),
        (status = 404, body = medcov_http::Problem),
        (status = 412, body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn update_user(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<Admins>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<UserChange>,
) -> Result<Response, ApiError> {
    let version = if_match(&headers)?;
    let user = service.update_user(&principal, id, version, change.into()).await?;
    Ok(with_etag(StatusCode::OK, &user))
}

/// Deactivate a user: they can no longer sign in, and every session of theirs is revoked.
#[utoipa::path(post, path = "/users/{id}/deactivate", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 404, body = medcov_http::Problem), (status = 409, body = medcov_http::Problem)))]
async fn deactivate_user(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<Admins>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = service.deactivate(&principal, id).await?;
    Ok(with_etag(StatusCode::OK, &user))
}

/// The caller's own account.
#[utoipa::path(get, path = "/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = medcov_http::Problem)))]
async fn me(State(service): State<Arc<AuthService>>, principal: Principal) -> Result<Response, ApiError> {
    let user = service.visible_user(&principal, principal.id).await?;
    Ok(with_etag(StatusCode::OK, &user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery staple", "new_password": "a longer passphrase than before"}))]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Change your password. Every session of yours is revoked: sign in again.
#[utoipa::path(post, path = "/me/password", tag = "users", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204), (status = 422, body = medcov_http::Problem)))]
async fn change_password(
    State(service): State<Arc<AuthService>>,
    principal: Principal,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    service.change_password(&principal, &body.current_password, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "claims import"}))]
pub struct NewServiceAccount {
    /// The account's client id: 3 to 64 letters, digits, `.`, `_`, `-` or `@`.
    name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceAccountCreated {
    id: Uuid,
    client_id: String,
    /// Shown once: store it now.
    client_secret: String,
}

/// Create a service account (platform administrators). Exchange its credentials at `/token`.
#[utoipa::path(post, path = "/service-accounts", tag = "users", security(("bearer" = [])), request_body = NewServiceAccount,
    responses(
        (status = 201, body = ServiceAccountCreated),
        (status = 403, body = medcov_http::Problem),
        (status = 409, body = medcov_http::Problem),
    ))]
async fn create_service_account(
    State(service): State<Arc<AuthService>>,
    Authorized(principal, _): Authorized<PlatformAdmins>,
    Json(body): Json<NewServiceAccount>,
) -> Result<(StatusCode, Json<ServiceAccountCreated>), ApiError> {
    let (account, secret) = service.create_service_account(&principal, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(ServiceAccountCreated { id: account.id, client_id: account.username, client_secret: secret }),
    ))
}

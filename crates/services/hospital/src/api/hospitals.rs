//! `/hospitals`: the tenants of the hospital side.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, Json, Path};
use medcov_security::{Authorized, Principal};
use sqlx::types::Json as Stored;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::PlatformAdmins;
use crate::domain::hospital::{Address, HospitalInput};
use crate::domain::schedule::WorkingHours;
use crate::store::{Hospital, HospitalStore, StoreError};

pub fn router(store: Arc<HospitalStore>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_hospital, list_hospitals))
        .routes(routes!(get_hospital, change_hospital))
        .with_state(store)
}

/// Register a hospital (platform administrators).
#[utoipa::path(post, path = "/hospitals", tag = "hospitals", request_body = HospitalInput,
    responses(
        (status = 201, body = Hospital),
        (status = 403, body = medcov_http::Problem),
        (status = 409, description = "The code is taken.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn create_hospital(
    State(store): State<Arc<HospitalStore>>,
    _admin: Authorized<PlatformAdmins>,
    Json(input): Json<HospitalInput>,
) -> Result<(StatusCode, Json<Hospital>), ApiError> {
    let errors = input.validate();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = OffsetDateTime::now_utc();
    let hospital = Hospital {
        id: Uuid::now_v7(),
        code: input.code,
        name: input.name.trim().to_owned(),
        timezone: input.timezone,
        currency: input.currency,
        address: Stored(input.address),
        opening_hours: Stored(input.opening_hours),
        active: true,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    store.insert_hospital(&hospital).await.map_err(|e| match e {
        StoreError::CodeTaken => ApiError::Conflict(format!("a hospital with code {} exists", hospital.code)),
        other => ApiError::internal(other),
    })?;
    store.cache().invalidate(&[DIRECTORY_TAG.to_owned()]).await;
    Ok((StatusCode::CREATED, Json(hospital)))
}

/// The cache tag of the hospital directory, invalidated when a hospital is added.
const DIRECTORY_TAG: &str = "hospital:directory";

/// Every hospital: the directory is open to anyone signed in. Cacheable at the gateway for a
/// minute, until a hospital is added.
#[utoipa::path(get, path = "/hospitals", tag = "hospitals", responses((status = 200, body = Vec<Hospital>)))]
async fn list_hospitals(
    State(store): State<Arc<HospitalStore>>,
    _caller: Principal,
) -> Result<(HeaderMap, Json<Vec<Hospital>>), ApiError> {
    let hospitals = store.hospitals().await.map_err(ApiError::internal)?;
    Ok((medcov_http::caching::cacheable(60, &[DIRECTORY_TAG.to_owned()]), Json(hospitals)))
}

/// One hospital. Cacheable at the gateway for five minutes (hospitals are not changed once
/// created; the directory tag covers them all).
#[utoipa::path(get, path = "/hospitals/{id}", tag = "hospitals",
    responses((status = 200, body = Hospital), (status = 404, body = medcov_http::Problem)))]
async fn get_hospital(
    State(store): State<Arc<HospitalStore>>,
    _caller: Principal,
    Path(id): Path<Uuid>,
) -> Result<(HeaderMap, Json<Hospital>), ApiError> {
    let hospital = store
        .hospital(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
    Ok((medcov_http::caching::cacheable(300, &[DIRECTORY_TAG.to_owned()]), Json(hospital)))
}

/// Who changes a hospital's record: its administrators (or the platform's).
pub struct HospitalAdmins;
impl medcov_security::Policy for HospitalAdmins {
    const ROLES: &'static [medcov_security::Role] = &[medcov_security::Role::Admin];
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"opening_hours": [{"weekday": "monday", "start": "07:30", "end": "19:00"}, {"weekday": "saturday", "start": "09:00", "end": "13:00"}]}))]
pub struct HospitalChange {
    pub name: Option<String>,
    pub address: Option<Address>,
    /// The whole week; `[]` makes the hospital open around the clock.
    pub opening_hours: Option<Vec<WorkingHours>>,
}

/// Change a hospital's name, address or opening hours (its code, time zone and currency stay).
/// Send `If-Match` with the ETag you read; a stale one is 412. New opening hours bind bookings
/// made from now on; appointments already booked are kept.
#[utoipa::path(patch, path = "/hospitals/{id}", tag = "hospitals", request_body = HospitalChange,
    responses((status = 200, body = Hospital), (status = 404, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn change_hospital(
    State(store): State<Arc<HospitalStore>>,
    Authorized(principal, _): Authorized<HospitalAdmins>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<HospitalChange>,
) -> Result<(HeaderMap, Json<Hospital>), ApiError> {
    let expected = super::patients::if_match(&headers)?;
    let mut hospital = store
        .hospital(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|h| principal.scope.covers_hospital(h.id))
        .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
    if hospital.version != expected {
        return Err(ApiError::PreconditionFailed("the hospital changed since you read it".into()));
    }
    let input = HospitalInput {
        name: change.name.unwrap_or(hospital.name.clone()),
        code: hospital.code.clone(),
        timezone: hospital.timezone.clone(),
        currency: hospital.currency.clone(),
        address: change.address.unwrap_or(hospital.address.0.clone()),
        opening_hours: change.opening_hours.unwrap_or(hospital.opening_hours.0.clone()),
    };
    let errors = input.validate();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    hospital.name = input.name.trim().to_owned();
    hospital.address = Stored(input.address);
    hospital.opening_hours = Stored(input.opening_hours);
    hospital.updated_at = OffsetDateTime::now_utc();
    let updated = store.update_hospital(&hospital, expected).await.map_err(|e| match e {
        StoreError::Stale => ApiError::PreconditionFailed("the hospital changed since you read it".into()),
        other => ApiError::internal(other),
    })?;
    store.cache().invalidate(&[DIRECTORY_TAG.to_owned()]).await;
    let mut out = HeaderMap::new();
    if let Ok(etag) = axum::http::HeaderValue::from_str(&format!("\"{}\"", updated.version)) {
        out.insert(axum::http::header::ETAG, etag);
    }
    Ok((out, Json(updated)))
}

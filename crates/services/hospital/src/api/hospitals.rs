//! `/hospitals`: the tenants of the hospital side.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use medcov_http::{ApiError, Json, Page, Path};
use medcov_security::{Authorized, Principal};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{PlatformAdmins, if_match};
use crate::domain::hospital::{Address, Hospital, HospitalEdit, HospitalFields};
use crate::domain::schedule::WorkingHours;
use crate::service::{DIRECTORY_TAG, HospitalService};

pub fn router(service: Arc<HospitalService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_hospital, list_hospitals))
        .routes(routes!(get_hospital, change_hospital))
        .with_state(service)
}

/// A new hospital, as an administrator sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "St. Mary's General", "code": "SMG", "timezone": "Africa/Nairobi", "currency": "KES", "address": {"line1": "Langata Road", "city": "Nairobi", "country": "KE"}}))]
pub struct HospitalInput {
    /// Shown everywhere.
    #[schema(example = "St. Mary's General")]
    pub name: String,
    /// Short code, 2 to 12 of A-Z, 0-9 and `-`; it prefixes the hospital's medical record numbers.
    #[schema(example = "SMG")]
    pub code: String,
    /// IANA time zone, e.g. `Africa/Nairobi`.
    #[schema(example = "Africa/Nairobi")]
    pub timezone: String,
    /// ISO 4217 currency of its prices.
    #[schema(example = "KES")]
    pub currency: String,
    #[serde(default)]
    pub address: Address,
    /// When the hospital takes appointments, per weekday, in its time zone; none: always open.
    #[serde(default)]
    pub opening_hours: Vec<WorkingHours>,
}

impl From<HospitalInput> for HospitalFields {
    fn from(input: HospitalInput) -> Self {
        HospitalFields {
            name: input.name,
            code: input.code,
            timezone: input.timezone,
            currency: input.currency,
            address: input.address,
            opening_hours: input.opening_hours,
        }
    }
}

/// A hospital as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Hospital)]
pub struct HospitalView {
    pub id: Uuid,
    #[schema(example = "SMG")]
    pub code: String,
    #[schema(example = "St. Mary's General")]
    pub name: String,
    #[schema(example = "Africa/Nairobi")]
    pub timezone: String,
    #[schema(example = "KES")]
    pub currency: String,
    pub address: Address,
    /// When it takes appointments, per weekday, in its time zone; empty: always open.
    pub opening_hours: Vec<WorkingHours>,
    pub active: bool,
    /// Send it back as `If-Match: "<version>"` when changing the hospital.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Hospital> for HospitalView {
    fn from(h: Hospital) -> Self {
        HospitalView {
            id: h.id,
            code: h.code,
            name: h.name,
            timezone: h.timezone,
            currency: h.currency,
            address: h.address,
            opening_hours: h.opening_hours,
            active: h.active,
            version: h.version,
            created_at: h.created_at,
            updated_at: h.updated_at,
        }
    }
}

/// Register a hospital (platform administrators).
#[utoipa::path(post, path = "/hospitals", tag = "hospitals", request_body = HospitalInput,
    responses(
        (status = 201, body = HospitalView, headers(("ETag" = String, description = "The version, for `If-Match`."))),
        (status = 403, body = medcov_http::Problem),
        (status = 409, description = "The code is taken.", body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem),
    ))]
async fn create_hospital(
    State(service): State<Arc<HospitalService>>,
    _admin: Authorized<PlatformAdmins>,
    Json(input): Json<HospitalInput>,
) -> Result<(StatusCode, HeaderMap, Json<HospitalView>), ApiError> {
    let hospital = service.create_hospital(input.into()).await?;
    Ok((StatusCode::CREATED, medcov_http::etag(hospital.version), Json(hospital.into())))
}

/// Every hospital: the directory is open to anyone signed in. Cacheable at the gateway for a
/// minute; adding or changing a hospital invalidates the cached answer at once.
#[utoipa::path(get, path = "/hospitals", tag = "hospitals", responses((status = 200, body = Page<HospitalView>)))]
async fn list_hospitals(
    State(service): State<Arc<HospitalService>>,
    _caller: Principal,
) -> Result<(HeaderMap, Json<Page<HospitalView>>), ApiError> {
    let hospitals = Page::whole(service.hospitals().await?).map(HospitalView::from);
    Ok((medcov_http::caching::cacheable(60, &[DIRECTORY_TAG.to_owned()]), Json(hospitals)))
}

/// One hospital. Cacheable at the gateway for five minutes; adding or changing (`PATCH`) a
/// hospital invalidates the cached answer at once (the directory tag covers them all). Its
/// code, time zone and currency never change.
#[utoipa::path(get, path = "/hospitals/{id}", tag = "hospitals",
    responses((status = 200, body = HospitalView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 404, body = medcov_http::Problem)))]
async fn get_hospital(
    State(service): State<Arc<HospitalService>>,
    _caller: Principal,
    Path(id): Path<Uuid>,
) -> Result<(HeaderMap, Json<HospitalView>), ApiError> {
    let hospital = service.hospital(id).await?;
    let mut headers = medcov_http::caching::cacheable(300, &[DIRECTORY_TAG.to_owned()]);
    headers.extend(medcov_http::etag(hospital.version));
    Ok((headers, Json(hospital.into())))
}

/// Who changes a hospital's record: its administrators (or the platform's).
pub struct HospitalAdmins;
impl medcov_security::Policy for HospitalAdmins {
    const ROLES: &'static [medcov_security::Role] = &[medcov_security::Role::Admin];
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"opening_hours": [{"weekday": "monday", "start": "07:30", "end": "19:00"}, {"weekday": "saturday", "start": "09:00", "end": "13:00"}]}))]
pub struct HospitalChange {
    pub name: Option<String>,
    pub address: Option<Address>,
    /// The whole week; `[]` makes the hospital open around the clock.
    pub opening_hours: Option<Vec<WorkingHours>>,
}

impl From<HospitalChange> for HospitalEdit {
    fn from(change: HospitalChange) -> Self {
        HospitalEdit { name: change.name, address: change.address, opening_hours: change.opening_hours }
    }
}

/// Change a hospital's name, address or opening hours (its code, time zone and currency stay).
/// Send `If-Match` with the ETag you read; a stale one is 412. New opening hours bind bookings
/// made from now on; appointments already booked are kept.
#[utoipa::path(patch, path = "/hospitals/{id}", tag = "hospitals", request_body = HospitalChange,
    responses((status = 200, body = HospitalView, headers(("ETag" = String, description = "The version, for `If-Match`."))), (status = 404, body = medcov_http::Problem), (status = 412, body = medcov_http::Problem),
        (status = 422, body = medcov_http::Problem), (status = 428, body = medcov_http::Problem)))]
async fn change_hospital(
    State(service): State<Arc<HospitalService>>,
    Authorized(principal, _): Authorized<HospitalAdmins>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<HospitalChange>,
) -> Result<(HeaderMap, Json<HospitalView>), ApiError> {
    let expected = if_match(&headers)?;
    let updated = service.change_hospital(&principal, id, expected, change.into()).await?;
    Ok((medcov_http::etag(updated.version), Json(updated.into())))
}

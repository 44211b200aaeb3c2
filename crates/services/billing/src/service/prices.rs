//! Price lists: adding a price (periods of a code never overlap) and reading a hospital's list.

use medcov_domain::Rejection;
use medcov_http::ApiError;
use medcov_security::Scope;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::BillingService;
use crate::domain::invoice::Line;
use crate::domain::prices::{self, NewPrice, Price, Service};
use crate::service::tenants::Kind;
use crate::store;

fn no_such_hospital() -> ApiError {
    ApiError::NotFound("no such hospital".into())
}

impl BillingService {
    /// Adds a price to a hospital's list; refused when its period overlaps another price of the
    /// same code (409), or when a field is invalid (422, each named).
    /// A price must be in the hospital's currency (422 naming `currency` otherwise):
    /// `authorization` (the caller's) asks the hospital service for it.
    pub async fn add_price(
        &self,
        scope: &Scope,
        input: NewPrice,
        by: Uuid,
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<Price, ApiError> {
        if !scope.covers_hospital(input.hospital_id) {
            return Err(no_such_hospital());
        }
        let profile = self.tenants.profile(input.hospital_id, Kind::Hospital, authorization).await?;
        let price =
            input.check(Uuid::now_v7(), profile.as_ref().map(|p| p.currency.as_str())).map_err(Rejection::Invalid)?;
        let mut tx = self.db.begin_write().await?;
        let periods = store::price_periods(&mut tx, price.hospital_id, &price.service_code).await?;
        price.fits(&periods)?;
        store::insert_price(&mut tx, &price, by, OffsetDateTime::now_utc()).await?;
        tx.commit().await?;
        Ok(price)
    }

    /// A hospital's prices, valid on `on` if given, by code.
    pub async fn prices(&self, scope: &Scope, hospital: Uuid, on: Option<Date>) -> Result<Vec<Price>, ApiError> {
        if !scope.covers_hospital(hospital) {
            return Err(no_such_hospital());
        }
        Ok(store::prices(&self.db, hospital, on).await?)
    }

    /// Lines for `services` priced from the hospital's list on `day`, and their currency.
    pub(super) async fn price_lines(
        &self,
        hospital: Uuid,
        day: Date,
        services: &[Service],
        currency: Option<&str>,
    ) -> Result<(Vec<Line>, Option<String>), ApiError> {
        let list = store::prices(&self.db, hospital, Some(day)).await?;
        Ok(prices::price_lines(&list, services, currency))
    }
}

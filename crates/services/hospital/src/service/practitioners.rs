//! Practitioners: who is booked, when they work, how many a day.

use medcov_http::ApiError;
use medcov_security::Principal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{HospitalService, hospitals_to_list};
use crate::domain::practitioner::{NewPractitioner, Practitioner, PractitionerEdit};
use crate::store;

impl HospitalService {
    /// Adds a practitioner to one of the principal's hospitals.
    pub async fn create_practitioner(
        &self,
        principal: &Principal,
        input: NewPractitioner,
    ) -> Result<Practitioner, ApiError> {
        if !principal.scope.covers_hospital(input.hospital_id)
            || store::hospital(&self.db, input.hospital_id).await?.is_none()
        {
            return Err(ApiError::NotFound("no such hospital".into()));
        }
        let practitioner = Practitioner::new(Uuid::now_v7(), input, OffsetDateTime::now_utc())?;
        let mut tx = self.db.begin_write().await?;
        store::insert_practitioner(&mut tx, &practitioner).await?;
        tx.commit().await?;
        Ok(practitioner)
    }

    /// The practitioners of the principal's hospitals (or of `hospital_id` among them).
    pub async fn practitioners(
        &self,
        principal: &Principal,
        hospital_id: Option<Uuid>,
    ) -> Result<Vec<Practitioner>, ApiError> {
        let hospitals = hospitals_to_list(&self.db, principal, hospital_id).await?;
        Ok(store::practitioners(&self.db, &hospitals).await?)
    }

    /// A practitioner of the principal's hospitals, or "not found".
    pub async fn practitioner(&self, principal: &Principal, id: Uuid) -> Result<Practitioner, ApiError> {
        store::practitioner(&self.db, id)
            .await?
            .filter(|p| principal.scope.covers_hospital(p.hospital_id))
            .ok_or_else(|| ApiError::NotFound("no such practitioner".into()))
    }

    /// Changes a practitioner read at version `expected`.
    pub async fn change_practitioner(
        &self,
        principal: &Principal,
        id: Uuid,
        expected: i64,
        edit: PractitionerEdit,
    ) -> Result<Practitioner, ApiError> {
        let changed = self.practitioner(principal, id).await?.edited(expected, edit)?;
        let mut tx = self.db.begin_write().await?;
        if !store::update_practitioner(&mut tx, &changed, expected, OffsetDateTime::now_utc()).await? {
            return Err(ApiError::PreconditionFailed("the practitioner changed since you read it".into()));
        }
        tx.commit().await?;
        self.practitioner(principal, id).await
    }
}

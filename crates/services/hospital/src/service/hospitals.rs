//! Hospitals: the tenants, and the directory every signed-in user may read.

use medcov_http::ApiError;
use medcov_security::Principal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::HospitalService;
use crate::domain::hospital::{Hospital, HospitalEdit, HospitalFields};
use crate::store;

/// The cache tag of the hospital directory (and of each hospital in it): bumped when a
/// hospital is added or changed.
pub const DIRECTORY_TAG: &str = "hospital:directory";

impl HospitalService {
    /// Registers a hospital; its code must be new.
    pub async fn create_hospital(&self, fields: HospitalFields) -> Result<Hospital, ApiError> {
        let hospital = Hospital::new(Uuid::now_v7(), fields, OffsetDateTime::now_utc())?;
        let mut tx = self.db.begin_write().await?;
        store::insert_hospital(&mut tx, &hospital).await.map_err(|e| {
            if e.is_duplicate() {
                ApiError::Conflict(format!("a hospital with code {} exists", hospital.code))
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        self.cache().invalidate(&[DIRECTORY_TAG.to_owned()]).await;
        Ok(hospital)
    }

    /// Every hospital, by name.
    pub async fn hospitals(&self) -> Result<Vec<Hospital>, ApiError> {
        Ok(store::hospitals(&self.db).await?)
    }

    pub async fn hospital(&self, id: Uuid) -> Result<Hospital, ApiError> {
        store::hospital(&self.db, id).await?.ok_or_else(|| ApiError::NotFound("no such hospital".into()))
    }

    /// Changes a hospital of the principal's, read at version `expected`.
    pub async fn change_hospital(
        &self,
        principal: &Principal,
        id: Uuid,
        expected: i64,
        edit: HospitalEdit,
    ) -> Result<Hospital, ApiError> {
        let current = store::hospital(&self.db, id)
            .await?
            .filter(|h| principal.scope.covers_hospital(h.id))
            .ok_or_else(|| ApiError::NotFound("no such hospital".into()))?;
        let changed = current.edited(expected, edit, OffsetDateTime::now_utc())?;
        let mut tx = self.db.begin_write().await?;
        if !store::update_hospital(&mut tx, &changed, expected).await? {
            return Err(ApiError::PreconditionFailed("the hospital changed since you read it".into()));
        }
        tx.commit().await?;
        let updated = store::hospital(&self.db, id)
            .await?
            .ok_or_else(|| ApiError::PreconditionFailed("the hospital changed since you read it".into()))?;
        self.cache().invalidate(&[DIRECTORY_TAG.to_owned()]).await;
        Ok(updated)
    }
}

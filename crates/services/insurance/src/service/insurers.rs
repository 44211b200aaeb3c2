//! Insurers: the tenants.

use medcov_http::ApiError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::InsuranceService;
use crate::domain::insurer::Insurer;
use crate::store;

impl InsuranceService {
    /// Registers an insurer (its fields already checked); a code taken is a 409.
    pub async fn create_insurer(
        &self,
        code: &str,
        name: &str,
        (currency, timezone): (&str, &str),
    ) -> Result<Insurer, ApiError> {
        let insurer = Insurer {
            id: Uuid::now_v7(),
            code: code.to_owned(),
            name: name.to_owned(),
            currency: currency.to_owned(),
            timezone: timezone.to_owned(),
            active: true,
            created_at: OffsetDateTime::now_utc(),
        };
        let mut tx = self.db.begin_write().await?;
        match store::insert_insurer(&mut tx, &insurer).await {
            Err(e) if e.is_duplicate() => {
                return Err(ApiError::Conflict(format!("an insurer with code {} exists", insurer.code)));
            }
            other => other?,
        }
        tx.commit().await?;
        Ok(insurer)
    }

    pub async fn insurer(&self, id: Uuid) -> Result<Option<Insurer>, ApiError> {
        Ok(store::insurer(&self.db, id).await?)
    }

    pub async fn insurers(&self) -> Result<Vec<Insurer>, ApiError> {
        Ok(store::insurers(&self.db).await?)
    }
}

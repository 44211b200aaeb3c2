//! What billing needs to know of its tenants, and asks their own services for: a hospital's
//! (or an insurer's) currency and time zone. Neither ever changes once the tenant exists
//! (docs/insurance.md, the hospital API), so an answer is kept for the life of the process.
//!
//! A hospital's profile comes with each `encounter_completed`; otherwise, and for insurers,
//! it is asked of the hospital or insurance service through the mesh, as the caller (any
//! signed-in caller may read the directories).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use medcov_http::ApiError;
use medcov_mesh::Upstream;
use serde::Deserialize;
use uuid::Uuid;

/// A tenant's currency and IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    pub currency: String,
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

pub use crate::domain::reports::Books as Kind;

/// The tenants' profiles, as learned.
#[derive(Clone, Default)]
pub struct Tenants {
    known: Arc<std::sync::RwLock<std::collections::HashMap<Uuid, Profile>>>,
    hospital: Option<Upstream>,
    insurance: Option<Upstream>,
}

impl Tenants {
    /// Profiles asked of `hospital` and `insurance` when not known.
    pub fn new(hospital: Upstream, insurance: Upstream) -> Tenants {
        Tenants { known: Arc::default(), hospital: Some(hospital), insurance: Some(insurance) }
    }

    /// Records a profile learned from an event.
    pub fn learn(&self, tenant: Uuid, profile: Profile) {
        if let Ok(mut known) = self.known.write() {
            known.insert(tenant, profile);
        }
    }

    /// A profile already known.
    pub fn known(&self, tenant: Uuid) -> Option<Profile> {
        self.known.read().ok().and_then(|k| k.get(&tenant).cloned())
    }

    /// The profile of `tenant`, asked of its service as the caller (`authorization`) when not
    /// known. `None` when the service does not know it (404).
    pub async fn profile(
        &self,
        tenant: Uuid,
        kind: Kind,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<Profile>, ApiError> {
        if let Some(known) = self.known(tenant) {
            return Ok(Some(known));
        }
        let (upstream, path) = match kind {
            Kind::Hospital => (&self.hospital, format!("/hospitals/{tenant}")),
            Kind::Insurer => (&self.insurance, format!("/insurers/{tenant}")),
        };
        let Some(upstream) = upstream else { return Ok(None) };
        let mut request = Request::get(&path).body(Body::empty()).map_err(ApiError::internal)?;
        if let Some(authorization) = authorization {
            request.headers_mut().insert(header::AUTHORIZATION, authorization.clone());
        }
        let response = upstream.forward(request, &path, 1024).await?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Ok(None);
        }
        let body = axum::body::to_bytes(response.into_body(), 256 * 1024)
            .await
            .map_err(|_| ApiError::BadGateway("the tenant's directory answer could not be read".into()))?;
        if !status.is_success() {
            return Err(ApiError::BadGateway(format!("the tenant's directory answered {status}")));
        }
        let profile: Profile = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadGateway(format!("the tenant's directory answer is not as expected: {e}")))?;
        self.learn(tenant, profile.clone());
        Ok(Some(profile))
    }

    /// The time zone of each of `tenants` (UTC for one that cannot be found).
    pub async fn zones(
        &self,
        tenants: Vec<(Uuid, Kind)>,
        authorization: Option<&HeaderValue>,
    ) -> Result<std::collections::BTreeMap<Uuid, String>, ApiError> {
        let mut zones = std::collections::BTreeMap::new();
        for (tenant, kind) in tenants {
            if zones.contains_key(&tenant) {
                continue;
            }
            let zone = self.profile(tenant, kind, authorization).await?.map(|p| p.timezone).unwrap_or_else(utc);
            zones.insert(tenant, zone);
        }
        Ok(zones)
    }
}

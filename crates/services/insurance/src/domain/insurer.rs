//! Insurers: the tenants of the insurance service.

use time::OffsetDateTime;
use uuid::Uuid;

/// An insurer. Its code prefixes its member and policy numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Insurer {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// ISO 4217; its plans are priced in it.
    pub currency: String,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

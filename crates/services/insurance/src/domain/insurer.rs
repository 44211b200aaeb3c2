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
    /// IANA time zone: the insurer's own dates (today, for approvals, reservations, a
    /// policy's end) are its local dates.
    pub timezone: String,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

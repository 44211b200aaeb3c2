//! What the insurers answered about the member numbers on patients' records.

use time::Date;
use uuid::Uuid;

/// The answer about one member number, as the insurer gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    pub member_number: String,
    /// `covered`, `not_covered`, `unknown` (no such member) or `invalid` (check digits): the
    /// insurer's word, kept as it is.
    pub status: String,
    /// Why not, when not covered.
    pub reason: Option<String>,
    pub insurer_id: Option<Uuid>,
    pub policy_id: Option<Uuid>,
    /// The day the insurer answered for.
    pub checked_on: Date,
}

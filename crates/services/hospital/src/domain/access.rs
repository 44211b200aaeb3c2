//! The access log: every read and write of a patient's record, by whom, in which request.

use medcov_domain::TextEnum;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What was done to a record.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AccessAction {
    Create,
    Read,
    Update,
    Search,
    History,
    CoverageRead,
    EncounterOpen,
    EncounterRead,
    EncounterUpdate,
    EncounterClose,
}

impl TextEnum for AccessAction {}

/// One read or write of a patient record.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessEntry {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub hospital_id: Uuid,
    pub action: AccessAction,
    pub request_id: Option<String>,
}

impl AccessEntry {
    /// An entry made now by `user_id` in request `request_id`.
    pub fn now(
        user_id: Uuid,
        request_id: Option<String>,
        (patient_id, hospital_id): (Uuid, Uuid),
        action: AccessAction,
    ) -> AccessEntry {
        AccessEntry {
            id: Uuid::now_v7(),
            at: OffsetDateTime::now_utc(),
            user_id,
            patient_id,
            hospital_id,
            action,
            request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_the_words_the_log_has_always_held() {
        let words = [
            "create",
            "read",
            "update",
            "search",
            "history",
            "coverage_read",
            "encounter_open",
            "encounter_read",
            "encounter_update",
            "encounter_close",
        ];
        assert_eq!(AccessAction::words(), words);
        assert_eq!(AccessAction::parse("delete"), None);
    }
}

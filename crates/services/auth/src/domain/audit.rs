//! The audit log's entries: every sign-in, failure, lockout, refresh, reuse, logout and change
//! to an account.

use time::OffsetDateTime;
use uuid::Uuid;

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `login`, `login_failed`, `account_locked`, `refresh`, `refresh_reuse_detected`, `logout`,
    /// `user_created`, `user_updated`, `role_changed`, `user_deactivated`, `password_changed`,
    /// `service_account_created`, `client_token`, `key_rotated`.
    pub event: String,
    /// The account the event is about.
    pub user_id: Option<Uuid>,
    /// Who did it, when not the account itself.
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(
        event: &str,
        user_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        request_id: Option<String>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            id: Uuid::now_v7(),
            at: OffsetDateTime::now_utc(),
            event: event.to_owned(),
            user_id,
            actor_id,
            request_id,
            detail,
        }
    }
}

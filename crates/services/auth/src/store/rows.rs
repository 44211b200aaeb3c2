//! Rows as the tables hold them, and their conversion to the domain's records. A stored word
//! this version does not know is an error naming its table and column.

use std::collections::BTreeSet;

use medcov_security::{PrincipalKind, Role, Scope};
use medcov_store::StoreError;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::audit::AuditEntry;
use crate::domain::lockout::Failures;
use crate::domain::user::{KeyRecord, RefreshToken, User};

pub(super) const USER_COLUMNS: &str = "id, username, display_name, password_hash, kind, roles, scope, active, \
     failed_logins, locked_until, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    username: String,
    display_name: String,
    password_hash: String,
    kind: String,
    roles: Json<BTreeSet<Role>>,
    scope: Json<Scope>,
    active: bool,
    failed_logins: i64,
    locked_until: Option<OffsetDateTime>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

pub(super) fn kind_word(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::Service => "service",
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<User, StoreError> {
        let kind = match row.kind.as_str() {
            "user" => PrincipalKind::User,
            "service" => PrincipalKind::Service,
            other => return Err(StoreError::Corrupt { table: "users", column: "kind", value: other.to_owned() }),
        };
        let count = u32::try_from(row.failed_logins).map_err(|_| StoreError::Corrupt {
            table: "users",
            column: "failed_logins",
            value: row.failed_logins.to_string(),
        })?;
        Ok(User {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            password_hash: row.password_hash,
            kind,
            roles: row.roles.0,
            scope: row.scope.0,
            active: row.active,
            failures: Failures { count, locked_until: row.locked_until },
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RefreshRow {
    id: Uuid,
    family_id: Uuid,
    user_id: Uuid,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl From<RefreshRow> for RefreshToken {
    fn from(r: RefreshRow) -> Self {
        RefreshToken {
            id: r.id,
            family_id: r.family_id,
            user_id: r.user_id,
            expires_at: r.expires_at,
            used_at: r.used_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    kid: String,
    private_key: Vec<u8>,
    active: bool,
    created_at: OffsetDateTime,
    retired_at: Option<OffsetDateTime>,
}

impl From<KeyRow> for KeyRecord {
    fn from(r: KeyRow) -> Self {
        KeyRecord {
            kid: r.kid,
            private_key: r.private_key,
            active: r.active,
            created_at: r.created_at,
            retired_at: r.retired_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: Uuid,
    at: OffsetDateTime,
    event: String,
    user_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    request_id: Option<String>,
    detail: Json<serde_json::Value>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: r.at,
            event: r.event,
            user_id: r.user_id,
            actor_id: r.actor_id,
            request_id: r.request_id,
            detail: r.detail.0,
        }
    }
}

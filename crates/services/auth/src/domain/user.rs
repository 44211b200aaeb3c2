//! Accounts: people and service accounts, with their roles, scope and sign-in failures.

use std::collections::BTreeSet;

use medcov_security::{PrincipalKind, Role, Scope};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::lockout::Failures;

/// A user or service account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub kind: PrincipalKind,
    pub roles: BTreeSet<Role>,
    pub scope: Scope,
    pub active: bool,
    pub failures: Failures,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A refresh token as kept (its hash only). A family is one sign-in (a session).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A signing key as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub active: bool,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

/// A new account, as asked for.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub display_name: String,
    pub roles: BTreeSet<Role>,
    pub scope: Scope,
}

/// A change to an account: fields left out keep their value.
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    pub display_name: Option<String>,
    pub roles: Option<BTreeSet<Role>>,
    pub scope: Option<Scope>,
}

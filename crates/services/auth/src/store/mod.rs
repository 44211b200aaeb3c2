//! The auth service's tables: users and their tenants, signing keys, refresh tokens and the
//! append-only audit log.
//!
//! Each function is one statement or one small set of statements, on a pool (reads) or on the
//! caller's transaction ([`Tx`], writes): the service layer opens the transaction, decides,
//! and writes the change with its audit entry before committing. The SQL is in `sql/`, written
//! once and compiled per backend by `sqlite.rs` and `postgres.rs`; [`dispatch!`] picks the
//! backend in use.

mod postgres;
mod rows;
mod sqlite;

use medcov_security::Scope;
use medcov_store::{Database, Migrations, StoreError, Tx, dispatch};
use sqlx::migrate::Migrator;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::audit::AuditEntry;
use crate::domain::lockout::Failures;
use crate::domain::user::{KeyRecord, RefreshToken, User};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

/// The tenant keys of a scope, as kept in `user_tenants` (so a tenant administrator's list
/// is one indexed lookup).
fn tenant_keys(scope: &Scope) -> Vec<String> {
    match scope {
        Scope::Platform => vec!["platform".to_owned()],
        Scope::Hospitals { hospitals } => hospitals.iter().map(|h| format!("hospital:{h}")).collect(),
        Scope::Insurer { insurer } => vec![format!("insurer:{insurer}")],
        Scope::Own => vec!["own".to_owned()],
    }
}

pub async fn count_users(db: &Database) -> Result<i64, StoreError> {
    dispatch!(db, users::count())
}

/// Inserts an account with its tenants; a username already taken is a
/// [`StoreError::Duplicate`].
pub async fn insert_user(tx: &mut Tx, user: &User) -> Result<(), StoreError> {
    dispatch!(tx, users::insert(user))?;
    dispatch!(tx, users::set_tenants(user.id, &tenant_keys(&user.scope)))
}

pub async fn user_by_id(db: &Database, id: Uuid) -> Result<Option<User>, StoreError> {
    dispatch!(db, users::by_id(id))
}

/// The account whose username is `key` once normalised (see `credentials::username_key`).
pub async fn user_by_username_key(db: &Database, key: &str) -> Result<Option<User>, StoreError> {
    dispatch!(db, users::by_username_key(key))
}

/// Accounts in id order after `after`; only those within `scope` when it is not the platform.
pub async fn list_users(
    db: &Database,
    scope: &Scope,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let tenants = (*scope != Scope::Platform).then(|| tenant_keys(scope));
    dispatch!(db, users::list(tenants.as_deref(), after, limit))
}

/// Replaces display name, roles and scope when the stored version is `expected_version`;
/// `false` when it is not (a concurrent change, or no such user).
pub async fn update_user(
    tx: &mut Tx,
    user: &User,
    expected_version: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    if !dispatch!(tx, users::update(user, expected_version, now))? {
        return Ok(false);
    }
    dispatch!(tx, users::set_tenants(user.id, &tenant_keys(&user.scope)))?;
    Ok(true)
}

/// Deactivates an account; `false` when it was not active.
pub async fn deactivate(tx: &mut Tx, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
    dispatch!(tx, users::deactivate(id, now))
}

pub async fn set_failures(tx: &mut Tx, id: Uuid, failures: Failures) -> Result<(), StoreError> {
    dispatch!(tx, users::set_failures(id, failures))
}

/// Replaces the password hash (and clears failures).
pub async fn set_password(tx: &mut Tx, id: Uuid, hash: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    dispatch!(tx, users::set_password(id, hash, now))
}

pub async fn insert_refresh(tx: &mut Tx, token: &RefreshToken, hash: &str) -> Result<(), StoreError> {
    dispatch!(tx, sessions::insert(token, hash))
}

pub async fn refresh_by_hash(db: &Database, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
    dispatch!(db, sessions::by_hash(hash))
}

/// Marks a refresh token used, only if nobody did first; `false` when somebody did (a reuse).
pub async fn use_refresh(tx: &mut Tx, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
    dispatch!(tx, sessions::mark_used(id, now))
}

/// Revokes every open token of a session (refresh-token family); returns how many.
pub async fn revoke_family(tx: &mut Tx, family: Uuid, now: OffsetDateTime) -> Result<u64, StoreError> {
    dispatch!(tx, sessions::revoke_family(family, now))
}

/// Revokes every open session of a user; returns how many tokens.
pub async fn revoke_sessions(tx: &mut Tx, user: Uuid, now: OffsetDateTime) -> Result<u64, StoreError> {
    dispatch!(tx, sessions::revoke_user(user, now))
}

/// Every signing key, newest first.
pub async fn keys(db: &Database) -> Result<Vec<KeyRecord>, StoreError> {
    dispatch!(db, keys::all())
}

/// Stores a new signing key (its private half sealed, see `kek`) as the only active one; the
/// others are retired at `now`.
pub async fn add_key(tx: &mut Tx, kid: &str, sealed: &[u8], now: OffsetDateTime) -> Result<(), StoreError> {
    dispatch!(tx, keys::retire_all(now))?;
    dispatch!(tx, keys::insert(kid, sealed, now))
}

/// Replaces a key's stored private half (sealing one kept in clear by an older version).
pub async fn set_private_key(tx: &mut Tx, kid: &str, sealed: &[u8]) -> Result<(), StoreError> {
    dispatch!(tx, keys::set_private(kid, sealed))
}

/// Records a revocation (and forgets those whose tokens have all expired).
pub async fn revoke(tx: &mut Tx, revocation: &medcov_security::Revocation) -> Result<(), StoreError> {
    dispatch!(tx, revocations::prune(revocation.at))?;
    dispatch!(tx, revocations::insert(revocation))
}

/// Revocations recorded at or after `since` whose tokens may still be alive at `now`.
pub async fn revocations_since(
    db: &Database,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<medcov_security::Revocation>, StoreError> {
    dispatch!(db, revocations::since(since, now))
}

pub async fn append_audit(tx: &mut Tx, entry: &AuditEntry) -> Result<(), StoreError> {
    dispatch!(tx, audit::insert(entry))
}

/// Audit entries in id (time) order after `after`, filtered by user and event.
pub async fn audit_log(
    db: &Database,
    user: Option<Uuid>,
    event: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    dispatch!(db, audit::list(user, event, after, limit))
}

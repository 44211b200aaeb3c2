//! The auth service's tables: users, their tenants, signing keys, refresh tokens and the
//! append-only audit log.
//!
//! The SQL is portable (`$1` placeholders, no dialect functions), so each query is written
//! once and run on whichever backend the service uses ([`medcov_store::on_pool!`]); the
//! schemas differ per backend only in column types (`migrations/postgres`, `migrations/sqlite`).
//! Every change is written in one transaction with its audit entry.

use std::collections::BTreeSet;

use medcov_security::{PrincipalKind, Role, Scope};
use medcov_store::{Database, Migrations, WritePool, on_pool};
use sqlx::migrate::Migrator;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::lockout::Failures;

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations { postgres: &POSTGRES, sqlite: &SQLITE };

/// A user or service account as stored.
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

#[derive(sqlx::FromRow)]
struct UserRow {
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

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            password_hash: row.password_hash,
            kind: if row.kind == "service" { PrincipalKind::Service } else { PrincipalKind::User },
            roles: row.roles.0,
            scope: row.scope.0,
            active: row.active,
            failures: Failures { count: u32::try_from(row.failed_logins).unwrap_or(0), locked_until: row.locked_until },
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, kind, roles, scope, active, failed_logins, \
     locked_until, version, created_at, updated_at";

/// The tenant keys of a scope, as stored in `user_tenants`.
pub fn tenant_keys(scope: &Scope) -> Vec<String> {
    match scope {
        Scope::Platform => vec!["platform".to_owned()],
        Scope::Hospitals { hospitals } => hospitals.iter().map(|h| format!("hospital:{h}")).collect(),
        Scope::Insurer { insurer } => vec![format!("insurer:{insurer}")],
        Scope::Own => vec!["own".to_owned()],
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `login`, `login_failed`, `account_locked`, `refresh`, `refresh_reuse_detected`, `logout`,
    /// `user_created`, `user_updated`, `user_deactivated`, `password_changed`, `key_rotated`.
    pub event: String,
    /// The account the event is about.
    pub user_id: Option<Uuid>,
    /// Who did it, when not the account itself.
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(event: &str, user_id: Option<Uuid>, actor_id: Option<Uuid>, detail: serde_json::Value) -> AuditEntry {
        AuditEntry {
            id: Uuid::now_v7(),
            at: OffsetDateTime::now_utc(),
            event: event.to_owned(),
            user_id,
            actor_id,
            request_id: medcov_http::RequestContext::current().map(|cx| cx.request_id),
            detail,
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    at: OffsetDateTime,
    event: String,
    user_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    request_id: Option<String>,
    detail: Json<serde_json::Value>,
}

/// A refresh token as stored (its hash only).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub active: bool,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the username is taken")]
    UsernameTaken,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[derive(Clone)]
pub struct AuthStore {
    db: Database,
}

macro_rules! write_audit {
    ($tx:expr, $entry:expr) => {
        sqlx::query(
            "INSERT INTO audit_log (id, at, event, user_id, actor_id, request_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($entry.id)
        .bind($entry.at)
        .bind(&$entry.event)
        .bind($entry.user_id)
        .bind($entry.actor_id)
        .bind(&$entry.request_id)
        .bind(Json(&$entry.detail))
        .execute(&mut *$tx)
        .await
    };
}

/// Revokes every open session (refresh-token family) of a user, inside a transaction.
macro_rules! revoke_sessions {
    ($tx:expr, $user:expr, $now:expr) => {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind($now)
            .bind($user)
            .execute(&mut *$tx)
            .await
    };
}

impl AuthStore {
    pub fn new(db: Database) -> AuthStore {
        AuthStore { db }
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let n = on_pool!(&self.db, |pool| sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users")
            .fetch_one(pool)
            .await)?;
        Ok(n)
    }

    pub async fn insert_user(&self, user: &User, audit: &AuditEntry) -> Result<(), StoreError> {
        let kind = match user.kind {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        };
        // An async block, so `?` ends the block, not the function: the error is mapped below.
        let result: Result<(), sqlx::Error> = on_pool!(&self.db, |pool| async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO users (id, username, username_key, display_name, password_hash, kind, roles, scope, \
                 active, failed_logins, locked_until, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL, $10, $11, $11)",
            )
            .bind(user.id)
            .bind(&user.username)
            .bind(crate::domain::credentials::username_key(&user.username))
            .bind(&user.display_name)
            .bind(&user.password_hash)
            .bind(kind)
            .bind(Json(&user.roles))
            .bind(Json(&user.scope))
            .bind(user.active)
            .bind(user.version)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await?;
            for tenant in tenant_keys(&user.scope) {
                sqlx::query("INSERT INTO user_tenants (user_id, tenant) VALUES ($1, $2)")
                    .bind(user.id)
                    .bind(tenant)
                    .execute(&mut *tx)
                    .await?;
            }
            write_audit!(tx, audit)?;
            tx.commit().await
        }
        .await);
        match result {
            Err(e) if is_unique_violation(&e) => Err(StoreError::UsernameTaken),
            other => Ok(other?),
        }
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(User::from))
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
        let key = crate::domain::credentials::username_key(username);
        let row: Option<UserRow> =
            on_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(pool).await)?;
        Ok(row.map(User::from))
    }

    /// Users in id order after `after`; only those belonging to one of `tenants` when given.
    pub async fn list_users(
        &self,
        tenants: Option<&[String]>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = on_pool!(&self.db, |pool| {
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u WHERE 1 = 1"));
            if let Some(after) = after {
                query.push(" AND u.id > ").push_bind(after);
            }
            if let Some(tenants) = tenants {
                query.push(" AND EXISTS (SELECT 1 FROM user_tenants t WHERE t.user_id = u.id AND t.tenant IN (");
                let mut list = query.separated(", ");
                for tenant in tenants {
                    list.push_bind(tenant.clone());
                }
                query.push("))");
            }
            query.push(" ORDER BY u.id LIMIT ").push_bind(limit);
            query.build_query_as().fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Replaces display name, roles and scope when the stored version is `expected_version`;
    /// `None` when it is not (a concurrent change, or no such user).
    pub async fn update_user(
        &self,
        user: &User,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> Result<Option<User>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let changed: bool = on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE users SET display_name = $1, roles = $2, scope = $3, version = version + 1, updated_at = $4 \
                 WHERE id = $5 AND version = $6",
            )
            .bind(&user.display_name)
            .bind(Json(&user.roles))
            .bind(Json(&user.scope))
            .bind(now)
            .bind(user.id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                Ok::<bool, sqlx::Error>(false)
            } else {
                sqlx::query("DELETE FROM user_tenants WHERE user_id = $1").bind(user.id).execute(&mut *tx).await?;
                for tenant in tenant_keys(&user.scope) {
                    sqlx::query("INSERT INTO user_tenants (user_id, tenant) VALUES ($1, $2)")
                        .bind(user.id)
                        .bind(tenant)
                        .execute(&mut *tx)
                        .await?;
                }
                write_audit!(tx, audit)?;
                tx.commit().await?;
                Ok(true)
            }
        })?;
        if changed { self.user_by_id(user.id).await } else { Ok(None) }
    }

    /// Deactivates a user and revokes every session of theirs.
    pub async fn deactivate(&self, id: Uuid, audit: &AuditEntry) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let changed = on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE users SET active = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND active = $4",
            )
            .bind(false)
            .bind(now)
            .bind(id)
            .bind(true)
            .execute(&mut *tx)
            .await?;
            revoke_sessions!(tx, id, now)?;
            if updated.rows_affected() > 0 {
                write_audit!(tx, audit)?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(updated.rows_affected() > 0)
        })?;
        Ok(changed)
    }

    /// Stores the failure count and lock after a failed login, with its audit entries.
    pub async fn record_failure(&self, id: Uuid, failures: Failures, audit: &[AuditEntry]) -> Result<(), StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3")
                .bind(i64::from(failures.count))
                .bind(failures.locked_until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for entry in audit {
                write_audit!(tx, entry)?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// A successful login: clears failures and opens the session's first refresh token.
    pub async fn record_login(
        &self,
        id: Uuid,
        refresh: &RefreshRow,
        hash: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_refresh(&mut tx, refresh, hash).await?;
            write_audit!(tx, audit)?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Replaces the password hash and revokes every session.
    pub async fn set_password(&self, id: Uuid, hash: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE users SET password_hash = $1, version = version + 1, updated_at = $2, failed_logins = 0, \
                 locked_until = NULL WHERE id = $3",
            )
            .bind(hash)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            revoke_sessions!(tx, id, now)?;
            write_audit!(tx, audit)?;
            tx.commit().await
        })?;
        Ok(())
    }

    pub async fn refresh_by_hash(&self, hash: &str) -> Result<Option<RefreshRow>, StoreError> {
        let row = on_pool!(&self.db, |pool| {
            sqlx::query_as(
            "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1"
        )
        .bind(hash)
        .fetch_optional(pool)
        .await
        })?;
        Ok(row)
    }

    /// Rotates: marks `used` as used (only if nobody did first) and stores its successor.
    /// `false` when another request used it first, which is a reuse.
    pub async fn rotate_refresh(
        &self,
        used: Uuid,
        next: &RefreshRow,
        next_hash: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let rotated = on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let marked = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(used)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 0 {
                Ok::<bool, sqlx::Error>(false)
            } else {
                insert_refresh(&mut tx, next, next_hash).await?;
                write_audit!(tx, audit)?;
                tx.commit().await?;
                Ok(true)
            }
        })?;
        Ok(rotated)
    }

    /// Revokes every token of a session (family).
    pub async fn revoke_family(&self, family: Uuid, audit: &AuditEntry) -> Result<u64, StoreError> {
        let now = OffsetDateTime::now_utc();
        let revoked = on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let done =
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family)
                    .execute(&mut *tx)
                    .await?;
            write_audit!(tx, audit)?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(done.rows_affected())
        })?;
        Ok(revoked)
    }

    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = on_pool!(&self.db, |pool| {
            sqlx::query_as(
            "SELECT kid, private_key, active, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid DESC"
        )
        .fetch_all(pool)
        .await
        })?;
        Ok(rows)
    }

    /// Stores a new signing key as the only active one; the others are retired now.
    pub async fn add_key(&self, kid: &str, pkcs8: &[u8], audit: Option<&AuditEntry>) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE signing_keys SET active = $1, retired_at = $2 WHERE active = $3")
                .bind(false)
                .bind(now)
                .bind(true)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO signing_keys (kid, private_key, active, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)")
                .bind(kid)
                .bind(pkcs8)
                .bind(true)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if let Some(entry) = audit {
                write_audit!(tx, entry)?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            write_audit!(tx, entry)?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Audit entries in id (time) order after `after`, filtered by user and event.
    pub async fn audit_log(
        &self,
        user: Option<Uuid>,
        event: Option<&str>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = on_pool!(&self.db, |pool| {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT id, at, event, user_id, actor_id, request_id, detail FROM audit_log WHERE 1 = 1",
            );
            if let Some(user) = user {
                query.push(" AND user_id = ").push_bind(user);
            }
            if let Some(event) = event {
                query.push(" AND event = ").push_bind(event.to_owned());
            }
            if let Some(after) = after {
                query.push(" AND id > ").push_bind(after);
            }
            query.push(" ORDER BY id LIMIT ").push_bind(limit);
            query.build_query_as().fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: r.at,
                event: r.event,
                user_id: r.user_id,
                actor_id: r.actor_id,
                request_id: r.request_id,
                detail: r.detail.0,
            })
            .collect())
    }
}

async fn insert_refresh<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    row: &RefreshRow,
    hash: &str,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    Uuid: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    OffsetDateTime: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at, used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
    )
    .bind(row.id)
    .bind(row.family_id)
    .bind(row.user_id)
    .bind(hash.to_owned())
    .bind(OffsetDateTime::now_utc())
    .bind(row.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

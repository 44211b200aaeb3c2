//! The auth service's operations, shared by the HTTP API and the `medcov admin` commands: each
//! loads what it needs, decides with the rules in `domain/`, and writes the change with its
//! audit entry in one transaction (`store/`).
//!
//! Authorization is decided here, next to the data: a tenant administrator only ever sees,
//! creates or changes users inside their own scope, and a user outside it is reported as not
//! found rather than forbidden, so scopes cannot be probed.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use medcov_config::Config;
use medcov_http::{ApiError, FieldError};
use medcov_security::{
    AccessClaims, JwkSet, KeySource, Principal, PrincipalKind, Revocation, RevocationList, Revocations, Revoked, Role,
    Scope, SigningKey, Verifier,
};
use medcov_store::{Database, StoreError};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::audit::AuditEntry;
use crate::domain::credentials::{self, check_password, check_username};
use crate::domain::lockout::{Failures, LockoutPolicy};
use crate::domain::sessions::{self, RefreshState, Tokens};
use crate::domain::user::{AccountChange, NewAccount, RefreshToken, User};
use crate::kek::{self, Kek};
use crate::store;

/// The one answer to every failed login, whatever failed.
const BAD_CREDENTIALS: &str = "invalid username or password";

/// How long a retired key keeps verifying beyond the access-token lifetime (clock skew).
const KEY_OVERLAP: Duration = Duration::seconds(60);

#[derive(Debug, Clone)]
struct Settings {
    issuer: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    lockout: LockoutPolicy,
    min_password: usize,
}

/// A new audit entry, carrying the id of the request being served, if any.
fn audit(event: &str, user: Option<Uuid>, actor: Option<Uuid>, detail: serde_json::Value) -> AuditEntry {
    let request_id = medcov_http::RequestContext::current().map(|cx| cx.request_id);
    AuditEntry::new(event, user, actor, request_id, detail)
}

/// Keys for verifying tokens inside the auth service itself: straight from its store.
struct StoreKeys(Arc<AuthService>);

impl KeySource for StoreKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
        Box::pin(async move { self.0.jwks().await.map_err(|e| e.to_string()) })
    }
}

pub struct AuthService {
    db: Database,
    kek: Kek,
    /// The process's revocation list: a revocation made here applies at once in this process
    /// (the others learn it from `GET /revocations`).
    revocations: Arc<Revocations>,
    settings: Settings,
}

impl AuthService {
    pub fn new(db: Database, kek: Kek, revocations: Arc<Revocations>, config: &Config) -> AuthService {
        let auth = &config.auth;
        AuthService {
            db,
            kek,
            revocations,
            settings: Settings {
                issuer: auth.issuer.clone(),
                access_ttl: Duration::seconds(i64::try_from(auth.access_token_ttl_secs).unwrap_or(900)),
                refresh_ttl: Duration::seconds(i64::try_from(auth.refresh_token_ttl_secs).unwrap_or(86_400)),
                lockout: LockoutPolicy {
                    threshold: auth.lockout_threshold,
                    duration: Duration::minutes(i64::try_from(auth.lockout_minutes).unwrap_or(15)),
                },
                min_password: auth.password_min_length,
            },
        }
    }

    /// A verifier reading this service's own keys and the process's revocations.
    pub fn verifier(self: &Arc<Self>) -> Arc<Verifier> {
        Arc::new(
            Verifier::new(Arc::new(StoreKeys(self.clone())), &self.settings.issuer, &self.settings.issuer)
                .with_revocations(self.revocations.clone()),
        )
    }

    /// A revocation made now, kept until every token it can refuse has expired.
    fn revocation(&self, revoked: Revoked) -> Revocation {
        let at = OffsetDateTime::now_utc();
        Revocation { revoked, at, until: at + self.settings.access_ttl + KEY_OVERLAP }
    }

    /// Revocations recorded at or after `since` whose tokens may still be alive, for every
    /// process's verifiers.
    pub async fn revocations_since(&self, since: OffsetDateTime) -> Result<RevocationList, ApiError> {
        let now = OffsetDateTime::now_utc();
        let items = store::revocations_since(&self.db, since, now).await?;
        Ok(RevocationList { now, items })
    }

    /// Makes sure a signing key exists (the first start creates one) and that every stored key
    /// opens with the configured KEK; a key an older version kept in clear is sealed now.
    pub async fn ensure_signing_key(&self) -> anyhow::Result<()> {
        let keys = store::keys(&self.db).await?;
        for key in &keys {
            let private = self.kek.open(&key.kid, &key.private_key)?;
            if !kek::is_sealed(&key.private_key) {
                let mut tx = self.db.begin_write().await?;
                store::set_private_key(&mut tx, &key.kid, &self.kek.seal(&key.kid, &private)).await?;
                tx.commit().await?;
                tracing::info!(kid = %key.kid, "sealed a signing key kept in clear by an older version");
            }
        }
        if keys.iter().any(|k| k.active) {
            return Ok(());
        }
        let key = SigningKey::generate()?;
        let mut tx = self.db.begin_write().await?;
        store::add_key(&mut tx, key.kid(), &self.kek.seal(key.kid(), key.pkcs8()), OffsetDateTime::now_utc()).await?;
        tx.commit().await?;
        tracing::info!(kid = key.kid(), "created the first signing key");
        Ok(())
    }

    /// A stored key, opened with the KEK.
    fn open(&self, kid: String, stored: &[u8]) -> Result<SigningKey, ApiError> {
        let private = self.kek.open(&kid, stored).map_err(ApiError::internal)?;
        SigningKey::from_pkcs8(kid, &private).map_err(ApiError::internal)
    }

    /// A new signing key takes over; the old one verifies until its tokens have expired.
    pub async fn rotate_key(&self, actor: Option<Uuid>) -> Result<String, ApiError> {
        let key = SigningKey::generate().map_err(ApiError::internal)?;
        let mut tx = self.db.begin_write().await?;
        store::add_key(&mut tx, key.kid(), &self.kek.seal(key.kid(), key.pkcs8()), OffsetDateTime::now_utc()).await?;
        store::append_audit(&mut tx, &audit("key_rotated", None, actor, json!({ "kid": key.kid() }))).await?;
        tx.commit().await?;
        tracing::info!(kid = key.kid(), "signing key rotated");
        Ok(key.kid().to_owned())
    }

    /// The public keys that verify tokens still in circulation.
    pub async fn jwks(&self) -> Result<JwkSet, ApiError> {
        let now = OffsetDateTime::now_utc();
        let horizon = self.settings.access_ttl + KEY_OVERLAP;
        let mut keys = Vec::new();
        for row in store::keys(&self.db).await? {
            let current = row.active || row.retired_at.is_some_and(|at| at + horizon > now);
            if current {
                keys.push(self.open(row.kid, &row.private_key)?.jwk());
            }
        }
        Ok(JwkSet { keys })
    }

    async fn signing_key(&self) -> Result<SigningKey, ApiError> {
        let row = store::keys(&self.db)
            .await?
            .into_iter()
            .find(|k| k.active)
            .ok_or_else(|| ApiError::Unavailable("no signing key is configured".into()))?;
        self.open(row.kid, &row.private_key)
    }

    /// On a start with no users, creates the configured administrator with a random password
    /// and writes the credentials to a file only the owner can read.
    pub async fn bootstrap_admin(&self, config: &Config) -> anyhow::Result<()> {
        let username = config.auth.bootstrap_admin.trim();
        if username.is_empty() || store::count_users(&self.db).await? > 0 {
            return Ok(());
        }
        let password = sessions::new_refresh_token();
        let account = NewAccount {
            username: username.to_owned(),
            password: password.clone(),
            display_name: "Administrator".to_owned(),
            roles: BTreeSet::from([Role::Admin]),
            scope: Scope::Platform,
        };
        let created = self.create_user(None, account).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let path = config.data_dir.join("initial-admin.txt");
        medcov_config::private::write_file(&path, format!("username: {username}\npassword: {password}\n").as_bytes())?;
        tracing::warn!(
            user = %created.id,
            credentials = %path.display(),
            "created the first administrator; sign in with the credentials in this file, change the password, then delete it"
        );
        Ok(())
    }

    /// Creates an account. `actor` is `None` only for the command line and bootstrap.
    pub async fn create_user(&self, actor: Option<&Principal>, input: NewAccount) -> Result<User, ApiError> {
        if let Some(actor) = actor {
            actor.require_any(&[Role::Admin])?;
            if !input.scope.within(&actor.scope) {
                return Err(ApiError::Forbidden("the new user's scope must lie within your own".into()));
            }
        }
        let mut errors = Vec::new();
        if let Err(e) = check_username(&input.username) {
            errors.push(e);
        }
        if let Err(e) = check_password("password", &input.password, &input.username, self.settings.min_password) {
            errors.push(e);
        }
        if let Err(reason) = input.scope.check_roles(&input.roles) {
            errors.push(FieldError::new("roles", reason));
        }
        if input.roles.contains(&Role::Service) {
            errors.push(FieldError::new("roles", "service accounts are not created here"));
        }
        if input.display_name.chars().count() > 200 {
            errors.push(FieldError::new("display_name", "must be at most 200 characters"));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let hash = hash_password(input.password.clone()).await?;
        let now = OffsetDateTime::now_utc();
        let user = User {
            id: Uuid::now_v7(),
            username: input.username.trim().to_owned(),
            display_name: input.display_name.trim().to_owned(),
            password_hash: hash,
            kind: PrincipalKind::User,
            roles: input.roles,
            scope: input.scope,
            active: true,
            failures: Failures { count: 0, locked_until: None },
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let entry = audit(
            "user_created",
            Some(user.id),
            actor.map(|a| a.id),
            json!({ "roles": user.roles, "scope": user.scope }),
        );
        self.insert_account(&user, &entry, "this username is taken").await?;
        Ok(user)
    }

    /// Inserts an account with its audit entry; a taken username is a 409 saying `taken`.
    async fn insert_account(&self, user: &User, entry: &AuditEntry, taken: &str) -> Result<(), ApiError> {
        let mut tx = self.db.begin_write().await?;
        match store::insert_user(&mut tx, user).await {
            Err(e) if e.is_duplicate() => return Err(ApiError::Conflict(taken.into())),
            other => other?,
        }
        store::append_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends one audit entry on its own.
    async fn record(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        store::append_audit(&mut tx, &entry).await?;
        tx.commit().await
    }

    /// Stores an account's new failure count (and lock) with its audit entries.
    async fn record_failure(&self, id: Uuid, failures: Failures, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        store::set_failures(&mut tx, id, failures).await?;
        for entry in entries {
            store::append_audit(&mut tx, entry).await?;
        }
        tx.commit().await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        store::user_by_username_key(&self.db, &credentials::username_key(username)).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Tokens, ApiError> {
        let user = self.user_by_username(username).await?;
        let stored =
            user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| credentials::decoy_hash().to_owned());
        // Verify even for an unknown user, so both answers take as long.
        let matches = verify_password(password.to_owned(), stored).await?;
        let Some(user) = user else {
            self.record(audit("login_failed", None, None, json!({ "reason": "unknown_user" }))).await?;
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        };
        let now = OffsetDateTime::now_utc();
        if user.failures.is_locked(now) || !user.active {
            let reason = if user.active { "locked" } else { "inactive" };
            self.record(audit("login_failed", Some(user.id), None, json!({ "reason": reason }))).await?;
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
        if !matches {
            let failures = user.failures.after_failure(self.settings.lockout, now);
            let mut entries = vec![audit(
                "login_failed",
                Some(user.id),
                None,
                json!({ "reason": "wrong_password", "failures": failures.count }),
            )];
            if failures.is_locked(now) {
                entries.push(audit(
                    "account_locked",
                    Some(user.id),
                    None,
                    json!({ "until": failures.locked_until.map(|t| t.unix_timestamp()) }),
                ));
            }
            self.record_failure(user.id, failures, &entries).await?;
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
        let family = Uuid::now_v7();
        let (tokens, refresh, hash) = self.issue(&user, family).await?;
        let mut tx = self.db.begin_write().await?;
        store::set_failures(&mut tx, user.id, Failures { count: 0, locked_until: None }).await?;
        store::insert_refresh(&mut tx, &refresh, &hash).await?;
        store::append_audit(&mut tx, &audit("login", Some(user.id), None, json!({ "session": family }))).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Signs an access token and makes the next refresh token of `family`.
    async fn issue(&self, user: &User, family: Uuid) -> Result<(Tokens, RefreshToken, String), ApiError> {
        let key = self.signing_key().await?;
        let now = OffsetDateTime::now_utc();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.issuer.clone(),
            sub: user.id,
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: (now + self.settings.access_ttl).unix_timestamp(),
            jti: Uuid::now_v7(),
            sid: family,
            kind: user.kind,
            roles: user.roles.clone(),
            scope: user.scope.clone(),
        };
        let access_token = key.sign(&claims).map_err(ApiError::internal)?;
        let refresh_token = sessions::new_refresh_token();
        let hash = sessions::token_hash(&refresh_token);
        let row = RefreshToken {
            id: Uuid::now_v7(),
            family_id: family,
            user_id: user.id,
            expires_at: now + self.settings.refresh_ttl,
            used_at: None,
            revoked_at: None,
        };
        let tokens = Tokens {
            access_token,
            expires_in: self.settings.access_ttl.whole_seconds(),
            refresh_token: Some(refresh_token),
        };
        Ok((tokens, row, hash))
    }

    /// Creates a service account for another MedCov service or an integration: platform scope,
    /// the `service` role. Its secret is shown once, here.
    pub async fn create_service_account(&self, actor: &Principal, name: &str) -> Result<(User, String), ApiError> {
        if !actor.is_platform_admin() {
            return Err(ApiError::Forbidden("only a platform administrator may create service accounts".into()));
        }
        check_username(name).map_err(|e| ApiError::Validation(vec![FieldError::new("name", e.reason)]))?;
        let secret = sessions::new_refresh_token();
        let hash = hash_password(secret.clone()).await?;
        let now = OffsetDateTime::now_utc();
        let account = User {
            id: Uuid::now_v7(),
            username: name.trim().to_owned(),
            display_name: name.trim().to_owned(),
            password_hash: hash,
            kind: PrincipalKind::Service,
            roles: BTreeSet::from([Role::Service]),
            scope: Scope::Platform,
            active: true,
            failures: Failures { count: 0, locked_until: None },
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let entry = audit("service_account_created", Some(account.id), Some(actor.id), json!({}));
        self.insert_account(&account, &entry, "this name is taken").await?;
        Ok((account, secret))
    }

    /// The client-credentials grant: a service account's id and secret for an access token
    /// (no refresh token: the service asks again). Failures count towards the lockout.
    pub async fn client_token(&self, client_id: &str, secret: &str) -> Result<Tokens, ApiError> {
        let invalid = || ApiError::Unauthorized("invalid client credentials".into());
        let account = self.user_by_username(client_id).await?;
        let stored =
            account.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| credentials::decoy_hash().to_owned());
        let matches = verify_password(secret.to_owned(), stored).await?;
        let Some(account) = account.filter(|a| a.kind == PrincipalKind::Service) else {
            return Err(invalid());
        };
        let now = OffsetDateTime::now_utc();
        if !account.active || account.failures.is_locked(now) {
            return Err(invalid());
        }
        if !matches {
            let failures = account.failures.after_failure(self.settings.lockout, now);
            let entries = [audit("login_failed", Some(account.id), None, json!({ "reason": "wrong_secret" }))];
            self.record_failure(account.id, failures, &entries).await?;
            return Err(invalid());
        }
        let (mut tokens, _, _) = self.issue(&account, Uuid::now_v7()).await?;
        tokens.refresh_token = None;
        self.record(audit("client_token", Some(account.id), None, json!({}))).await?;
        Ok(tokens)
    }

    /// Rotates a refresh token. A token used twice revokes its whole session.
    pub async fn refresh(&self, token: &str) -> Result<Tokens, ApiError> {
        let invalid = || ApiError::Unauthorized("the refresh token is invalid or expired".into());
        let Some(row) = store::refresh_by_hash(&self.db, &sessions::token_hash(token)).await? else {
            return Err(invalid());
        };
        let now = OffsetDateTime::now_utc();
        match sessions::refresh_state(row.used_at.is_some(), row.revoked_at.is_some(), row.expires_at <= now) {
            RefreshState::Usable => {}
            RefreshState::Reused => return Err(self.reuse_detected(&row).await),
            RefreshState::Expired | RefreshState::Revoked => return Err(invalid()),
        }
        let user = store::user_by_id(&self.db, row.user_id).await?.ok_or_else(invalid)?;
        if !user.active {
            return Err(invalid());
        }
        let (tokens, next, hash) = self.issue(&user, row.family_id).await?;
        let mut tx = self.db.begin_write().await?;
        if !store::use_refresh(&mut tx, row.id, now).await? {
            // Another request used it between our read and our write.
            drop(tx);
            return Err(self.reuse_detected(&row).await);
        }
        store::insert_refresh(&mut tx, &next, &hash).await?;
        store::append_audit(&mut tx, &audit("refresh", Some(user.id), None, json!({ "session": row.family_id })))
            .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    async fn reuse_detected(&self, row: &RefreshToken) -> ApiError {
        let entry = audit("refresh_reuse_detected", Some(row.user_id), None, json!({ "session": row.family_id }));
        match self.end_session(row.family_id, &entry).await {
            Ok(revoked) => {
                tracing::warn!(user = %row.user_id, session = %row.family_id, revoked, "refresh token reused; session revoked");
                ApiError::Unauthorized("the refresh token was already used; the session has been revoked".into())
            }
            Err(e) => e.into(),
        }
    }

    /// Ends a session: its refresh tokens are revoked and its access tokens refused from now
    /// on, everywhere; with its audit entry.
    async fn end_session(&self, family: Uuid, entry: &AuditEntry) -> Result<u64, StoreError> {
        let revocation = self.revocation(Revoked::Session { session: family });
        let mut tx = self.db.begin_write().await?;
        let revoked = store::revoke_family(&mut tx, family, revocation.at).await?;
        store::revoke(&mut tx, &revocation).await?;
        store::append_audit(&mut tx, entry).await?;
        tx.commit().await?;
        self.revocations.apply(&[revocation]);
        Ok(revoked)
    }

    /// Ends the session the refresh token belongs to.
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        let Some(row) = store::refresh_by_hash(&self.db, &sessions::token_hash(token)).await? else {
            return Err(ApiError::Unauthorized("the refresh token is invalid".into()));
        };
        let entry = audit("logout", Some(row.user_id), None, json!({ "session": row.family_id }));
        self.end_session(row.family_id, &entry).await?;
        Ok(())
    }

    pub async fn change_password(&self, actor: &Principal, current: &str, new: &str) -> Result<(), ApiError> {
        let user =
            store::user_by_id(&self.db, actor.id).await?.ok_or_else(|| ApiError::NotFound("no such user".into()))?;
        if !verify_password(current.to_owned(), user.password_hash.clone()).await? {
            return Err(ApiError::field("current_password", "does not match the current password"));
        }
        check_password("new_password", new, &user.username, self.settings.min_password)
            .map_err(|e| ApiError::Validation(vec![e]))?;
        let hash = hash_password(new.to_owned()).await?;
        let revocation = self.revocation(Revoked::User { user: user.id, before: OffsetDateTime::now_utc() });
        let now = revocation.at;
        let mut tx = self.db.begin_write().await?;
        store::set_password(&mut tx, user.id, &hash, now).await?;
        store::revoke_sessions(&mut tx, user.id, now).await?;
        store::revoke(&mut tx, &revocation).await?;
        store::append_audit(&mut tx, &audit("password_changed", Some(user.id), Some(actor.id), json!({}))).await?;
        tx.commit().await?;
        self.revocations.apply(&[revocation]);
        Ok(())
    }

    /// A user the actor may see: themselves, or anyone in scope for an administrator or
    /// auditor. Anyone else is "not found".
    pub async fn visible_user(&self, actor: &Principal, id: Uuid) -> Result<User, ApiError> {
        let not_found = || ApiError::NotFound("no such user".into());
        let user = store::user_by_id(&self.db, id).await?.ok_or_else(not_found)?;
        let allowed =
            actor.id == id || (actor.has_any(&[Role::Admin, Role::Auditor]) && user.scope.within(&actor.scope));
        if allowed { Ok(user) } else { Err(not_found()) }
    }

    pub async fn list_users(&self, actor: &Principal, after: Option<Uuid>, limit: i64) -> Result<Vec<User>, ApiError> {
        actor.require_any(&[Role::Admin, Role::Auditor])?;
        Ok(store::list_users(&self.db, &actor.scope, after, limit).await?)
    }

    pub async fn update_user(
        &self,
        actor: &Principal,
        id: Uuid,
        expected_version: Option<i64>,
        change: AccountChange,
    ) -> Result<User, ApiError> {
        actor.require_any(&[Role::Admin])?;
        let mut user = self.visible_user(actor, id).await?;
        if !user.scope.within(&actor.scope) {
            return Err(ApiError::NotFound("no such user".into()));
        }
        let stale = || ApiError::PreconditionFailed("the user changed since you read it; read it again".into());
        let expected = expected_version.unwrap_or(user.version);
        if expected != user.version {
            return Err(stale());
        }
        let before = json!({ "roles": user.roles, "scope": user.scope });
        if let Some(name) = change.display_name {
            if name.chars().count() > 200 {
                return Err(ApiError::field("display_name", "must be at most 200 characters"));
            }
            user.display_name = name.trim().to_owned();
        }
        if let Some(roles) = change.roles {
            user.roles = roles;
        }
        if let Some(scope) = change.scope {
            if !scope.within(&actor.scope) {
                return Err(ApiError::Forbidden("the user's scope must lie within your own".into()));
            }
            user.scope = scope;
        }
        if let Err(reason) = user.scope.check_roles(&user.roles) {
            return Err(ApiError::field("roles", reason));
        }
        if actor.id == user.id && !user.roles.contains(&Role::Admin) {
            return Err(ApiError::field("roles", "you cannot remove your own admin role"));
        }
        let event =
            if before == json!({ "roles": user.roles, "scope": user.scope }) { "user_updated" } else { "role_changed" };
        let entry = audit(
            event,
            Some(user.id),
            Some(actor.id),
            json!({ "before": before, "after": { "roles": user.roles, "scope": user.scope } }),
        );
        // New roles or a new scope: the tokens that carry the old ones stop working now.
        let revocation = (event == "role_changed")
            .then(|| self.revocation(Revoked::User { user: user.id, before: OffsetDateTime::now_utc() }));
        let mut tx = self.db.begin_write().await?;
        if !store::update_user(&mut tx, &user, expected, OffsetDateTime::now_utc()).await? {
            return Err(stale());
        }
        if let Some(revocation) = &revocation {
            store::revoke(&mut tx, revocation).await?;
        }
        store::append_audit(&mut tx, &entry).await?;
        tx.commit().await?;
        self.revocations.apply(revocation.as_slice());
        store::user_by_id(&self.db, id).await?.ok_or_else(stale)
    }

    pub async fn deactivate(&self, actor: &Principal, id: Uuid) -> Result<User, ApiError> {
        actor.require_any(&[Role::Admin])?;
        let user = self.visible_user(actor, id).await?;
        if actor.id == id {
            return Err(ApiError::Conflict("you cannot deactivate yourself".into()));
        }
        let revocation = self.revocation(Revoked::User { user: user.id, before: OffsetDateTime::now_utc() });
        let now = revocation.at;
        let mut tx = self.db.begin_write().await?;
        let deactivated = store::deactivate(&mut tx, user.id, now).await?;
        store::revoke_sessions(&mut tx, user.id, now).await?;
        if deactivated {
            store::revoke(&mut tx, &revocation).await?;
            store::append_audit(&mut tx, &audit("user_deactivated", Some(id), Some(actor.id), json!({}))).await?;
        }
        tx.commit().await?;
        if deactivated {
            self.revocations.apply(&[revocation]);
        }
        self.visible_user(actor, id).await
    }

    pub async fn audit_log(
        &self,
        actor: &Principal,
        user: Option<Uuid>,
        event: Option<&str>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, ApiError> {
        actor.require_any(&[Role::Auditor, Role::Admin])?;
        if actor.scope != Scope::Platform {
            // Tenant auditors may read the entries of their own users only.
            let Some(user) = user else {
                return Err(ApiError::field(
                    "user_id",
                    "is required outside the platform scope: ask for one user's entries",
                ));
            };
            self.visible_user(actor, user).await?;
        }
        Ok(store::audit_log(&self.db, user, event, after, limit).await?)
    }
}

/// Password hashes computed at once, process-wide. Each argon2id computation takes about 19 MiB
/// and a core for tens of milliseconds: a flood of sign-ins queues here (within the request
/// timeout) instead of taking the process's memory and every core.
fn hashing() -> &'static tokio::sync::Semaphore {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    HASHING.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores * 2)
    })
}

/// Hashes a password off the async workers (argon2 is deliberately slow), a few at a time.
async fn hash_password(password: String) -> Result<String, ApiError> {
    let _turn = hashing().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Checks a password against a stored hash off the async workers, a few at a time.
async fn verify_password(attempt: String, stored: String) -> Result<bool, ApiError> {
    let _turn = hashing().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || credentials::verify_password(&attempt, &stored))
        .await
        .map_err(ApiError::internal)
}

//! Verifying access tokens.
//!
//! Only EdDSA tokens with a known key id pass; `none`, HS256 and every other algorithm are
//! refused before any key is looked at. Keys come from a [`KeySource`] (the auth service's
//! JWKS) and are cached; an unknown key id triggers a refetch, at most once per
//! `min_refetch` so a flood of forged key ids cannot hammer the auth service.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use medcov_http::ApiError;
use tokio::sync::{Mutex, RwLock};

use crate::keys::JwkSet;
use crate::principal::{AccessClaims, Principal};

/// Where the public keys come from.
pub trait KeySource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>>;
}

/// The auth service's JWKS, in process or over HTTP.
pub struct UpstreamKeys(pub medcov_mesh::Upstream);

/// Where the auth service publishes its keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

impl KeySource for UpstreamKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
        Box::pin(async move {
            let request =
                axum::extract::Request::get(JWKS_PATH).body(axum::body::Body::empty()).map_err(|e| e.to_string())?;
            let response = self.0.forward(request, JWKS_PATH, 0).await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("the auth service answered {}", response.status()));
            }
            let bytes = axum::body::to_bytes(response.into_body(), 1024 * 1024).await.map_err(|e| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| format!("the key set is unreadable: {e}"))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no access token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the access token is invalid: {0}")]
    Invalid(String),
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was revoked: {0}")]
    Revoked(&'static str),
    #[error("the keys to check the access token are unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable(_) => ApiError::Unavailable(error.to_string()),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// Key-set fetches allowed per window.
pub const FETCHES_PER_WINDOW: usize = 3;

/// Tokens whose signature this verifier has checked, remembered at most (then forgotten all
/// at once: a flood of distinct valid tokens costs what it cost before, never memory).
pub const REMEMBERED: usize = 16_384;

/// A token whose signature and claims were checked once ([`Verifier::verify`]).
#[derive(Debug, Clone)]
struct Checked {
    principal: Principal,
    /// The key that signed it: a token whose key has left the key set is checked again (and
    /// refused).
    kid: String,
    /// `exp` (Unix seconds): past it (with the leeway), the token is refused as before.
    expires: i64,
}

pub struct Verifier {
    source: Arc<dyn KeySource>,
    /// What has been revoked before its tokens expired; checked after the signature.
    revocations: Arc<crate::revocation::Revocations>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    fetches: Mutex<std::collections::VecDeque<Instant>>,
    validation: Validation,
    window: Duration,
    /// The signature check of an Ed25519 token costs more than the rest of a cached answer: a
    /// client sends the same token for its whole life, and every hop (gateway, then service)
    /// checked it again. The same bytes verify the same way, so a token checked once is
    /// remembered by its SHA-256; expiry, its key still being in the key set, and revocation
    /// are checked on every use as before.
    checked: std::sync::Mutex<HashMap<[u8; 32], Checked>>,
}

impl Verifier {
    pub fn new(source: Arc<dyn KeySource>, issuer: &str, audience: &str) -> Verifier {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Verifier {
            source,
            revocations: Arc::default(),
            keys: RwLock::new(HashMap::new()),
            fetches: Mutex::new(std::collections::VecDeque::new()),
            validation,
            window: Duration::from_secs(5),
            checked: std::sync::Mutex::default(),
        }
    }

    /// Checks tokens against this revocation list (the process's, kept in sync by the runtime).
    pub fn with_revocations(mut self, revocations: Arc<crate::revocation::Revocations>) -> Verifier {
        self.revocations = revocations;
        self
    }

    /// Sets the window in which at most [`FETCHES_PER_WINDOW`] fetches happen.
    pub fn with_refetch_window(mut self, window: Duration) -> Verifier {
        self.window = window;
        self
    }

    /// Verifies a bearer token.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = token_digest(token);
        let remembered = self.checked().get(&digest).cloned();
        let principal = match remembered {
            Some(checked) if self.keys.read().await.contains_key(&checked.kid) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if now > checked.expires.saturating_add(i64::try_from(self.validation.leeway).unwrap_or(0)) {
                    self.checked().remove(&digest);
                    return Err(AuthError::Expired);
                }
                checked.principal
            }
            _ => {
                let checked = self.check(token).await?;
                let principal = checked.principal.clone();
                let mut remembered = self.checked();
                if remembered.len() >= REMEMBERED {
                    remembered.clear();
                }
                remembered.insert(digest, checked);
                principal
            }
        };
        if let Some(reason) = self.revocations.refuses(&principal) {
            return Err(AuthError::Revoked(reason));
        }
        Ok(principal)
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Checked>> {
        self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks a token's header, signature and claims.
    async fn check(&self, token: &str) -> Result<Checked, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed token".into()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("the token names no key".into()))?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::Invalid("the token is not valid yet".into()),
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    AuthError::Invalid("the token was not issued for MedCov".into())
                }
                _ => AuthError::Invalid("malformed token".into()),
            }
        })?;
        let expires = data.claims.exp;
        Ok(Checked { principal: Principal::from(data.claims), kid, expires })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        self.refresh(false).await?;
        self.keys.read().await.get(kid).cloned().ok_or_else(|| AuthError::Invalid("unknown key id".into()))
    }

    /// Refetches the key set, unless the window's fetches are used up (`force` ignores that).
    pub async fn refresh(&self, force: bool) -> Result<(), AuthError> {
        let mut fetches = self.fetches.lock().await;
        while fetches.front().is_some_and(|at| at.elapsed() >= self.window) {
            fetches.pop_front();
        }
        if !force && fetches.len() >= FETCHES_PER_WINDOW {
            return Ok(());
        }
        let set = self.source.fetch().await.map_err(AuthError::KeysUnavailable)?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            if let Ok(key) = DecodingKey::from_ed_components(&jwk.x) {
                keys.insert(jwk.kid, key);
            }
        }
        *self.keys.write().await = keys;
        fetches.push_back(Instant::now());
        Ok(())
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let text = value.to_str().map_err(|_| AuthError::Invalid("unreadable Authorization header".into()))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(AuthError::Invalid("expected `Authorization: Bearer <token>`".into())),
    }
}

/// Extracts the verified caller. The router must carry the service's `Arc<Verifier>` as an
/// extension (see [`Verifier`]); a request without a valid token is refused with 401.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let verifier = parts
            .extensions
            .get::<Arc<Verifier>>()
            .cloned()
            .ok_or_else(|| ApiError::internal("no token verifier is installed on this router"))?;
        let token = bearer(parts)?;
        let principal = verifier.verify(token).await?;
        tracing::Span::current().record("principal", tracing::field::display(principal.id));
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// The audience of a request for the kit's response caches: the caller's token verified as the
/// extractor would (signature, expiry, key, revocation), the [`Principal`] left in the
/// request's extensions for the handler, and [`Principal::audience`] returned.
impl medcov_http::caching::Audiences for Verifier {
    fn audience<'a>(&'a self, parts: &'a mut Parts) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let token = bearer(parts).ok()?;
            let principal = self.verify(token).await.ok()?;
            tracing::Span::current().record("principal", tracing::field::display(principal.id));
            let audience = principal.audience();
            parts.extensions.insert(principal);
            Some(audience)
        })
    }
}

/// Which roles an endpoint admits, checked while extracting the caller, before the body is
/// read: a caller without the role gets 403 whatever they sent, and learns nothing about the
/// body the endpoint expects.
pub trait Policy: Send + Sync + 'static {
    const ROLES: &'static [crate::principal::Role];
    /// Only principals with the platform scope.
    const PLATFORM_ONLY: bool = false;
}

/// A verified caller that satisfies `P`.
pub struct Authorized<P: Policy>(pub Principal, pub std::marker::PhantomData<P>);

impl<P: Policy, S: Send + Sync> FromRequestParts<S> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require_any(P::ROLES)?;
        if P::PLATFORM_ONLY && principal.scope != crate::principal::Scope::Platform {
            return Err(ApiError::Forbidden("this needs a platform-wide principal".into()));
        }
        Ok(Authorized(principal, std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use uuid::Uuid;

    use super::*;
    use crate::keys::SigningKey;
    use crate::principal::{PrincipalKind, Role, Scope};

    struct Keys {
        set: std::sync::Mutex<JwkSet>,
        fetches: AtomicUsize,
    }

    impl KeySource for Keys {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let set = self.set.lock().unwrap().clone();
            Box::pin(async move { Ok(set) })
        }
    }

    fn now() -> i64 {
        time_now()
    }

    fn time_now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn claims(exp_in: i64, nbf_in: i64) -> AccessClaims {
        AccessClaims {
            iss: "medcov".into(),
            aud: "medcov".into(),
            sub: Uuid::now_v7(),
            iat: now(),
            nbf: now() + nbf_in,
            exp: now() + exp_in,
            jti: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            kind: PrincipalKind::User,
            roles: BTreeSet::from([Role::Clinician]),
            scope: Scope::Hospitals { hospitals: vec![Uuid::now_v7()] },
        }
    }

    fn setup(keys: &[&SigningKey]) -> (Arc<Keys>, Verifier) {
        let source = Arc::new(Keys {
            set: std::sync::Mutex::new(JwkSet { keys: keys.iter().map(|k| k.jwk()).collect() }),
            fetches: AtomicUsize::new(0),
        });
        let verifier = Verifier::new(source.clone(), "medcov", "medcov");
        (source, verifier)
    }

    fn segment(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[tokio::test]
    async fn a_valid_token_yields_its_principal() {
        let key = SigningKey::generate().unwrap();
        let (_, verifier) = setup(&[&key]);
        let claims = claims(900, 0);
        let principal = verifier.verify(&key.sign(&claims).unwrap()).await.unwrap();
        assert_eq!(principal.id, claims.sub);
        assert_eq!(principal.roles, claims.roles);
        assert_eq!(principal.scope, claims.scope);
    }

    #[tokio::test]
    async fn bad_tokens_are_refused() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let (_, verifier) = setup(&[&key]);
        let good = key.sign(&claims(900, 0)).unwrap();
        let parts: Vec<&str> = good.split('.').collect();

        // Tampered payload: roles changed after signing.
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["roles"] = serde_json::json!(["admin"]);
        let tampered = format!("{}.{}.{}", parts[0], segment(&payload), parts[2]);
        // alg none, no signature.
        let none = format!("{}.{}.", segment(&serde_json::json!({"alg": "none", "kid": key.kid()})), parts[1]);
        // HS256 "signed" with the public key as the secret.
        let hs_header = jsonwebtoken::Header { kid: Some(key.kid().to_owned()), ..Default::default() };
        let public = URL_SAFE_NO_PAD.decode(&key.jwk().x).unwrap();
        let hs256 = jsonwebtoken::encode(&hs_header, &claims(900, 0), &jsonwebtoken::EncodingKey::from_secret(&public))
            .unwrap();
        // Signed by a key that is not published, under the published key's id.
        let mut forged = other.sign(&claims(900, 0)).unwrap();
        forged = forged.replace(
            forged.split('.').next().unwrap(),
            &segment(&serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid()})),
        );

        let table = [
            (tampered, "bad signature"),
            (none, "malformed"),
            (hs256, "not accepted"),
            (forged, "bad signature"),
            (key.sign(&claims(-60, -120)).unwrap(), "expired"),
            (key.sign(&claims(900, 600)).unwrap(), "not valid yet"),
            (other.sign(&claims(900, 0)).unwrap(), "unknown key id"),
            ("not-a-token".to_owned(), "malformed"),
        ];
        for (token, expected) in table {
            let error = verifier.verify(&token).await.unwrap_err();
            assert!(error.to_string().contains(expected), "{expected}: {error}");
            assert_eq!(ApiError::from(error).status().as_u16(), 401);
        }
        let mut wrong_audience = claims(900, 0);
        wrong_audience.aud = "elsewhere".into();
        let error = verifier.verify(&key.sign(&wrong_audience).unwrap()).await.unwrap_err();
        assert!(error.to_string().contains("not issued for MedCov"), "{error}");
    }

    #[tokio::test]
    async fn an_unknown_key_id_refetches_but_not_too_often() {
        let old = SigningKey::generate().unwrap();
        let (source, verifier) = setup(&[&old]);
        verifier.verify(&old.sign(&claims(900, 0)).unwrap()).await.unwrap();
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

        // Rotation: a new key is published; tokens signed by it are accepted after one refetch.
        let new = SigningKey::generate().unwrap();
        source.set.lock().unwrap().keys.push(new.jwk());
        verifier.verify(&new.sign(&claims(900, 0)).unwrap()).await.unwrap();
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        verifier.verify(&old.sign(&claims(900, 0)).unwrap()).await.unwrap();
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2, "known keys need no fetch");

        // A flood of forged key ids within the window fetches only what the window allows.
        let verifier = verifier.with_refetch_window(Duration::from_secs(60));
        let stranger = SigningKey::generate().unwrap();
        for _ in 0..10 {
            assert!(verifier.verify(&stranger.sign(&claims(900, 0)).unwrap()).await.is_err());
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), FETCHES_PER_WINDOW);
    }

    #[tokio::test]
    async fn a_token_checked_once_is_remembered_but_still_expires_loses_its_key_and_is_revoked() {
        let key = SigningKey::generate().unwrap();
        let (source, verifier) = setup(&[&key]);
        let revocations = Arc::new(crate::revocation::Revocations::default());
        let verifier = verifier.with_revocations(revocations.clone());
        let mine = claims(900, 0);
        let token = key.sign(&mine).unwrap();
        let first = verifier.verify(&token).await.unwrap();

        // The second use is answered from memory: a principal planted there comes back (a
        // signature check would have given the token's own).
        let digest = token_digest(&token);
        let mut planted = first.clone();
        planted.roles = BTreeSet::from([Role::Auditor]);
        verifier.checked().get_mut(&digest).unwrap().principal = planted.clone();
        assert_eq!(verifier.verify(&token).await.unwrap(), planted);
        verifier.checked().get_mut(&digest).unwrap().principal = first.clone();

        // Other bytes are other tokens: a flipped signature is checked, and refused.
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verifier.verify(&tampered).await.is_err());

        // Revoked after it was remembered: refused.
        revocations.apply(&[crate::revocation::Revocation {
            revoked: crate::revocation::Revoked::Session { session: mine.sid },
            at: time::OffsetDateTime::now_utc(),
            until: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        }]);
        assert!(matches!(verifier.verify(&token).await, Err(AuthError::Revoked(_))));

        // Past its expiry (and the leeway): refused, and forgotten.
        let other = claims(900, 0);
        let token = key.sign(&other).unwrap();
        verifier.verify(&token).await.unwrap();
        verifier.checked().get_mut(&token_digest(&token)).unwrap().expires = now() - 6;
        assert_eq!(verifier.verify(&token).await.unwrap_err(), AuthError::Expired);
        assert!(!verifier.checked().contains_key(&token_digest(&token)));

        // Its key leaves the key set (rotated out): checked again, and refused.
        let token = key.sign(&claims(900, 0)).unwrap();
        verifier.verify(&token).await.unwrap();
        let new = SigningKey::generate().unwrap();
        source.set.lock().unwrap().keys = vec![new.jwk()];
        verifier.refresh(true).await.unwrap();
        let error = verifier.verify(&token).await.unwrap_err();
        assert!(error.to_string().contains("unknown key id"), "{error}");
    }
}

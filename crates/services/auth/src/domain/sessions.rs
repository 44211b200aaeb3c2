//! Refresh tokens: opaque, random, stored only as a hash.
//!
//! A refresh token belongs to a family (one sign-in). Each use rotates it: the presented token
//! is marked used and a new one of the same family is issued. Presenting a used token again
//! means it was copied: the whole family is revoked.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new refresh token: 32 random bytes, base64url.
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored and looked up: the SHA-256 of the token, hex. The token itself is never
/// stored, so a database leak yields no usable session.
pub fn token_hash(token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, token.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A refresh token's state, as the rotation rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    Usable,
    Expired,
    /// Used before, or revoked: its family must be revoked.
    Reused,
    Revoked,
}

pub fn refresh_state(used: bool, revoked: bool, expired: bool) -> RefreshState {
    match (revoked, used, expired) {
        (true, _, _) => RefreshState::Revoked,
        (false, true, _) => RefreshState::Reused,
        (false, false, true) => RefreshState::Expired,
        (false, false, false) => RefreshState::Usable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn rotation_states() {
        assert_eq!(refresh_state(false, false, false), RefreshState::Usable);
        assert_eq!(refresh_state(true, false, false), RefreshState::Reused);
        assert_eq!(refresh_state(true, false, true), RefreshState::Reused);
        assert_eq!(refresh_state(false, false, true), RefreshState::Expired);
        assert_eq!(refresh_state(false, true, false), RefreshState::Revoked);
    }
}

/// Tokens handed out by a sign-in, a refresh or the client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The next refresh token of the session; none for the client-credentials grant.
    pub refresh_token: Option<String>,
}

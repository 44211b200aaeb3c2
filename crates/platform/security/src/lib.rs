//! Who is calling, and what they may touch.
//!
//! Every principal has roles and a tenant scope (a hospital, an insurer, the whole platform, or
//! only their own records). The auth service signs short-lived access tokens with Ed25519 and
//! publishes its public keys as a JWKS; the gateway and every service verify tokens against
//! that JWKS, and only EdDSA is ever accepted (no `none`, no HS256 with a public key).
//!
//! - [`principal`]: roles, scopes, the token's claims and the verified [`Principal`].
//! - [`keys`]: signing keys and the JWKS.
//! - [`verify`]: token verification with a cached, refetch-on-unknown-kid JWKS, and the axum
//!   extractor that yields a [`Principal`].
//! - [`revocation`]: the sessions and users whose tokens are refused before they expire, kept
//!   in sync with the auth service in every process.

#![forbid(unsafe_code)]

pub mod keys;
pub mod principal;
pub mod revocation;
pub mod verify;

pub use keys::{Jwk, JwkSet, SigningKey};
pub use principal::{AccessClaims, Principal, PrincipalKind, Role, Scope};
pub use revocation::{Revocation, RevocationList, Revocations, Revoked};
pub use verify::{AuthError, Authorized, KeySource, Policy, Verifier};

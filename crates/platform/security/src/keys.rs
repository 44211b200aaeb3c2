//! Ed25519 signing keys and the JWKS that publishes their public halves.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::principal::AccessClaims;

/// A private signing key. Its `Debug` never shows key material.
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the system random source failed")]
    Random,
    #[error("stored key {0} is not a valid Ed25519 PKCS#8 key")]
    Invalid(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

impl SigningKey {
    /// A fresh key whose id is a UUIDv7.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        SigningKey::from_pkcs8(uuid::Uuid::now_v7().to_string(), document.as_ref())
    }

    /// A key as stored: its id and PKCS#8 document.
    pub fn from_pkcs8(kid: String, pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Invalid(kid.clone()))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(SigningKey { encoding: EncodingKey::from_ed_der(pkcs8), pkcs8: pkcs8.to_vec(), public, kid })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, for storing: never log it.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(&self.public),
            kid: self.kid.clone(),
            alg: "EdDSA".to_owned(),
            key_use: "sig".to_owned(),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// A public key in JWK form (RFC 8037, OKP/Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: String,
}

/// The published key set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

//! The key-encryption key (KEK): the signing keys' private halves are kept in auth's database
//! sealed with it (AES-256-GCM, the key id as associated data), so a copy of the database — a
//! backup, a stolen file — cannot mint tokens without the KEK, which lives elsewhere: in the
//! environment, in a file given by the operator, or (embedded default only) in
//! `<data_dir>/signing-keys.kek`, generated on first start with mode 0600.
//!
//! A sealed key is `MCK1 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag`. A key stored by an older
//! version in clear (plain PKCS#8, which starts with 0x30) is sealed on the next start.

use std::path::PathBuf;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medcov_config::{Config, DatabaseUrl, ServiceName};

const MAGIC: &[u8; 4] = b"MCK1";

/// The file the embedded default keeps its generated KEK in, under the data folder.
pub const GENERATED_FILE: &str = "signing-keys.kek";

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("{setting}: {reason}")]
    Setting { setting: &'static str, reason: String },
    #[error(
        "auth's database is PostgreSQL, so the key that encrypts the token-signing keys must come from outside it: set auth.key_encryption_key (MEDCOV__AUTH__KEY_ENCRYPTION_KEY, base64 of 32 random bytes, e.g. `openssl rand -base64 32`) or auth.key_encryption_key_file"
    )]
    Missing,
    #[error("cannot read or write the key-encryption key file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error(
        "the signing key {kid} cannot be decrypted with the configured key-encryption key: it was sealed with another one (check auth.key_encryption_key / auth.key_encryption_key_file)"
    )]
    WrongKey { kid: String },
}

/// The key-encryption key.
pub struct Kek(LessSafeKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// The KEK the configuration names: the value, else the file, else (SQLite only) the
    /// generated file under the data folder, made on first use.
    pub fn load(config: &Config) -> Result<Kek, KekError> {
        let auth = &config.auth;
        if !auth.key_encryption_key.is_empty() {
            return Kek::from_base64(auth.key_encryption_key.expose())
                .map_err(|reason| KekError::Setting { setting: "auth.key_encryption_key", reason });
        }
        if !auth.key_encryption_key_file.is_empty() {
            let path = PathBuf::from(&auth.key_encryption_key_file);
            let text =
                std::fs::read_to_string(&path).map_err(|source| KekError::File { path: path.clone(), source })?;
            return Kek::from_base64(text.trim())
                .map_err(|reason| KekError::Setting { setting: "auth.key_encryption_key_file", reason });
        }
        match config.database_url(ServiceName::Auth) {
            DatabaseUrl::Postgres(_) => Err(KekError::Missing),
            DatabaseUrl::Embedded | DatabaseUrl::SqliteFile(_) => {
                let path = config.data_dir.join(GENERATED_FILE);
                let file = |source| KekError::File { path: path.clone(), source };
                if path.exists() {
                    medcov_config::private::ensure_file(&path).map_err(file)?;
                    let text = std::fs::read_to_string(&path).map_err(file)?;
                    return Kek::from_base64(text.trim()).map_err(|reason| KekError::Setting {
                        setting: "auth.key_encryption_key_file",
                        reason: format!("{}: {reason}", path.display()),
                    });
                }
                let bytes: [u8; 32] = rand::random();
                medcov_config::private::write_file(&path, format!("{}\n", STANDARD.encode(bytes)).as_bytes())
                    .map_err(file)?;
                tracing::info!(file = %path.display(), "generated the key-encryption key of the signing keys");
                Ok(Kek::from_bytes(&bytes))
            }
        }
    }

    /// A KEK from base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Kek, String> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| "must be base64 (of 32 random bytes)".to_owned())?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("must be 32 bytes once decoded, not {}", b.len()))?;
        Ok(Kek::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Kek {
        // A 32-byte key is always valid for AES-256-GCM.
        Kek(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key")))
    }

    /// Seals a private key for storage, bound to its key id.
    pub fn seal(&self, kid: &str, private_key: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = private_key.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut sealed)
            .expect("AES-GCM seals any key-sized input");
        [MAGIC.as_slice(), &nonce, &sealed].concat()
    }

    /// The private key a stored value holds. A value stored in clear by an older version is
    /// returned as it is (the caller reseals it).
    pub fn open(&self, kid: &str, stored: &[u8]) -> Result<Vec<u8>, KekError> {
        if !is_sealed(stored) {
            return Ok(stored.to_vec());
        }
        let wrong = || KekError::WrongKey { kid: kid.to_owned() };
        let rest = &stored[MAGIC.len()..];
        if rest.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer).map_err(|_| wrong())?;
        Ok(plain.to_vec())
    }
}

/// Whether a stored private key is sealed (rather than plain PKCS#8 from an older version).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_its_kid() {
        let kek = Kek::from_bytes(&[7; 32]);
        let sealed = kek.seal("k1", b"private key bytes");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(7).any(|w| w == b"private"), "the key is not in the sealed bytes");
        assert_eq!(kek.open("k1", &sealed).unwrap(), b"private key bytes");
        assert!(matches!(kek.open("k2", &sealed), Err(KekError::WrongKey { .. })), "bound to its kid");
        let other = Kek::from_bytes(&[8; 32]);
        assert!(matches!(other.open("k1", &sealed), Err(KekError::WrongKey { .. })));
        // Plain PKCS#8 from an older version passes through, to be resealed.
        assert_eq!(kek.open("k1", &[0x30, 0x51]).unwrap(), vec![0x30, 0x51]);
    }

    #[test]
    fn a_kek_must_be_32_bytes_of_base64() {
        assert!(Kek::from_base64("not base64!").is_err());
        assert!(Kek::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err().contains("32 bytes"));
        assert!(Kek::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
    }
}

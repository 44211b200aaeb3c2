//! Usernames and passwords.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use medcov_domain::FieldError;

/// Usernames: 3 to 64 characters of letters, digits, `.`, `_`, `-` and `@`; compared without
/// regard to case.
pub fn check_username(username: &str) -> Result<(), FieldError> {
    let ok_chars = username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !(3..=64).contains(&username.len()) || !ok_chars {
        return Err(FieldError::new("username", "must be 3 to 64 characters of letters, digits, `.`, `_`, `-` or `@`"));
    }
    Ok(())
}

/// The form a username is looked up by.
pub fn username_key(username: &str) -> String {
    username.trim().to_ascii_lowercase()
}

/// The minimum password policy: long enough, not too long to hash, not the username.
pub fn check_password(field: &str, password: &str, username: &str, min_length: usize) -> Result<(), FieldError> {
    let length = password.chars().count();
    if length < min_length {
        return Err(FieldError::new(field, format!("must be at least {min_length} characters")));
    }
    if length > 256 {
        return Err(FieldError::new(field, "must be at most 256 characters"));
    }
    if password.trim().eq_ignore_ascii_case(username.trim()) {
        return Err(FieldError::new(field, "must not be the username"));
    }
    Ok(())
}

/// An argon2id hash in PHC string form. CPU-heavy: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|hash| hash.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches a stored hash. CPU-heavy: call from a blocking task.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash that matches nothing, verified against when the user does not exist, so a login for
/// an unknown user takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("medcov-decoy-password-never-valid").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["admin", "jane.doe@clinic.example", "a_b-c"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "has space", "ünï", &"x".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
        assert_eq!(username_key(" Jane.Doe "), "jane.doe");
    }

    #[test]
    fn password_policy() {
        let table = [
            ("short", "jane", false, "at least 12"),
            ("Jane.Doe.1234", "jane.doe.1234", false, "not be the username"),
            ("correct horse battery", "jane", true, ""),
        ];
        for (password, username, ok, reason) in table {
            let result = check_password("password", password, username, 12);
            assert_eq!(result.is_ok(), ok, "{password}");
            if let Err(e) = result {
                assert!(e.reason.contains(reason), "{}", e.reason);
                assert_eq!(e.field, "password");
            }
        }
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a hash"));
        assert!(!verify_password("anything", decoy_hash()));
    }
}

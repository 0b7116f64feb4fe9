//! An author's credentials: a password, kept only as an Argon2id hash, and
//! the random session id a signed-in browser carries, kept only as a
//! SHA-256 (it cannot be guessed, so a slow hash would add nothing).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::api_key::sha256_hex;

/// Long enough that a guessing attacker, slowed by the login limits, gets
/// nowhere; a passphrase of a few words passes.
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_CHARS: usize = 1024;

/// A password as typed, of an acceptable length. Never printed.
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password has at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
}

impl Password {
    /// The trailing newline of a line read from a terminal or a pipe is not
    /// part of the password; every other character is.
    pub fn parse(typed: &str) -> Result<Self, PasswordError> {
        let typed = typed.strip_suffix('\n').unwrap_or(typed);
        let typed = typed.strip_suffix('\r').unwrap_or(typed);
        let chars = typed.chars().count();
        if chars < MIN_PASSWORD_CHARS || typed.trim().is_empty() {
            return Err(PasswordError::TooShort);
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(typed.to_owned()))
    }

    /// The PHC string of an Argon2id hash with a fresh salt (OWASP's
    /// parameters: 19 MiB, 2 passes, 1 lane).
    pub fn hash(&self) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
        Ok(hasher().hash_password(self.0.as_bytes(), &salt)?.to_string())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Whether `typed` is the password `stored` (a PHC string) was made from.
/// A malformed stored hash matches nothing.
pub fn password_matches(stored: &str, typed: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    hasher().verify_password(typed.as_bytes(), &parsed).is_ok()
}

/// Checked against when the account does not exist, so that an unknown
/// address costs the same time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| Password("not anyone's password".to_owned()).hash().unwrap_or_default())
}

/// A session id or CSRF token: 256 random bits, URL-safe.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// A cookie or form value of the right shape.
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == 43 && URL_SAFE_NO_PAD.decode(value).is_ok()).then(|| Self(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps of a session id.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_hashed_with_argon2id_and_checks() {
        let password = Password::parse("correct horse battery\n").unwrap();
        let stored = password.hash().unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(password_matches(&stored, "correct horse battery"));
        assert!(!password_matches(&stored, "correct horse battery\n"));
        assert!(!password_matches(&stored, "wrong horse battery"));
        assert!(!password_matches("not a hash", "correct horse battery"));
        assert_ne!(stored, password.hash().unwrap(), "a fresh salt each time");
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn refuses_short_and_blank_passwords() {
        assert_eq!(Password::parse("short").unwrap_err(), PasswordError::TooShort);
        assert_eq!(Password::parse("          ").unwrap_err(), PasswordError::TooShort);
        assert_eq!(Password::parse(&"x".repeat(1025)).unwrap_err(), PasswordError::TooLong);
    }

    #[test]
    fn session_secrets_parse_and_hash() {
        let secret = SessionSecret::generate();
        assert_eq!(SessionSecret::parse(secret.expose()), Some(secret.clone()));
        assert_eq!(secret.hash().len(), 64);
        assert!(SessionSecret::parse("short").is_none());
        assert!(SessionSecret::parse(&"!".repeat(43)).is_none());
    }
}

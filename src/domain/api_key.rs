//! API keys: 256 random bits, shown to the author once and kept only as a
//! SHA-256 (a slow password hash adds nothing to a key that cannot be
//! guessed, and would cost every keyed signup milliseconds).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const PREFIX: &str = "tk_";
const KEY_BYTES: usize = 32;
/// Base64 without padding of `KEY_BYTES`.
const KEY_CHARS: usize = 43;

/// A key as presented in `Authorization: Bearer`, well formed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    pub fn generate() -> Self {
        let bytes: [u8; KEY_BYTES] = rand::random();
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A bearer value that has the shape of one of our keys.
    pub fn parse(bearer: &str) -> Option<Self> {
        let body = bearer.trim().strip_prefix(PREFIX)?;
        (body.len() == KEY_CHARS && URL_SAFE_NO_PAD.decode(body).is_ok()).then(|| Self(bearer.trim().to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps: the SHA-256 of the key, hex.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

/// The SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Never prints the key.
impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_hashes_stably() {
        let key = ApiKeySecret::generate();
        let again = ApiKeySecret::parse(key.expose()).unwrap();
        assert_eq!(key.hash(), again.hash());
        assert_eq!(key.hash().len(), 64);
        assert_ne!(key.hash(), ApiKeySecret::generate().hash());
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn refuses_what_is_not_a_key() {
        for bad in [
            "",
            "tk_",
            "tk_short",
            "xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "tk_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(ApiKeySecret::parse(bad).is_none(), "{bad}");
        }
    }
}

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// 128 random bits, the part of a token the database keeps.
const ID_BYTES: usize = 16;
/// 128 bits of MAC, the part only the key holder can make.
const MAC_BYTES: usize = 16;
/// 80 bits of MAC for a VERP tag: forging one takes 2^80 guesses.
const SHORT_MAC_BYTES: usize = 10;
/// base64url of 16 bytes without padding.
const ID_CHARS: usize = 22;

/// What a token lets its holder do. The MAC covers the kind, so a confirmation
/// token can never be replayed as an unsubscribe token or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Confirm,
    Unsubscribe,
    /// A served signup form: `MS-NONCE`, the Unix milliseconds it was
    /// served at and 64 random bits that make it single-use.
    FormIssued,
    /// A VERP tag in an envelope sender (`d123` for a delivery, `o45` for
    /// outbox mail), checked with `short_mac`.
    BounceTag,
}

impl TokenKind {
    const fn label(self) -> &'static [u8] {
        match self {
            Self::Confirm => b"tidings/confirm/v1",
            Self::Unsubscribe => b"tidings/unsubscribe/v1",
            Self::FormIssued => b"tidings/form-issued/v1",
            Self::BounceTag => b"tidings/bounce-tag/v1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this link is incomplete or has been altered")]
    Malformed,
    #[error("this link is not valid")]
    BadSignature,
}

/// Makes and checks tokens of the form `ID.MAC`: `ID` is 128 random bits that
/// the database stores to find the row, `MAC` is HMAC-SHA256 over kind and ID
/// under the server key. The database never holds a usable token, forged
/// tokens are refused before any query, and the check runs in constant time.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: <redacted> }")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A fresh random token id, from the thread-local CSPRNG.
    pub fn new_id() -> String {
        let bytes: [u8; ID_BYTES] = rand::random();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn sign(&self, kind: TokenKind, id: &str) -> String {
        let mac = self.mac(kind, id).finalize().into_bytes();
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(&mac[..MAC_BYTES]))
    }

    /// Returns the token's id when the MAC is right.
    pub fn verify(&self, kind: TokenKind, token: &str) -> Result<String, TokenError> {
        let (id, mac) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let well_formed = match kind {
            TokenKind::FormIssued => id.split_once('-').is_some_and(|(ms, nonce)| {
                (1..=20).contains(&ms.len())
                    && ms.bytes().all(|b| b.is_ascii_digit())
                    && nonce.len() == 16
                    && nonce.bytes().all(|b| b.is_ascii_hexdigit())
            }),
            TokenKind::Confirm | TokenKind::Unsubscribe => id.len() == ID_CHARS && URL_SAFE_NO_PAD.decode(id).is_ok(),
            // Tags carry a short MAC instead (`short_mac`).
            TokenKind::BounceTag => false,
        };
        if !well_formed {
            return Err(TokenError::Malformed);
        }
        let mac = URL_SAFE_NO_PAD.decode(mac).ok().filter(|m| m.len() == MAC_BYTES).ok_or(TokenError::Malformed)?;
        self.mac(kind, id).verify_truncated_left(&mac).map_err(|_| TokenError::BadSignature)?;
        Ok(id.to_owned())
    }

    /// An 80-bit MAC in lowercase hex, for places where base64 does not fit:
    /// the local part of an address, whose case a mail system may fold.
    pub fn short_mac(&self, kind: TokenKind, id: &str) -> String {
        let mac = self.mac(kind, id).finalize().into_bytes();
        mac[..SHORT_MAC_BYTES].iter().fold(String::with_capacity(2 * SHORT_MAC_BYTES), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// Whether `mac_hex` is `short_mac(kind, id)`, in constant time.
    pub fn verify_short(&self, kind: TokenKind, id: &str, mac_hex: &str) -> bool {
        let hex = mac_hex.as_bytes();
        if hex.len() != 2 * SHORT_MAC_BYTES {
            return false;
        }
        let digit = |c: u8| (c as char).to_digit(16);
        let bytes: Option<Vec<u8>> =
            hex.chunks(2).map(|pair| Some(u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).unwrap_or(0))).collect();
        bytes.is_some_and(|b| self.mac(kind, id).verify_truncated_left(&b).is_ok())
    }

    fn mac(&self, kind: TokenKind, id: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(kind.label());
        mac.update(b"\0");
        mac.update(id.as_bytes());
        mac
    }
}

/// The first characters of a token, enough to correlate log lines, never
/// enough to use it.
pub fn redact(token: &str) -> String {
    let head: String = token.chars().take(6).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn round_trips() {
        let id = Signer::new_id();
        let token = signer().sign(TokenKind::Confirm, &id);
        assert_eq!(signer().verify(TokenKind::Confirm, &token), Ok(id));
    }

    #[test]
    fn ids_are_random_and_128_bits() {
        let a = Signer::new_id();
        assert_ne!(a, Signer::new_id());
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
    }

    #[test]
    fn short_macs_check_and_refuse() {
        let mac = signer().short_mac(TokenKind::BounceTag, "d42");
        assert_eq!(mac.len(), 20);
        assert!(mac.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(signer().verify_short(TokenKind::BounceTag, "d42", &mac));
        assert!(!signer().verify_short(TokenKind::BounceTag, "d43", &mac));
        assert!(!signer().verify_short(TokenKind::Confirm, "d42", &mac));
        assert!(!signer().verify_short(TokenKind::BounceTag, "d42", &mac[..19]));
        assert!(!signer().verify_short(TokenKind::BounceTag, "d42", &format!("{}zz", &mac[..18])));
    }

    #[test]
    fn kind_key_and_tampering_matter() {
        let id = Signer::new_id();
        let token = signer().sign(TokenKind::Confirm, &id);
        assert_eq!(signer().verify(TokenKind::Unsubscribe, &token), Err(TokenError::BadSignature));
        let other = Signer::new(b"another key entirely, 32 bytes!!");
        assert_eq!(other.verify(TokenKind::Confirm, &token), Err(TokenError::BadSignature));
        let forged = format!("{}.{}", Signer::new_id(), &token[ID_CHARS + 1..]);
        assert_eq!(signer().verify(TokenKind::Confirm, &forged), Err(TokenError::BadSignature));
        for bad in ["", "abc", "a.b", &token[..token.len() - 1], &format!("{token}x")] {
            assert!(signer().verify(TokenKind::Confirm, bad).is_err(), "{bad:?}");
        }
    }
}

//! DKIM signatures (RFC 6376; Ed25519 by RFC 8463) on every outgoing
//! message, with one or more keys (RSA and Ed25519 together is dual
//! signing). Signing is the last step before the bytes leave: each reader's
//! copy differs in To, Message-ID and its unsubscribe link, so each gets its
//! own signature, and a copy re-encoded for a server without 8BITMIME is
//! signed as it is sent. mail-auth does the canonicalisation and signing.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::Done;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::failure::SendError;
use crate::config::{DkimSettings, Settings};
use crate::domain::{SmtpStage, is_dns_label};

/// The headers each signature covers. RFC 8058 requires `List-Unsubscribe`
/// and `List-Unsubscribe-Post` to be signed for one-click unsubscribe; a
/// header listed but absent is signed as absent, so nobody can add it later.
const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The smallest RSA key receivers accept (RFC 8301).
const MIN_RSA_BITS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "rsa" => Ok(Self::Rsa),
            "ed25519" => Ok(Self::Ed25519),
            other => Err(format!("unknown DKIM algorithm {other:?}: use rsa or ed25519")),
        }
    }

    /// The `k=` tag of the key record.
    const fn key_type(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// One signing key with where it is published.
pub struct DkimKey {
    pub selector: String,
    pub domain: String,
    pub algorithm: Algorithm,
    /// The `p=` of the key record: SubjectPublicKeyInfo for RSA, the raw
    /// 32 bytes for Ed25519.
    public: Vec<u8>,
    signer: Signer,
}

impl DkimKey {
    /// The DNS TXT record to publish for this key.
    pub fn dns_record(&self) -> String {
        dns_record(&self.selector, &self.domain, self.algorithm, &self.public)
    }
}

/// `SELECTOR._domainkey.DOMAIN TXT "v=DKIM1; k=…; p=…"`, the value split
/// into strings of at most 255 characters as DNS requires.
pub fn dns_record(selector: &str, domain: &str, algorithm: Algorithm, public: &[u8]) -> String {
    let value = format!("v=DKIM1; k={}; p={}", algorithm.key_type(), STANDARD.encode(public));
    let chunks: Vec<String> =
        value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
    format!("{selector}._domainkey.{domain}. IN TXT {}", chunks.join(" "))
}

/// Every configured key; signs messages with all of them.
pub struct Dkim {
    keys: Vec<DkimKey>,
}

impl Dkim {
    /// The configured keys, loaded and checked; `None` when there are none.
    /// A key that does not load, or a domain the From address is not in
    /// (DMARC would find the signature unaligned), is an error.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, String> {
        let configured = settings.dkim_keys();
        if configured.is_empty() {
            return Ok(None);
        }
        let from_domain = settings.mail_from.email.domain().to_ascii_lowercase();
        let keys = configured.iter().map(|k| load(k, &from_domain)).collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self { keys }))
    }

    pub fn keys(&self) -> &[DkimKey] {
        &self.keys
    }

    /// `message` with a `DKIM-Signature` header of each key in front.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut headers = String::new();
        for key in &self.keys {
            let signature = match &key.signer {
                Signer::Rsa(s) => s.sign(message),
                Signer::Ed25519(s) => s.sign(message),
            }
            .map_err(|e| format!("DKIM signing with selector {} failed: {e}", key.selector))?;
            headers.push_str(&signature.to_header());
        }
        let mut signed = Vec::with_capacity(headers.len() + message.len());
        signed.extend_from_slice(headers.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

/// `message` signed by every key of `dkim` (unchanged without keys), on
/// tokio's blocking pool: an RSA signature takes about a millisecond of CPU,
/// which on the senders' runtime (one thread by default) would hold up every
/// other send and the database work between them.
pub async fn sign_for_sending(dkim: Option<&Arc<Dkim>>, message: &[u8]) -> Result<Option<Vec<u8>>, SendError> {
    let Some(dkim) = dkim else { return Ok(None) };
    let (dkim, message) = (Arc::clone(dkim), message.to_vec());
    tokio::task::spawn_blocking(move || dkim.sign(&message))
        .await
        .map_err(|e| SendError::without_reply(SmtpStage::Local, format!("DKIM signing stopped: {e}")))?
        .map(Some)
        .map_err(|e| SendError::without_reply(SmtpStage::Local, e))
}

fn load(settings: &DkimSettings, from_domain: &str) -> Result<DkimKey, String> {
    let path = &settings.key_file;
    let fail = |why: String| format!("DKIM key {} (selector {}): {why}", path.display(), settings.selector);
    let domain = settings.domain.clone().unwrap_or_else(|| from_domain.to_owned()).trim().to_ascii_lowercase();
    if from_domain != domain && !from_domain.ends_with(&format!(".{domain}")) {
        return Err(fail(format!(
            "domain {domain} is not the From address's domain {from_domain} or a parent of it, so DMARC would not count the signature; set dkim_domain to {from_domain}"
        )));
    }
    if settings.selector.is_empty() || !settings.selector.split('.').all(is_dns_label) {
        return Err(fail("the selector must be one or more DNS labels (letters, digits, hyphens)".into()));
    }
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| fail("not a PEM private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`)".into()))?;
    let (algorithm, public, signer) = match der {
        PrivateKeyDer::Pkcs1(ref pkcs1) => {
            let pair = aws_lc_rs::rsa::KeyPair::from_der(pkcs1.secret_pkcs1_der())
                .map_err(|e| fail(format!("not an RSA key: {e}")))?;
            rsa(&pair, der.clone_key(), &domain, &settings.selector, &fail)?
        }
        PrivateKeyDer::Pkcs8(ref pkcs8) => match aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()) {
            Ok(pair) => rsa(&pair, der.clone_key(), &domain, &settings.selector, &fail)?,
            Err(_) => {
                let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                    .map_err(|_| fail("a PKCS#8 key that is neither RSA nor Ed25519".into()))?;
                (Algorithm::Ed25519, key.public_key(), Signer::Ed25519(ready(key, &domain, &settings.selector)))
            }
        },
        _ => return Err(fail("an EC key: DKIM takes RSA or Ed25519".into())),
    };
    Ok(DkimKey { selector: settings.selector.clone(), domain, algorithm, public, signer })
}

/// An RSA key, checked for length, with its signer.
fn rsa(
    pair: &aws_lc_rs::rsa::KeyPair,
    der: PrivateKeyDer<'static>,
    domain: &str,
    selector: &str,
    fail: &dyn Fn(String) -> String,
) -> Result<(Algorithm, Vec<u8>, Signer), String> {
    let bits = pair.public_modulus_len() * 8;
    if bits < MIN_RSA_BITS {
        return Err(fail(format!("{bits}-bit RSA is too short: receivers need at least {MIN_RSA_BITS} bits")));
    }
    let public: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
        pair.public_key().as_der().map_err(|_| fail("cannot encode its public key".into()))?;
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| fail(e.to_string()))?;
    Ok((Algorithm::Rsa, public.as_ref().to_vec(), Signer::Rsa(ready(key, domain, selector))))
}

fn ready<K: mail_auth::common::crypto::SigningKey>(key: K, domain: &str, selector: &str) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key).domain(domain).selector(selector).headers(SIGNED_HEADERS)
}

/// A new key as a PKCS#8 PEM file's text, with its record's `p=` bytes.
pub fn generate(algorithm: Algorithm) -> Result<(String, Vec<u8>), String> {
    let (der, public) = match algorithm {
        Algorithm::Rsa => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| "could not generate an RSA key".to_owned())?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                pair.as_der().map_err(|_| "could not encode the RSA key".to_owned())?;
            let public: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
                pair.public_key().as_der().map_err(|_| "could not encode the public key".to_owned())?;
            (der.as_ref().to_vec(), public.as_ref().to_vec())
        }
        Algorithm::Ed25519 => {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
            let public = Ed25519Key::from_pkcs8_der(&der).map_err(|e| e.to_string())?.public_key();
            (der, public)
        }
    };
    let body: Vec<String> =
        STANDARD.encode(&der).as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    Ok((format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", body.join("\n")), public))
}

/// Writes a new key to `path` (not over an existing file), readable by its
/// owner only.
pub fn write_new_key(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

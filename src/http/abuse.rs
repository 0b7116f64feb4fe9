//! What stands between the public signup form and abuse: per-IP rate limits
//! (with the client IP taken from `X-Forwarded-For` only behind a trusted
//! proxy), an origin check, the honeypot and fill-time checks, the domain
//! blocklist. Every drop answers exactly like a success.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use actix_governor::governor::NotUntil;
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError};
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, ORIGIN};
use actix_web::{HttpResponse, HttpResponseBuilder};

use crate::config::Settings;
use crate::domain::{EmailAddress, Signer, TokenKind};

/// The client's IP: the peer, or, when the peer is one of our trusted
/// proxies, the last address in `X-Forwarded-For` that is not one of them.
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<[IpAddr]>,
}

impl ClientIp {
    pub fn new(trusted: &[IpAddr]) -> Self {
        Self { trusted: trusted.into() }
    }

    pub fn of(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip();
        if !self.trusted.contains(&peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(forwarded.into_iter().rev().find(|ip| !self.trusted.contains(ip)).unwrap_or(peer))
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        Ok(self.of(req.peer_addr(), req.headers()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now()).as_secs().max(1);
        response.json(serde_json::json!({
            "error": format!("too many requests from your address; try again in {wait} seconds"),
        }))
    }
}

pub type Limit = GovernorConfig<ClientIp, NoOpMiddleware>;

/// The per-IP limits of the public routes, shared by every server worker.
#[derive(Clone)]
pub struct Limits {
    pub signup: Limit,
    pub signup_on: bool,
    pub confirm: Limit,
    pub confirm_on: bool,
    pub manage: Limit,
    pub manage_on: bool,
    pub login: Limit,
}

impl Limits {
    pub fn new(settings: &Settings, ip: &ClientIp) -> Result<Self, String> {
        Ok(Self {
            signup: per_minute(settings.signup_rate_per_minute, ip)?,
            signup_on: settings.signup_rate_per_minute > 0,
            confirm: per_minute(settings.confirm_rate_per_minute, ip)?,
            confirm_on: settings.confirm_rate_per_minute > 0,
            manage: per_minute(settings.manage_rate_per_minute, ip)?,
            manage_on: settings.manage_rate_per_minute > 0,
            login: per_minute(settings.login_rate_per_minute, ip)?,
        })
    }
}

/// `per_minute` requests per client IP, all available at once, then one more
/// every `60 / per_minute` seconds.
fn per_minute(per_minute: u32, ip: &ClientIp) -> Result<Limit, String> {
    let n = per_minute.clamp(1, 60_000);
    GovernorConfigBuilder::default()
        .period(std::time::Duration::from_millis(60_000 / u64::from(n)))
        .burst_size(n)
        .key_extractor(ip.clone())
        .finish()
        .ok_or_else(|| format!("cannot build a rate limit of {per_minute} per minute"))
}

/// Whether a browser request came from a page we serve or an allowed origin.
/// Requests without `Origin` (curl, servers) are not browser cross-site posts.
pub fn origin_allowed(headers: &HeaderMap, settings: &Settings) -> bool {
    match headers.get(ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => origin == settings.own_origin() || settings.allowed_origins.iter().any(|o| o == origin),
    }
}

/// True when the request comes from one of the configured other origins
/// (the blog's pages), which may call the API from a browser.
pub fn from_allowed_origin(headers: &HeaderMap, settings: &Settings) -> bool {
    headers
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|origin| settings.allowed_origins.iter().any(|o| o == origin))
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// How long a served form stays good: long enough to read a post first,
/// short enough that a harvested token soon goes stale.
pub const FORM_TOKEN_LIFETIME_MS: u64 = 2 * 3_600_000;

/// A signed, single-use token for a form served now, put in a hidden field.
pub fn form_token(signer: &Signer) -> String {
    let nonce: u64 = rand::random();
    signer.sign(TokenKind::FormIssued, &format!("{}-{nonce:016x}", now_ms()))
}

/// What the fill-time check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillCheck {
    /// The check is off (`form_min_fill_ms = 0`).
    Off,
    /// Filled at a person's pace; `nonce` makes the token single-use.
    Person { nonce: String },
    /// Missing, forged, too fast or too old.
    Failed(&'static str),
}

/// Whether a form post took at least as long as a person needs, with a
/// token served no longer ago than `FORM_TOKEN_LIFETIME_MS`.
pub fn fill_check(signer: &Signer, token: Option<&str>, min_ms: u64) -> FillCheck {
    if min_ms == 0 {
        return FillCheck::Off;
    }
    let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
        return FillCheck::Failed("form_token is missing");
    };
    let Ok(issued) = signer.verify(TokenKind::FormIssued, token) else {
        return FillCheck::Failed("form_token is not one we issued");
    };
    let Some((ms, nonce)) = issued.split_once('-') else { return FillCheck::Failed("form_token is not one we issued") };
    let Ok(ms) = ms.parse::<u64>() else { return FillCheck::Failed("form_token is not one we issued") };
    let elapsed = now_ms().saturating_sub(ms);
    if elapsed < min_ms {
        FillCheck::Failed("form_token was used sooner than a person fills the form")
    } else if elapsed > FORM_TOKEN_LIFETIME_MS {
        FillCheck::Failed("form_token has expired")
    } else {
        FillCheck::Person { nonce: nonce.to_owned() }
    }
}

pub fn blocked(email: &EmailAddress, settings: &Settings) -> bool {
    let domain = email.domain();
    settings.blocked_domains.iter().any(|d| {
        let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
        domain == d || domain.ends_with(&format!(".{d}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = ClientIp::new(&[proxy]);
        let from = |peer: &str, xff: &str| ip.of(Some(format!("{peer}:1234").parse().unwrap()), &headers(xff));
        assert_eq!(from("10.0.0.1", "203.0.113.9"), Some("203.0.113.9".parse().unwrap()));
        // A client's forged entry sits left of what our proxy appended.
        assert_eq!(from("10.0.0.1", "1.1.1.1, 203.0.113.9"), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(from("10.0.0.1", "203.0.113.9, 10.0.0.1"), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(from("198.51.100.7", "203.0.113.9"), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(from("10.0.0.1", "garbage"), Some(proxy));
    }

    #[test]
    fn blocklist_covers_subdomains_only() {
        let s = Settings::from_toml_str("blocked_domains = [\"mailinator.com\"]").unwrap();
        let e = |a: &str| EmailAddress::parse(a).unwrap();
        assert!(blocked(&e("x@mailinator.com"), &s));
        assert!(blocked(&e("x@eu.mailinator.com"), &s));
        assert!(!blocked(&e("x@notmailinator.com"), &s));
    }

    #[test]
    fn fill_time() {
        let signer = Signer::new(b"k");
        let issued =
            |ago_ms: u64| signer.sign(TokenKind::FormIssued, &format!("{}-00112233445566ff", now_ms() - ago_ms));
        let fresh = form_token(&signer);
        assert!(matches!(fill_check(&signer, Some(&fresh), 2_000), FillCheck::Failed(_)));
        assert_eq!(fill_check(&signer, Some(&fresh), 0), FillCheck::Off);
        assert_eq!(
            fill_check(&signer, Some(&issued(5_000)), 2_000),
            FillCheck::Person { nonce: "00112233445566ff".into() }
        );
        assert!(matches!(
            fill_check(&signer, Some(&issued(FORM_TOKEN_LIFETIME_MS + 1_000)), 2_000),
            FillCheck::Failed(_)
        ));
        assert!(matches!(fill_check(&signer, None, 2_000), FillCheck::Failed(_)));
        assert!(matches!(fill_check(&signer, Some("123.abc"), 2_000), FillCheck::Failed(_)));
        // The old digits-only form, or a nonce we did not make.
        let old_style = signer.sign(TokenKind::FormIssued, &(now_ms() - 5_000).to_string());
        assert!(matches!(fill_check(&signer, Some(&old_style), 2_000), FillCheck::Failed(_)));
        let two = (form_token(&signer), form_token(&signer));
        assert_ne!(two.0, two.1, "every form gets its own token");
    }
}

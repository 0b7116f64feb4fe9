//! One `Settings` type: code defaults, then the file named by `TIDINGS_CONFIG`,
//! then `TIDINGS_*` environment variables. Parsed and checked once at start-up,
//! so the rest of the program only sees valid values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::ListSlug;
use crate::redact;

/// Its `Debug` and `Serialize` (`tidings config`) show every secret as `***`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    /// A second address serving only `GET /metrics`, without the admin
    /// token (for a scraper on a private network); unset: off.
    pub metrics_listen: Option<SocketAddr>,
    pub base_url: Url,
    pub database_url: DatabaseUrl,
    pub database_pool_size: u32,
    pub mail_transport: MailTransportKind,
    pub mail_dir: PathBuf,
    #[serde(serialize_with = "redact::url")]
    pub smtp_url: Url,
    /// A PEM file of certificates to trust for the SMTP server's TLS, beside
    /// the public roots (a relay with a private or self-signed certificate).
    pub smtp_ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "mailbox", serialize_with = "redact::display")]
    pub mail_from: Mailbox,
    /// Domain for `List-Id` and `Message-ID`; defaults to the base URL's host.
    pub mail_domain: Option<String>,
    #[serde(serialize_with = "redact::secret")]
    pub admin_token: Option<String>,
    /// Key for the MAC in confirmation and unsubscribe links. When unset, a
    /// random key is created once and kept in the database.
    #[serde(serialize_with = "redact::secret")]
    pub secret_key: Option<String>,
    pub confirmations_per_day: u32,
    pub confirm_token_ttl_hours: u32,
    pub consent_version: String,
    pub smtp_timeout_secs: u64,
    pub smtp_concurrency: usize,
    /// Threads for the background senders and the signup committers (the
    /// HTTP server has its own, one per core). One thread carries them on a
    /// small machine with less CPU per message than several, which wake each
    /// other for every task they hand over.
    pub sender_threads: usize,
    /// Messages per second across all senders of a process; 0: no limit.
    pub send_rate_per_second: f64,
    /// How long a claimed delivery is reserved for its sender; after a crash,
    /// its unsent claims are sent by others once this has passed.
    pub delivery_lease_secs: u64,
    /// A digest pauses itself when this many of its sends in a row failed
    /// for a reason that is not the recipient's.
    pub digest_breaker_failures: u32,
    pub send_max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub outbox_poll_ms: u64,
    /// Feed fetching: time limit, size limit, and whether feeds may live on
    /// loopback or private addresses (off: a guard against SSRF).
    pub feed_timeout_secs: u64,
    /// Signups (`POST /subscriptions`) and confirmations per client IP per
    /// minute; 0 turns the limit off.
    pub signup_rate_per_minute: u32,
    pub confirm_rate_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (your reverse proxies).
    #[serde(deserialize_with = "list_of")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins (e.g. `https://blog.example.org`) that may post the signup
    /// form or call the JSON API from a browser.
    #[serde(deserialize_with = "list_of")]
    pub allowed_origins: Vec<String>,
    /// Signups for these domains (and their subdomains) get the usual answer
    /// and are dropped: disposable-mail services, say.
    #[serde(deserialize_with = "list_of")]
    pub blocked_domains: Vec<String>,
    /// Form posts sooner than this after the form was served are dropped
    /// silently (bots fill forms instantly); 0 turns the check off.
    pub form_min_fill_ms: u64,
    /// A request body must arrive in full within this many milliseconds of
    /// the request's headers, or the answer is 408 and the connection closes.
    pub body_timeout_ms: u64,
    /// Open connections one client IP may hold (trusted proxies are not
    /// counted: they carry everyone); a request on one more is answered 429.
    /// 0 turns the cap off.
    pub max_connections_per_ip: usize,
    /// A signup is answered no sooner than this many milliseconds after it
    /// arrived, whatever the address's state, so the answer's timing does not
    /// tell a confirmed reader from a new one. 0 turns the floor off.
    pub signup_answer_floor_ms: u64,
    /// Whether `POST /subscriptions` takes JSON (the API) besides the form.
    pub json_signups: bool,
    /// Signups per minute one API key may make (`Authorization: Bearer`).
    pub api_key_signups_per_minute: u32,
    /// "Manage by email" requests (`POST /manage`) per client IP per minute;
    /// each address also gets at most `confirmations_per_day` links a day.
    pub manage_rate_per_minute: u32,
    /// Dashboard sign-ins per client IP per minute (`POST /admin/login`).
    pub login_rate_per_minute: u32,
    /// How long a dashboard session lasts.
    pub session_hours: u32,
    /// The blog's address: pages after a signup link back to it.
    pub site_url: Option<Url>,
    pub feed_max_bytes: u64,
    /// A feed's first pull or import for a list counts as new only posts
    /// published in the last this many days; older ones are stored as sent.
    pub feed_first_lookback_days: u32,
    /// A scheduled slot missed while Tidings was down is sent at start when
    /// it is less than this many hours old (once, never several).
    pub schedule_grace_hours: u32,
    /// How often the scheduler looks for a due slot.
    pub schedule_poll_secs: u64,
    pub feed_allow_private_hosts: bool,
    pub log: String,
    /// `text` (readable lines) or `json` (one object per line).
    pub log_format: crate::telemetry::LogFormat,
    pub lists: Vec<ListSettings>,
    /// One DKIM key from the environment (`TIDINGS_DKIM_SELECTOR`,
    /// `TIDINGS_DKIM_KEY_FILE`, `TIDINGS_DKIM_DOMAIN`), signing beside any
    /// `[[dkim]]` tables of the file.
    pub dkim_selector: Option<String>,
    pub dkim_key_file: Option<PathBuf>,
    pub dkim_domain: Option<String>,
    /// DKIM keys from the file: several sign together (RSA and Ed25519).
    pub dkim: Vec<DkimSettings>,
    /// Where bounces go (`bounces@news.example.org`): each message's
    /// envelope sender becomes `bounces+TAG@…`, TAG naming the delivery
    /// under a MAC (VERP). Unset: the envelope sender is the From address.
    #[serde(deserialize_with = "optional_address", serialize_with = "redact::display_opt")]
    pub bounce_address: Option<lettre::Address>,
    /// Soft bounces of one address within `soft_bounce_days` that suppress it.
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
    /// The shared secret of `POST /webhooks/bounces` (Bearer, or the
    /// password of Basic auth for providers that only put it in the URL).
    #[serde(serialize_with = "redact::secret")]
    pub bounce_webhook_secret: Option<String>,
    /// A mailbox of bounce reports to read: `imaps://user:pass@host:993/INBOX`,
    /// or `imap://…` (STARTTLS required; `?tls=none` only for loopback tests).
    #[serde(serialize_with = "redact::url_opt")]
    pub bounce_imap_url: Option<Url>,
    pub bounce_poll_secs: u64,
    /// A PEM file of certificates to trust for the IMAP server, beside the
    /// public roots.
    pub bounce_imap_ca_file: Option<PathBuf>,
    /// Hosts (and their subdomains) an Amazon SNS subscription may be
    /// confirmed at; loopback addresses are allowed over http for tests.
    #[serde(deserialize_with = "list_of")]
    pub sns_confirm_hosts: Vec<String>,
}

/// One DKIM key: where it is published (`selector._domainkey.domain`) and
/// the PEM file holding it. `domain` defaults to the From address's.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    pub selector: String,
    pub key_file: PathBuf,
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListSettings {
    pub slug: ListSlug,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The blog's RSS or Atom feed for this list, for `tidings posts pull`.
    #[serde(default)]
    pub feed_url: Option<Url>,
    /// When the digest goes out by itself: `"mon 08:00"`, `"daily 07:30"`
    /// or a cron expression, in `timezone` (IANA; default UTC).
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    /// Send one welcome email when a reader confirms this list.
    #[serde(default)]
    pub welcome: bool,
    /// Whether the list's sent digests are public at `/archive/{slug}`.
    #[serde(default = "yes")]
    pub archive: bool,
}

fn yes() -> bool {
    true
}

impl ListSettings {
    /// The list's schedule, when it has one (checked at start-up).
    pub fn schedule(&self) -> Option<Result<crate::domain::Schedule, String>> {
        self.schedule.as_deref().map(|spec| crate::domain::Schedule::parse(spec, self.timezone.as_deref()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    Smtp,
    File,
}

/// Which database to use, chosen from the URL's scheme. Shown (`Debug`,
/// `Serialize`) without its password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://tidings.db".into());
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else {
            Err("expected sqlite://PATH or postgres://USER@HOST/DB".into())
        }
    }

    /// The URL as configured, e.g. for a child process's environment.
    pub fn to_url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => url.clone(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl DatabaseUrl {
    /// The URL with its password, if any, as `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(_) => self.to_url(),
            Self::Postgres(url) => Url::parse(url).map_or_else(|_| redact::HIDDEN.to_owned(), |u| redact::url_text(&u)),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// The settings as `tidings config` shows them: secrets redacted.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_string(self) {
            Ok(shown) => write!(f, "Settings {shown}"),
            Err(_) => f.write_str("Settings { … }"),
        }
    }
}

impl Settings {
    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A list from a TOML array, or from one comma-separated string (the form an
/// environment variable gives).
fn list_of<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Raw::Many(v) => v,
    };
    items.iter().map(|s| s.trim().parse::<T>().map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))).collect()
}

fn optional_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<lettre::Address>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
    if s.trim().is_empty() {
        return Ok(None);
    }
    let address: lettre::Address =
        s.trim().parse().map_err(|e| serde::de::Error::custom(format!("not an address {s:?}: {e}")))?;
    if address.user().contains('+') {
        return Err(serde::de::Error::custom(format!(
            "{s:?}: the bounce address must not hold a '+' (tags go after it)"
        )));
    }
    Ok(Some(address))
}

fn mailbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Mailbox>().map_err(|e| serde::de::Error::custom(format!("not a valid sender {s:?}: {e}")))
}

impl Default for Settings {
    fn default() -> Self {
        let list = |slug: &str, name: &str, description: &str| ListSettings {
            slug: ListSlug::parse(slug).unwrap_or_else(|_| unreachable!("built-in slug")),
            name: name.into(),
            description: description.into(),
            feed_url: None,
            schedule: None,
            timezone: None,
            welcome: false,
            archive: true,
        };
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            metrics_listen: None,
            base_url: Url::parse("http://127.0.0.1:8000").unwrap_or_else(|_| unreachable!()),
            database_url: DatabaseUrl::Sqlite("tidings.db".into()),
            database_pool_size: 8,
            mail_transport: MailTransportKind::File,
            mail_dir: "./outbox".into(),
            smtp_url: Url::parse("smtp://127.0.0.1:25").unwrap_or_else(|_| unreachable!()),
            smtp_ca_file: None,
            mail_from: Mailbox::new(
                Some("Tidings".into()),
                "newsletter@example.org".parse().unwrap_or_else(|_| unreachable!()),
            ),
            mail_domain: None,
            admin_token: None,
            secret_key: None,
            confirmations_per_day: 3,
            confirm_token_ttl_hours: 48,
            consent_version: "1".into(),
            smtp_timeout_secs: 30,
            smtp_concurrency: 16,
            sender_threads: 1,
            send_rate_per_second: 0.0,
            delivery_lease_secs: 120,
            digest_breaker_failures: 25,
            send_max_attempts: 8,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            outbox_poll_ms: 1_000,
            feed_timeout_secs: 10,
            signup_rate_per_minute: 20,
            confirm_rate_per_minute: 60,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            blocked_domains: [
                "mailinator.com",
                "guerrillamail.com",
                "10minutemail.com",
                "yopmail.com",
                "temp-mail.org",
            ]
            .map(String::from)
            .to_vec(),
            form_min_fill_ms: 2_000,
            body_timeout_ms: 10_000,
            max_connections_per_ip: 128,
            signup_answer_floor_ms: 5,
            json_signups: true,
            api_key_signups_per_minute: 600,
            manage_rate_per_minute: 10,
            login_rate_per_minute: 10,
            session_hours: 12,
            site_url: None,
            feed_max_bytes: 5 * 1024 * 1024,
            feed_first_lookback_days: 7,
            schedule_grace_hours: 6,
            schedule_poll_secs: 30,
            feed_allow_private_hosts: false,
            log: "info".into(),
            log_format: crate::telemetry::LogFormat::Text,
            dkim_selector: None,
            dkim_key_file: None,
            dkim_domain: None,
            dkim: Vec::new(),
            bounce_address: None,
            soft_bounce_limit: 3,
            soft_bounce_days: 30,
            bounce_webhook_secret: None,
            bounce_imap_url: None,
            bounce_poll_secs: 60,
            bounce_imap_ca_file: None,
            sns_confirm_hosts: vec!["amazonaws.com".into()],
            lists: vec![
                list(
                    "social-media",
                    "Medical Social Media",
                    "How doctors and patients meet online: new posts on medicine and social media.",
                ),
                list("orthopedic", "Orthopedic", "New posts on bones, joints, sports injuries and recovery."),
            ],
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// The slug of the list called `name` (store answers name lists), or
    /// the name itself for a list no longer configured.
    pub fn slug_of<'a>(&'a self, name: &'a str) -> &'a str {
        self.lists.iter().find(|l| l.name == name).map_or(name, |l| l.slug.as_str())
    }

    /// Slugs of the lists that send a welcome email.
    pub fn welcome_lists(&self) -> Vec<String> {
        self.lists.iter().filter(|l| l.welcome).map(|l| l.slug.as_str().to_owned()).collect()
    }

    /// Reads defaults, then `TIDINGS_CONFIG`'s file, then `TIDINGS_*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Ok(path) = std::env::var("TIDINGS_CONFIG") {
            if !std::path::Path::new(&path).is_file() {
                return Err(ConfigError(format!("TIDINGS_CONFIG: no file at {path}")));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            // TIDINGS_TEST_* variables belong to the test suite, not to the app.
            Env::prefixed("TIDINGS_").filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                k != "config" && !k.starts_with("test_")
            }),
        );
        Self::from_figment(figment)
    }

    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(toml)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Self = figment.extract().map_err(|e| {
            let Some(first) = e.into_iter().next() else {
                return ConfigError("unreadable configuration".into());
            };
            let key = first.path.join(".");
            if key.is_empty() {
                return ConfigError(first.to_string());
            }
            let env = format!("TIDINGS_{}", key.to_uppercase());
            ConfigError(format!("{key} ({env}): {}", first.kind))
        })?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if !matches!(self.base_url.scheme(), "http" | "https") || self.base_url.host().is_none() {
            return fail("base_url (TIDINGS_BASE_URL)", "must be an http:// or https:// URL");
        }
        if !matches!(self.smtp_url.scheme(), "smtp" | "smtps") || self.smtp_url.host().is_none() {
            return fail("smtp_url (TIDINGS_SMTP_URL)", "must be smtp://HOST:PORT or smtps://HOST:PORT");
        }
        if self.site_url.as_ref().is_some_and(|u| !matches!(u.scheme(), "http" | "https")) {
            return fail("site_url (TIDINGS_SITE_URL)", "must be an http:// or https:// URL");
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return fail("admin_token (TIDINGS_ADMIN_TOKEN)", "must be at least 16 characters");
        }
        if self.secret_key.as_deref().is_some_and(|k| k.len() < 32) {
            return fail("secret_key (TIDINGS_SECRET_KEY)", "must be at least 32 characters");
        }
        if !(1..=24 * 90).contains(&self.session_hours) {
            return fail("session_hours (TIDINGS_SESSION_HOURS)", "must be 1 to 2160 (90 days)");
        }
        if self.login_rate_per_minute == 0 {
            return fail("login_rate_per_minute (TIDINGS_LOGIN_RATE_PER_MINUTE)", "must be at least 1");
        }
        if self.lists.is_empty() {
            return fail("lists", "configure at least one list");
        }
        let mut slugs: Vec<_> = self.lists.iter().map(|l| &l.slug).collect();
        slugs.sort();
        if slugs.windows(2).any(|w| w[0] == w[1]) {
            return fail("lists", "two lists share a slug");
        }
        if let Some(bad) = self.allowed_origins.iter().find(|o| !is_origin(o)) {
            return fail(
                "allowed_origins (TIDINGS_ALLOWED_ORIGINS)",
                &format!("{bad:?} is not an origin like https://blog.example.org"),
            );
        }
        if self.lists.iter().filter_map(|l| l.feed_url.as_ref()).any(|u| !matches!(u.scheme(), "http" | "https")) {
            return fail("lists.feed_url", "must be an http:// or https:// URL");
        }
        for list in &self.lists {
            if let Some(Err(why)) = list.schedule() {
                return fail(&format!("lists.schedule of {}", list.slug), &why);
            }
            if list.timezone.is_some() && list.schedule.is_none() {
                return fail(&format!("lists.timezone of {}", list.slug), "needs a schedule");
            }
        }
        if self.schedule_poll_secs == 0 {
            return fail("schedule_poll_secs (TIDINGS_SCHEDULE_POLL_SECS)", "must be at least 1");
        }
        if self.lists.iter().any(|l| l.name.trim().is_empty()) {
            return fail("lists.name", "every list needs a name");
        }
        if self.smtp_concurrency == 0 || self.database_pool_size == 0 || self.sender_threads == 0 {
            return fail("smtp_concurrency / database_pool_size / sender_threads", "must be at least 1");
        }
        if self.send_rate_per_second.is_nan() || self.send_rate_per_second < 0.0 {
            return fail("send_rate_per_second (TIDINGS_SEND_RATE_PER_SECOND)", "must be 0 or more");
        }
        if self.delivery_lease_secs == 0 {
            return fail("delivery_lease_secs (TIDINGS_DELIVERY_LEASE_SECS)", "must be at least 1");
        }
        if self.digest_breaker_failures == 0 {
            return fail("digest_breaker_failures (TIDINGS_DIGEST_BREAKER_FAILURES)", "must be at least 1");
        }
        if self.send_max_attempts == 0 {
            return fail("send_max_attempts (TIDINGS_SEND_MAX_ATTEMPTS)", "must be at least 1");
        }
        if self.smtp_timeout_secs == 0 {
            return fail("smtp_timeout_secs (TIDINGS_SMTP_TIMEOUT_SECS)", "must be at least 1");
        }
        if self.dkim_selector.is_some() != self.dkim_key_file.is_some() {
            return fail(
                "dkim_selector / dkim_key_file (TIDINGS_DKIM_SELECTOR / TIDINGS_DKIM_KEY_FILE)",
                "set both, or neither",
            );
        }
        if self.dkim_domain.is_some() && self.dkim_selector.is_none() {
            return fail("dkim_domain (TIDINGS_DKIM_DOMAIN)", "needs TIDINGS_DKIM_SELECTOR and TIDINGS_DKIM_KEY_FILE");
        }
        if self.body_timeout_ms < 100 {
            return fail("body_timeout_ms (TIDINGS_BODY_TIMEOUT_MS)", "must be at least 100");
        }
        if self.bounce_webhook_secret.as_deref().is_some_and(|t| t.len() < 16) {
            return fail("bounce_webhook_secret (TIDINGS_BOUNCE_WEBHOOK_SECRET)", "must be at least 16 characters");
        }
        if let Some(url) = &self.bounce_imap_url {
            if !matches!(url.scheme(), "imap" | "imaps") || url.host().is_none() || url.username().is_empty() {
                return fail(
                    "bounce_imap_url (TIDINGS_BOUNCE_IMAP_URL)",
                    "must be imaps://USER:PASSWORD@HOST:993/FOLDER or imap://… (STARTTLS)",
                );
            }
        }
        if self.soft_bounce_limit == 0 || self.soft_bounce_days == 0 || self.bounce_poll_secs == 0 {
            return fail("soft_bounce_limit / soft_bounce_days / bounce_poll_secs", "must be at least 1");
        }
        if self.signup_answer_floor_ms > 1_000 {
            return fail("signup_answer_floor_ms (TIDINGS_SIGNUP_ANSWER_FLOOR_MS)", "must be at most 1000");
        }
        Ok(())
    }

    /// The origin this service is reached at, e.g. `https://news.example.org`.
    pub fn own_origin(&self) -> String {
        self.base_url.origin().ascii_serialization()
    }

    /// The domain used in `List-Id` and `Message-ID` headers.
    pub fn mail_domain(&self) -> String {
        self.mail_domain
            .clone()
            .or_else(|| self.base_url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into())
    }

    pub fn feed_first_lookback(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.feed_first_lookback_days))
    }

    pub fn smtp_timeout(&self) -> Duration {
        Duration::from_secs(self.smtp_timeout_secs)
    }

    /// Every configured DKIM key: the `[[dkim]]` tables, then the one
    /// from the `dkim_*` settings.
    pub fn dkim_keys(&self) -> Vec<DkimSettings> {
        let mut keys = self.dkim.clone();
        if let (Some(selector), Some(key_file)) = (&self.dkim_selector, &self.dkim_key_file) {
            let key = DkimSettings {
                selector: selector.clone(),
                key_file: key_file.clone(),
                domain: self.dkim_domain.clone(),
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn signup_answer_floor(&self) -> Duration {
        Duration::from_millis(self.signup_answer_floor_ms)
    }

    pub fn confirm_token_ttl(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.confirm_token_ttl_hours))
    }

    /// Exponential backoff after `attempts` failed tries, capped.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let factor = 1u64 << attempts.saturating_sub(1).min(20);
        Duration::from_millis(self.retry_base_ms.saturating_mul(factor).min(self.retry_max_ms))
    }

    /// A base URL without a trailing slash, ready to have paths appended.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }
}

/// `scheme://host[:port]` and nothing more.
fn is_origin(s: &str) -> bool {
    Url::parse(s).is_ok_and(|u| u.origin().ascii_serialization() == s.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_from_arrays_or_comma_strings() {
        let s = Settings::from_toml_str("trusted_proxies = \"10.0.0.1, ::1\"\nblocked_domains = [\"a.org\"]").unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.blocked_domains, ["a.org"]);
        assert!(Settings::from_toml_str("trusted_proxies = \"nope\"").is_err());
        assert!(Settings::from_toml_str("allowed_origins = \"https://blog.example.org/path\"").is_err());
        assert!(Settings::from_toml_str("allowed_origins = \"https://blog.example.org\"").is_ok());
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let s = Settings {
            admin_token: Some("admin-token-abcdefghijklmnop".into()),
            secret_key: Some("secret-key-abcdefghijklmnopqrstuvwxyz0123".into()),
            bounce_webhook_secret: Some("webhook-secret-abcdefgh".into()),
            smtp_url: Url::parse("smtp://news:smtp-password-123@relay.example:587").unwrap(),
            database_url: DatabaseUrl::Postgres("postgres://u:db-password-456@db.example/t".into()),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        for secret in ["abcdefgh", "smtp-password-123", "db-password-456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("smtp://news:***@relay.example:587"), "{shown}");
    }

    #[test]
    fn default_toml_matches_code_defaults() {
        let file = include_str!("../config/default.toml");
        let from_file = Settings::from_toml_str(file).unwrap();
        let code = Settings::default();
        assert_eq!(format!("{from_file:?}"), format!("{code:?}"));
    }

    #[test]
    fn production_example_is_valid() {
        Settings::from_toml_str(include_str!("../config/production.example.toml")).unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let e = Settings::from_toml_str("smtp_timeout_secs = \"soon\"").unwrap_err();
        assert!(e.to_string().contains("smtp_timeout_secs"), "{e}");
        let e = Settings::from_toml_str("database_url = \"mysql://x\"").unwrap_err();
        assert!(e.to_string().contains("database_url"), "{e}");
        let e = Settings::from_toml_str("admin_token = \"short\"").unwrap_err();
        assert!(e.to_string().contains("admin_token"), "{e}");
        let e = Settings::from_toml_str("no_such_key = 1").unwrap_err();
        assert!(e.to_string().contains("no_such_key"), "{e}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Settings::from_toml_str("retry_base_ms = 100\nretry_max_ms = 1000").unwrap();
        let ms: Vec<u128> = (1..=6).map(|a| s.retry_delay(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
    }
}

//! Signups from server-side clients with an API key (`Authorization:
//! Bearer tk_…`): no fill-time check, a rate limit per key instead of per
//! IP (a blog's backend signs everyone up from one address).
//!
//! Live keys are held in memory and reloaded from the database when older
//! than `RELOAD_AFTER`, or on an unknown key at most once per `MISS_RELOAD`:
//! a forged key costs no query, and a key created or revoked with the CLI
//! (another process) takes effect within `RELOAD_AFTER`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_governor::governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use crate::domain::ApiKeySecret;
use crate::store::{Store, StoreResult};

const RELOAD_AFTER: Duration = Duration::from_secs(10);
const MISS_RELOAD: Duration = Duration::from_secs(1);

/// What a signup's `Authorization` header says.
#[derive(Debug)]
pub enum Presented {
    /// No bearer: a browser or a token-carrying client.
    None,
    Key(ApiKeySecret),
    /// A bearer that is not one of our keys' shape.
    Malformed,
}

pub fn presented(req: &HttpRequest) -> Presented {
    let Some(value) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return Presented::None };
    let Some((scheme, bearer)) = value.trim().split_once(' ') else { return Presented::Malformed };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Malformed;
    }
    ApiKeySecret::parse(bearer).map_or(Presented::Malformed, Presented::Key)
}

/// The outcome of checking a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    Allowed {
        name: String,
    },
    Unknown,
    /// Over its rate: try again after this long.
    Limited(Duration),
}

struct Known {
    by_hash: HashMap<String, (i64, String)>,
    loaded: Option<Instant>,
    tried: Option<Instant>,
}

pub struct ApiKeys {
    known: Mutex<Known>,
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
}

impl ApiKeys {
    /// `per_minute` signups per key; 0 turns the per-key limit off.
    pub fn new(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self { known: Mutex::new(Known { by_hash: HashMap::new(), loaded: None, tried: None }), limiter }
    }

    fn lookup(&self, hash: &str) -> (Option<(i64, String)>, bool) {
        let Ok(known) = self.known.lock() else { return (None, true) };
        let fresh = known.loaded.is_some_and(|at| at.elapsed() < RELOAD_AFTER);
        let may_retry = known.tried.is_none_or(|at| at.elapsed() >= MISS_RELOAD);
        let found = known.by_hash.get(hash).cloned();
        let reload = !fresh || (found.is_none() && may_retry);
        (found.filter(|_| fresh), reload)
    }

    async fn reload(&self, store: &Store) -> StoreResult<()> {
        if let Ok(mut known) = self.known.lock() {
            known.tried = Some(Instant::now());
        }
        let live = store.live_api_keys().await?;
        if let Ok(mut known) = self.known.lock() {
            known.by_hash = live.into_iter().map(|(id, name, hash)| (hash, (id, name))).collect();
            known.loaded = Some(Instant::now());
        }
        Ok(())
    }

    pub async fn check(&self, store: &Store, key: &ApiKeySecret) -> StoreResult<KeyCheck> {
        let hash = key.hash();
        let (mut found, reload) = self.lookup(&hash);
        if reload {
            self.reload(store).await?;
            found = self.lookup(&hash).0;
        }
        let Some((id, name)) = found else { return Ok(KeyCheck::Unknown) };
        if let Some(limiter) = &self.limiter {
            if let Err(not_until) = limiter.check_key(&id) {
                use actix_governor::governor::clock::{Clock, DefaultClock};
                return Ok(KeyCheck::Limited(not_until.wait_time_from(DefaultClock::default().now())));
            }
        }
        Ok(KeyCheck::Allowed { name })
    }
}

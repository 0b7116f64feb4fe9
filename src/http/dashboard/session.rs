//! A signed-in author: the session cookie, found in the database by its
//! SHA-256, and the CSRF token every dashboard form carries. The cookie is
//! `HttpOnly`, `SameSite=Strict`, scoped to `/admin`, and `Secure` when the
//! base URL is https.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{LOCATION, ORIGIN};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::domain::SessionSecret;
use crate::http::AppState;
use crate::http::error::ApiError;

pub const SESSION_COOKIE: &str = "tidings_session";

/// The author a request's session belongs to.
pub struct SignedIn {
    pub email: String,
    pub csrf_token: String,
    pub id_hash: String,
}

/// Why a dashboard request has no author behind it.
#[derive(Debug, thiserror::Error)]
pub enum NoSession {
    #[error("sign in first")]
    SignIn,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for NoSession {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn => StatusCode::SEE_OTHER,
            Self::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn => HttpResponse::SeeOther().insert_header((LOCATION, "/admin/login")).finish(),
            Self::Api(e) => e.error_response(),
        }
    }
}

impl FromRequest for SignedIn {
    type Error = NoSession;
    type Future = Pin<Box<dyn Future<Output = Result<Self, NoSession>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let secret = req.cookie(SESSION_COOKIE).and_then(|c| SessionSecret::parse(c.value()));
        Box::pin(async move {
            let state = state.ok_or(ApiError::Internal)?;
            let secret = secret.ok_or(NoSession::SignIn)?;
            let id_hash = secret.hash();
            let session = state.store.session(id_hash.clone()).await.map_err(ApiError::from)?;
            let session = session.ok_or(NoSession::SignIn)?;
            Ok(Self { email: session.email, csrf_token: session.csrf_token, id_hash })
        })
    }
}

impl SignedIn {
    /// A dashboard page of `section`, for this author.
    pub fn page(
        &self,
        state: &AppState,
        status: StatusCode,
        template: &str,
        section: &str,
        data: &serde_json::Value,
    ) -> HttpResponse {
        state.pages.dashboard(status, template, &self.email, &self.csrf_token, section, data)
    }

    /// Whether a dashboard form post is the author's own: its `csrf` field
    /// is this session's token, and it does not come from another site.
    pub fn form_is_genuine(&self, req: &HttpRequest, settings: &Settings, csrf: &str) -> bool {
        same_site(req, settings) && bool::from(csrf.as_bytes().ct_eq(self.csrf_token.as_bytes()))
    }
}

/// A dashboard form posted by its signed-in author: the session's CSRF
/// token, from this site. Anything else is answered before the handler
/// runs: the sign-in redirect, 415 for a body that is no form, or 403 with
/// a page that says what to do for a forged or stale form.
pub struct GenuineForm {
    pub author: SignedIn,
    pub form: Form,
}

impl FromRequest for GenuineForm {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let author = SignedIn::from_request(req, payload);
        let body = web::Payload::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let author = author.await?;
            let body = body.await?;
            let state = req.app_data::<web::Data<AppState>>().cloned().ok_or(ApiError::Internal)?;
            let form = genuine_form(&req, &author, body, &state).await?;
            Ok(Self { author, form })
        })
    }
}

/// A dashboard form's fields, once it is shown to be the author's own.
async fn genuine_form(
    req: &HttpRequest,
    author: &SignedIn,
    payload: web::Payload,
    state: &AppState,
) -> Result<Form, actix_web::Error> {
    let body = crate::http::body::read(payload, state.settings.body_timeout()).await?;
    if crate::http::body::kind(req) != crate::http::body::Kind::Form {
        return Err(ApiError::UnsupportedMediaType.into());
    }
    let form = Form::parse(&body);
    if !author.form_is_genuine(req, &state.settings, form.get("csrf").unwrap_or_default()) {
        tracing::info!("dashboard form without this session's token, or from another site: refused");
        return Err(InternalError::from_response("a dashboard form not from this session", forged(state)).into());
    }
    Ok(form)
}

/// The fields of a posted form, in order.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// An `application/x-www-form-urlencoded` body's fields.
    pub fn parse(body: &[u8]) -> Self {
        Self(crate::http::body::form_pairs(body))
    }
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// A browser names the page a post comes from in `Origin`; one that names
/// another site (or `null`, from a sandboxed frame) is refused.
pub fn same_site(req: &HttpRequest, settings: &Settings) -> bool {
    match req.headers().get(ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => origin == settings.own_origin(),
    }
}

/// A cookie for the dashboard (`path` and below), living `max_age`.
pub fn cookie(
    settings: &Settings,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: Duration,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(settings.base_url.scheme() == "https")
        .max_age(time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
        .finish()
}

/// The same cookie, expired: the browser drops it.
pub fn expired(settings: &Settings, name: &'static str, path: &'static str) -> Cookie<'static> {
    cookie(settings, name, String::new(), path, Duration::ZERO)
}

/// The 403 page of a dashboard form that did not pass the CSRF check.
pub fn forged(state: &AppState) -> HttpResponse {
    state.pages.message(
        StatusCode::FORBIDDEN,
        "This form cannot be used",
        &["It did not come from this dashboard, or it is too old. Go back, reload the page and try again."],
        Some(("/admin", "Go to the dashboard")),
    )
}

/// Failed sign-ins per typed address, kept by each process: after
/// `FAILURES` within `WINDOW`, that address is refused until the window
/// passes, whether or not it is an author (so the answer tells nothing).
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

const FAILURES: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);

impl Default for LoginThrottle {
    fn default() -> Self {
        Self { failures: Mutex::new(HashMap::new()) }
    }
}

impl LoginThrottle {
    /// How long `address` must wait, when it must.
    pub fn wait(&self, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().ok()?;
        let recent: Vec<&Instant> = failures.get(address)?.iter().filter(|at| now - **at < WINDOW).collect();
        (recent.len() >= FAILURES).then(|| recent.iter().map(|at| WINDOW - (now - **at)).min().unwrap_or(WINDOW))
    }

    pub fn failed(&self, address: &str) {
        let now = Instant::now();
        let Ok(mut failures) = self.failures.lock() else { return };
        // An attacker typing a new address each time must not grow the map
        // without bound: old entries go first.
        if failures.len() > 10_000 {
            failures.retain(|_, times| times.iter().any(|at| now - *at < WINDOW));
        }
        let times = failures.entry(address.to_owned()).or_default();
        times.retain(|at| now - *at < WINDOW);
        times.push(now);
    }

    pub fn succeeded(&self, address: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_hold_an_address_back_and_success_clears_it() {
        let throttle = LoginThrottle::default();
        for _ in 0..FAILURES - 1 {
            throttle.failed("a@example.com");
        }
        assert!(throttle.wait("a@example.com").is_none());
        throttle.failed("a@example.com");
        let wait = throttle.wait("a@example.com").unwrap();
        assert!(wait > Duration::from_secs(14 * 60) && wait <= WINDOW, "{wait:?}");
        assert!(throttle.wait("b@example.com").is_none(), "other addresses are free");
        throttle.succeeded("a@example.com");
        assert!(throttle.wait("a@example.com").is_none());
    }
}

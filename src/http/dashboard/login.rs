//! Signing in and out. The sign-in form carries a token that must match a
//! cookie set with the form (a cross-site page can post the form but not
//! read or set that cookie); the answer to an unknown address and to a
//! wrong password is the same, and costs the same time.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::session::{self, GenuineForm, SESSION_COOKIE, cookie, expired, same_site};
use crate::domain::{EmailAddress, SessionSecret, decoy_hash, password_matches};
use crate::http::AppState;
use crate::http::body::{self, Kind};
use crate::http::error::ApiError;

const LOGIN_COOKIE: &str = "tidings_login";
const LOGIN_PATH: &str = "/admin/login";
/// How long a served sign-in form stays usable.
const FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// `GET /admin/login`: the form, or the dashboard for a signed-in author.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(secret) = req.cookie(SESSION_COOKIE).and_then(|c| SessionSecret::parse(c.value()))
        && state.store.session(secret.hash()).await?.is_some()
    {
        return Ok(HttpResponse::SeeOther().insert_header((LOCATION, "/admin")).finish());
    }
    Ok(form(&state, StatusCode::OK, "", None))
}

fn form(state: &AppState, status: StatusCode, email: &str, error: Option<&str>) -> HttpResponse {
    let token = SessionSecret::generate();
    let data = json!({ "title": "Sign in", "email": email, "error": error, "login_token": token.expose() });
    let mut answer = state.pages.dashboard_public(status, "dash_login", &data);
    answer.headers_mut().insert(CACHE_CONTROL, actix_web::http::header::HeaderValue::from_static("no-store"));
    let _ =
        answer.add_cookie(&cookie(&state.settings, LOGIN_COOKIE, token.expose().to_owned(), LOGIN_PATH, FORM_LIFETIME));
    answer
}

/// `POST /admin/login` with `email`, `password` and `login_token`.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read(payload, state.settings.body_timeout()).await?;
    if body::kind(&req) != Kind::Form {
        return Err(ApiError::UnsupportedMediaType);
    }
    let fields = session::Form::parse(&body);
    let typed = fields.get("email").unwrap_or_default().to_owned();
    let password = fields.get("password").unwrap_or_default().to_owned();
    let token = fields.get("login_token").unwrap_or_default();
    let expected = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    let genuine = !expected.is_empty() && bool::from(token.as_bytes().ct_eq(expected.as_bytes()));
    if !genuine || !same_site(&req, &state.settings) {
        tracing::info!("sign-in form without its cookie, or from another site: refused");
        return Ok(session::forged(&state));
    }
    let address = typed.trim().to_lowercase();
    if let Some(wait) = state.login_throttle.wait(&address) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let why = format!("Too many failed sign-ins for this address. Try again in {minutes} minutes.");
        let mut answer = form(&state, StatusCode::TOO_MANY_REQUESTS, &typed, Some(&why));
        answer.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(answer);
    }
    let credentials = match EmailAddress::parse(&typed) {
        Ok(email) => state.store.author_credentials(email.as_str().to_owned()).await?,
        Err(_) => None,
    };
    let (author, stored) = match credentials {
        Some((id, hash)) => (Some(id), hash),
        None => (None, decoy_hash().to_owned()),
    };
    // Argon2id takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || password_matches(&stored, &password))
        .await
        .map_err(|_| ApiError::Internal)?;
    let Some(author_id) = author.filter(|_| matches) else {
        state.login_throttle.failed(&address);
        tracing::info!("failed sign-in");
        return Ok(form(
            &state,
            StatusCode::UNAUTHORIZED,
            &typed,
            Some("That address and password do not match an author."),
        ));
    };
    state.login_throttle.succeeded(&address);
    // Always a new session id at sign-in: one planted before it is useless.
    if let Some(old) = req.cookie(SESSION_COOKIE).and_then(|c| SessionSecret::parse(c.value())) {
        state.store.close_session(old.hash()).await?;
    }
    let id = SessionSecret::generate();
    let lifetime = Duration::from_secs(u64::from(state.settings.session_hours) * 3600);
    let expires = Utc::now().naive_utc() + chrono::Duration::hours(i64::from(state.settings.session_hours));
    state.store.open_session(id.hash(), author_id, SessionSecret::generate().expose().to_owned(), expires).await?;
    tracing::info!(author = author_id, "signed in");
    let mut answer = HttpResponse::SeeOther().insert_header((LOCATION, "/admin")).finish();
    let _ = answer.add_cookie(&cookie(&state.settings, SESSION_COOKIE, id.expose().to_owned(), "/admin", lifetime));
    let _ = answer.add_cookie(&expired(&state.settings, LOGIN_COOKIE, LOGIN_PATH));
    Ok(answer)
}

/// `POST /admin/logout` with `csrf`: the session ends on the server too.
pub async fn logout(posted: GenuineForm, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let author = posted.author;
    state.store.close_session(author.id_hash.clone()).await?;
    let mut answer = HttpResponse::SeeOther().insert_header((LOCATION, LOGIN_PATH)).finish();
    let _ = answer.add_cookie(&expired(&state.settings, SESSION_COOKIE, "/admin"));
    Ok(answer)
}

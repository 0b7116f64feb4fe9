//! HTTP: routes grouped by audience, one error type, page rendering, and the
//! middleware every answer passes through (request ids, security headers).

mod abuse;
mod admin;
mod api_keys;
mod archive;
mod assets;
mod body;
mod connections;
mod dashboard;
mod endpoint;
mod error;
mod manage;
mod metrics;
mod openapi;
mod pages;
mod preferences;
mod public;
mod readers;
mod suppressions;
mod unsubscribe;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::Notify;
use tracing::Instrument;

pub use error::{ApiError, ErrorBody};
pub use pages::Pages;

use crate::bounce::Bounces;
use crate::config::Settings;
use crate::domain::Signer;
use crate::mail::Messages;
use crate::store::Store;
use crate::store::subscriptions::Evidence;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub signer: Signer,
    pub pages: Pages,
    pub messages: Arc<Messages>,
    pub client_ip: ClientIp,
    /// Wake the senders when a request has queued mail.
    pub outbox_wake: Arc<Notify>,
    pub digest_wake: Arc<Notify>,
    pub bounces: Bounces,
    pub api_keys: ApiKeys,
    /// `GET /openapi.json`, built at start (it names the configured lists).
    pub openapi: String,
    pub login_throttle: LoginThrottle,
}

pub use abuse::{ClientIp, Limits};
pub use api_keys::ApiKeys;
pub use connections::{ConnectionCap, refuse_over_cap};
pub use dashboard::LoginThrottle;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, limits: &Limits) {
    // A query or path the extractors cannot read gets the API's own 400.
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::invalid("query", format!("the query string cannot be read: {e}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::invalid("path", format!("the address cannot be read: {e}")).into()),
    );
    // Before the API's `/admin` scope, whose token check would refuse them.
    dashboard::routes(cfg, limits);
    public::routes(cfg, limits);
    unsubscribe::routes(cfg);
    preferences::routes(cfg);
    manage::routes(cfg, limits);
    archive::routes(cfg);
    assets::routes(cfg);
    metrics::routes(cfg);
    admin::routes(cfg);
    webhooks::routes(cfg);
    openapi::routes(cfg);
}

pub use openapi::document_json as openapi_document;

pub use metrics::server as metrics_server;

/// A route for `GET` that answers `HEAD` too (uptime monitors ask with
/// `HEAD`; the server sends the same headers without the body).
pub fn get() -> actix_web::Route {
    web::route().guard(endpoint::reading())
}

pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
}

/// Gives each request a span with a short random id, echoed in
/// `X-Request-Id`. Logs the route pattern, never the path: paths carry tokens.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    crate::telemetry::meters::http(&route, method.as_str(), status, started.elapsed());
    span.in_scope(|| {
        tracing::debug!(status, micros = started.elapsed().as_micros() as u64, "answered");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

/// 404 for any unknown route: a page for browsers, JSON for the rest.
pub async fn not_found(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let wants_html = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    if wants_html {
        state.pages.message(
            StatusCode::NOT_FOUND,
            "Page not found",
            &["There is nothing at this address."],
            Some(("/", "Go to the signup form")),
        )
    } else {
        HttpResponse::NotFound().json(ErrorBody::new("no such page or API route"))
    }
}

/// The consent evidence of a request: client IP, user agent, how it came.
pub fn evidence(req: &HttpRequest, state: &AppState, source: &str) -> Evidence {
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    Evidence {
        ip: state.client_ip.of(req.peer_addr(), req.headers()).map(|ip| ip.to_string()),
        user_agent,
        source: source.to_owned(),
        consent_version: state.settings.consent_version.clone(),
    }
}

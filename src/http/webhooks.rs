//! `POST /webhooks/bounces`: bounce and complaint events from a provider
//! (Amazon SES through SNS, Postmark, Mailgun, SendGrid) or anything that
//! can post the generic event, behind `TIDINGS_BOUNCE_WEBHOOK_SECRET`.

use std::time::Duration;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::body;
use super::endpoint::endpoint;
use super::error::{ApiError, ErrorBody};
use crate::bounce::Tally;
use crate::bounce::webhook::{self, Webhook};
use crate::config::Settings;

/// A provider's batch (SendGrid posts up to a thousand events at once).
const MAX_EVENTS_BODY: usize = 1024 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/webhooks/bounces").post(bounces).done());
}

/// The generic event; the documented events of Amazon SES (through SNS),
/// Postmark, Mailgun and SendGrid are taken as they come.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // The shape, for the document: the body is read by `webhook::parse`.
pub(super) struct GenericBounceEvent {
    email: String,
    #[serde(rename = "type")]
    kind: GenericKind,
    reason: Option<String>,
    /// Names the event: the same id again changes nothing.
    id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum GenericKind {
    Hard,
    Soft,
    Complaint,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum WebhookAnswer {
    /// An Amazon SNS subscription, confirmed.
    Confirmed { confirmed: bool },
    /// The events, applied: what they amounted to.
    Applied { provider: &'static str, applied: Tally },
}

/// Bounce and complaint events, behind `TIDINGS_BOUNCE_WEBHOOK_SECRET`.
#[utoipa::path(post, path = "/webhooks/bounces", tag = "webhooks", security(("webhook_secret" = []), ("webhook_basic" = [])),
    request_body(description = "The generic event, or a provider's event (SNS posts it as text/plain)", content(
        (GenericBounceEvent = "application/json"),
        ("text/plain"),
    )),
    responses(
        (status = 200, description = "Applied, or the SNS subscription confirmed", body = WebhookAnswer),
        (status = 400, description = "Not an event we can read (the field at fault is named)", body = ErrorBody),
        (status = 401, description = "Missing or wrong secret", body = ErrorBody),
        (status = 404, description = "The webhook is off: no secret is configured", body = ErrorBody),
    ))]
pub(super) async fn bounces(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(req.headers(), &state.settings)?;
    // SNS posts JSON as text/plain: the body is read whatever its type.
    let body = body::read_up_to(payload, state.settings.body_timeout(), MAX_EVENTS_BODY).await?;
    match webhook::parse(&body).map_err(|e| ApiError::invalid("body", e))? {
        Webhook::ConfirmSubscription { url } => {
            confirm_sns(&url, &state.settings).await?;
            tracing::info!("Amazon SNS subscription confirmed");
            Ok(HttpResponse::Ok().json(WebhookAnswer::Confirmed { confirmed: true }))
        }
        Webhook::Events { provider, events } => {
            let tally = state.bounces.apply_events(provider, events).await?;
            tracing::info!(provider, %tally, "bounce events applied");
            Ok(HttpResponse::Ok().json(WebhookAnswer::Applied { provider, applied: tally }))
        }
    }
}

/// `Authorization: Bearer SECRET`, or Basic with SECRET as the password
/// (SNS, Postmark and SendGrid take credentials only in the URL:
/// `https://tidings:SECRET@news.example.org/webhooks/bounces`).
fn authorize(headers: &HeaderMap, settings: &Settings) -> Result<(), ApiError> {
    let Some(expected) = settings.bounce_webhook_secret.as_deref() else {
        return Err(ApiError::NotFound(
            "the bounce webhook is off: set TIDINGS_BOUNCE_WEBHOOK_SECRET to turn it on".into(),
        ));
    };
    let (scheme, value) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .ok_or_else(unauthorized)?;
    let given = if scheme.eq_ignore_ascii_case("bearer") {
        value.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(value.trim()).map_err(|_| unauthorized())?;
        let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
        decoded.split_once(':').map(|(_, password)| password.to_owned()).ok_or_else(unauthorized)?
    } else {
        return Err(unauthorized());
    };
    let same: bool = Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into();
    if same { Ok(()) } else { Err(unauthorized()) }
}

fn unauthorized() -> ApiError {
    ApiError::WebhookUnauthorized
}

/// Visits an SNS `SubscribeURL`, only at an allowed host: the body is
/// authenticated, but a URL is still not followed anywhere it says.
async fn confirm_sns(url: &str, settings: &Settings) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url).map_err(|_| ApiError::invalid("SubscribeURL", "not a URL"))?;
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let loopback = host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let allowed = settings.sns_confirm_hosts.iter().any(|h| host == *h || host.ends_with(&format!(".{h}")));
    let scheme_ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback);
    if !allowed || !scheme_ok {
        return Err(ApiError::invalid(
            "SubscribeURL",
            format!("{host} is not an allowed SNS host (https and TIDINGS_SNS_CONFIRM_HOSTS)"),
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| ApiError::Internal)?;
    let answer = client.get(parsed).send().await.map_err(|e| {
        tracing::warn!(error = %e, "SNS subscription confirmation failed");
        ApiError::BadGateway("could not reach the SNS SubscribeURL; SNS will send the confirmation again".into())
    })?;
    if !answer.status().is_success() {
        return Err(ApiError::BadGateway(format!("the SNS SubscribeURL answered {}", answer.status())));
    }
    Ok(())
}

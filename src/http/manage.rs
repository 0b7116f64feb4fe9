//! "Manage by email": a reader without an email at hand asks for a link to
//! their preference page. The answer is the same whether or not the address
//! is known, so the page tells nobody who subscribes; only a known,
//! confirmed reader is mailed (rate limited per IP, capped per address).

use actix_governor::Governor;
use actix_web::http::StatusCode;
use actix_web::middleware::Condition;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::abuse::Limits;
use super::body::{self, Kind};
use super::endpoint::endpoint;
use super::error::ApiError;
use crate::domain::EmailAddress;
use crate::store::preferences::ManageOutcome;

pub fn routes(cfg: &mut web::ServiceConfig, limits: &Limits) {
    // Only the POST sends mail: the page itself is not rate limited.
    cfg.service(endpoint("/manage").guard(super::endpoint::reading()).get(page).done()).service(
        endpoint("/manage")
            .get(page)
            .post(ask)
            .done()
            .wrap(Condition::new(limits.manage_on, Governor::new(&limits.manage))),
    );
}

async fn page(state: web::Data<AppState>) -> HttpResponse {
    state.pages.manage(StatusCode::OK, "", None)
}

async fn ask(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let arrived = tokio::time::Instant::now();
    let body = body::read(payload, state.settings.body_timeout()).await?;
    if body::kind(&req) != Kind::Form {
        return Err(ApiError::UnsupportedMediaType);
    }
    let typed = body::form_pairs(&body).into_iter().find(|(k, _)| k == "email").map(|(_, v)| v).unwrap_or_default();
    let email = match EmailAddress::parse(&typed) {
        Ok(email) => email,
        Err(e) => return Ok(state.pages.manage(StatusCode::BAD_REQUEST, &typed, Some(&e.to_string()))),
    };
    let redacted = email.redacted();
    let outcome =
        state.store.queue_manage_link(email.as_str().to_owned(), state.settings.confirmations_per_day).await?;
    tracing::info!(email = %redacted, ?outcome, "manage link asked for");
    if outcome == ManageOutcome::Queued {
        state.outbox_wake.notify_one();
    }
    // The same floor as signups: a known reader's answer (a write) must not
    // come later than an unknown one's.
    tokio::time::sleep_until(arrived + state.settings.signup_answer_floor()).await;
    Ok(state.pages.message(
        StatusCode::OK,
        "Check your inbox",
        &[
            "If this address receives our newsletters, we sent it a link to your preferences. It arrives within a few minutes; look in your spam folder too.",
            "No email? Then this address is not subscribed: you can sign up again.",
        ],
        Some(("/", "Sign up")),
    ))
}

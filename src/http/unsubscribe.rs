//! Leaving a list: a page with a button (GET), and the POST that does it,
//! which is also the RFC 8058 one-click target named in `List-Unsubscribe`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::body::{self, Kind};
use super::endpoint::endpoint;
use super::error::ApiError;
use super::{AppState, evidence};
use crate::domain::TokenKind;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/unsubscribe/{token}").get(page).post(unsubscribe).done());
}

fn unknown_link(state: &AppState) -> HttpResponse {
    super::preferences::link_does_not_work(state, "This unsubscribe link does not work")
}

/// A GET only shows the page: link scanners fetch every URL in an email.
async fn page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Ok(id) = state.signer.verify(TokenKind::Unsubscribe, &token) else {
        return Ok(unknown_link(&state));
    };
    let Some(target) = state.store.unsubscribe_target(id).await? else {
        return Ok(unknown_link(&state));
    };
    let already = target.status == crate::domain::SubscriptionStatus::Unsubscribed;
    Ok(state.pages.unsubscribe(req.path(), &target.list_name, already, &target.other_active_lists))
}

/// Accepts any body: RFC 8058 clients send `List-Unsubscribe=One-Click` as
/// multipart/form-data or urlencoded, and carry no cookie or credentials.
/// Answers 200, never a redirect.
async fn unsubscribe(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The token is checked first: a forged link costs no body read.
    let Ok(id) = state.signer.verify(TokenKind::Unsubscribe, &token) else {
        return Ok(unknown_link(&state));
    };
    let body = body::read(payload, state.settings.body_timeout()).await?;
    let pairs = if body::kind(&req) == Kind::Form { body::form_pairs(&body) } else { Vec::new() };
    let all = pairs.iter().any(|(k, v)| k == "all" && matches!(v.as_str(), "yes" | "on" | "true"));
    let one_click = body.windows(26).any(|w| w == b"List-Unsubscribe=One-Click");
    let source = if one_click { "one-click" } else { "page" };
    let Some(left) = state.store.unsubscribe(id, all, evidence(&req, &state, source)).await? else {
        return Ok(unknown_link(&state));
    };
    tracing::info!(source, lists = left.newly.len(), "unsubscribed");
    left.newly.iter().for_each(|name| crate::telemetry::meters::unsubscribed(state.settings.slug_of(name)));
    let joined = left.lists.join(" and ");
    Ok(state.pages.message(
        StatusCode::OK,
        "You are unsubscribed",
        &[
            &format!("You will get no more emails from {joined}."),
            "Changed your mind? You can sign up again at any time.",
        ],
        Some(("/", "Sign up again")),
    ))
}

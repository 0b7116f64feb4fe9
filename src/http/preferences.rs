//! A reader's own data from their email link (GDPR): download it as JSON,
//! or erase it after saying so twice. The link's token is the one in every
//! email's unsubscribe link (one reader, signed).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::body::{self, Kind};
use super::error::ApiError;
use crate::domain::TokenKind;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/preferences/{token}/export", web::get().to(export))
        .route("/preferences/{token}/erase", web::get().to(erase_page))
        .route("/preferences/{token}/erase", web::post().to(erase));
}

fn unknown_link(state: &AppState) -> HttpResponse {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "This link does not work",
        &["It may have been cut short when it was copied. Use the link from the bottom of any of our emails."],
        None,
    )
}

/// The reader the link belongs to, or `None` for a forged or unknown one.
async fn reader(state: &AppState, token: &str) -> Result<Option<i64>, ApiError> {
    let Ok(id) = state.signer.verify(TokenKind::Unsubscribe, token) else { return Ok(None) };
    Ok(state.store.reader_of_link(id).await?)
}

/// `GET /preferences/{token}/export`: everything kept about the reader.
async fn export(token: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(id) = reader(&state, &token).await? else { return Ok(unknown_link(&state)) };
    let Some(data) = state.store.reader_data(id).await? else { return Ok(unknown_link(&state)) };
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Disposition", "attachment; filename=\"my-newsletter-data.json\""))
        .insert_header(("Cache-Control", "no-store"))
        .json(data))
}

async fn erase_page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if reader(&state, &token).await?.is_none() {
        return Ok(unknown_link(&state));
    }
    Ok(state.pages.erase(req.path()))
}

/// `POST /preferences/{token}/erase`: without `confirm=yes`, the page that
/// asks; with it, the reader's data is gone.
async fn erase(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = reader(&state, &token).await? else { return Ok(unknown_link(&state)) };
    let body = body::read(payload, state.settings.body_timeout()).await?;
    let pairs = if body::kind(&req) == Kind::Form { body::form_pairs(&body) } else { Vec::new() };
    if !pairs.iter().any(|(k, v)| k == "confirm" && v == "yes") {
        return Ok(state.pages.erase(req.path()));
    }
    state.store.erase_reader(id).await?;
    tracing::info!("reader erased their data");
    Ok(state.pages.message(
        StatusCode::OK,
        "Your data is erased",
        &[
            "Your address, your name, your subscriptions and their history are deleted. You will get no more emails from us.",
            "If you sign up again some day, you start afresh.",
        ],
        Some(("/", "Back to the signup form")),
    ))
}

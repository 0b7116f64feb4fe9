//! The reader's preference page, from the link in every email's footer:
//! every list with its state, join or leave one, leave all, change the
//! name, download or erase their data (GDPR). The link's token is the one in
//! the email's unsubscribe link (one of the reader's subscriptions, signed),
//! and it is the only credential: whoever holds the email holds the page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::body::{self, Kind};
use super::endpoint::endpoint;
use super::error::ApiError;
use super::pages::PreferencesView;
use super::{AppState, evidence};
use crate::domain::{SubscriberName, TokenKind};
use crate::store::preferences::JoinOutcome;
use crate::store::readers::ReaderData;
use crate::store::subscriptions::Left;
use crate::telemetry::meters;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/preferences/{token}").get(page).post(change).done())
        .service(endpoint("/preferences/{token}/export").get(export).done())
        .service(endpoint("/preferences/{token}/erase").get(erase_page).post(erase).done());
}

/// The answer to a link that is forged, cut short, or whose reader is gone.
pub(super) fn link_does_not_work(state: &AppState, title: &str) -> HttpResponse {
    state.pages.message(
        StatusCode::NOT_FOUND,
        title,
        &[
            "It may have been cut short when it was copied. Use the link from the bottom of any of our emails.",
            "No email at hand? We can send you a new link.",
        ],
        Some(("/manage", "Email me a link to my preferences")),
    )
}

fn unknown_link(state: &AppState) -> HttpResponse {
    link_does_not_work(state, "This link does not work")
}

/// The reader the link belongs to, or `None` for a forged or unknown one.
async fn reader(state: &AppState, token: &str) -> Result<Option<i64>, ApiError> {
    let Ok(id) = state.signer.verify(TokenKind::Unsubscribe, token) else { return Ok(None) };
    Ok(state.store.reader_of_link(id).await?)
}

/// The page as it stands now, with what the last change did.
async fn show(
    state: &AppState,
    action: &str,
    subscriber_id: i64,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(prefs) = state.store.preferences(subscriber_id).await? else { return Ok(unknown_link(state)) };
    // Only configured lists: one removed from the configuration is not offered.
    let mut prefs = prefs;
    prefs.lists.retain(|l| state.settings.lists.iter().any(|c| c.slug.as_str() == l.slug));
    Ok(state.pages.preferences(&PreferencesView { status, action, prefs: &prefs, notice, error }))
}

/// `GET /preferences/{token}`.
async fn page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = reader(&state, &token).await? else { return Ok(unknown_link(&state)) };
    show(&state, req.path(), id, StatusCode::OK, None, None).await
}

/// A change from the page, as its form sends it.
enum Change {
    Join(String),
    Leave(String),
    LeaveAll,
    Rename(Option<SubscriberName>),
}

fn parse_change(pairs: &[(String, String)], state: &AppState) -> Result<Change, String> {
    let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let list = || -> Result<String, String> {
        let wanted = field("list").unwrap_or("");
        crate::author::known_list(&state.settings, "list", wanted)
            .map(|slug| slug.as_str().to_owned())
            .map_err(|e| e.message)
    };
    match field("action").unwrap_or("") {
        "join" => Ok(Change::Join(list()?)),
        "leave" => Ok(Change::Leave(list()?)),
        "leave_all" => Ok(Change::LeaveAll),
        "name" => SubscriberName::parse_optional(field("name")).map(Change::Rename).map_err(|e| e.to_string()),
        other => Err(format!("unknown action {other:?}: use the buttons on this page")),
    }
}

fn list_name(state: &AppState, slug: &str) -> String {
    state.settings.lists.iter().find(|l| l.slug.as_str() == slug).map_or(slug, |l| l.name.as_str()).to_owned()
}

fn count_left(state: &AppState, left: &Left) {
    left.newly.iter().for_each(|name| meters::unsubscribed(state.settings.slug_of(name)));
}

/// `POST /preferences/{token}`: one change, answered by the page again with
/// a line saying what changed. Each change is a consent record.
async fn change(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = reader(&state, &token).await? else { return Ok(unknown_link(&state)) };
    let body = body::read(payload, state.settings.body_timeout()).await?;
    if body::kind(&req) != Kind::Form {
        return Err(ApiError::UnsupportedMediaType);
    }
    let change = match parse_change(&body::form_pairs(&body), &state) {
        Ok(change) => change,
        Err(why) => return show(&state, req.path(), id, StatusCode::BAD_REQUEST, None, Some(why)).await,
    };
    let evidence = evidence(&req, &state, "preferences");
    let notice = match change {
        Change::Join(slug) => {
            let name = list_name(&state, &slug);
            match state.store.join_list(id, slug.clone(), evidence, state.settings.welcome_lists()).await? {
                JoinOutcome::Joined => {
                    meters::confirmed(&slug);
                    state.outbox_wake.notify_one();
                    format!("You joined {name}. Its next email comes to this address.")
                }
                JoinOutcome::AlreadyThere => format!("You already receive {name}."),
                JoinOutcome::NeedsConfirmation => {
                    let why = "Confirm your address first, with the link in the confirmation email we sent you; then you can join more newsletters here.";
                    return show(&state, req.path(), id, StatusCode::CONFLICT, None, Some(why.into())).await;
                }
                JoinOutcome::UnknownList => return Ok(unknown_link(&state)),
            }
        }
        Change::Leave(slug) => {
            let name = list_name(&state, &slug);
            count_left(&state, &state.store.leave_lists(id, Some(slug), evidence).await?);
            format!("You left {name}. You will get no more emails from it.")
        }
        Change::LeaveAll => {
            count_left(&state, &state.store.leave_lists(id, None, evidence).await?);
            "You left every newsletter. You will get no more emails from us.".to_owned()
        }
        Change::Rename(name) => {
            let greeting = name.as_ref().map(|n| format!("Emails now greet you as {n}.", n = n.as_str()));
            state.store.rename_reader(id, name.map(|n| n.as_str().to_owned()), evidence).await?;
            greeting.unwrap_or_else(|| "Emails now greet you without a name.".to_owned())
        }
    };
    tracing::info!("preferences changed");
    show(&state, req.path(), id, StatusCode::OK, Some(notice), None).await
}

/// `GET /preferences/{token}/export`: everything kept about the reader.
/// Everything kept about the reader whose link this is (GDPR art. 15, 20).
#[utoipa::path(get, path = "/preferences/{token}/export", tag = "readers",
    params(("token" = String, Path, description = "The token of the reader's unsubscribe link")),
    responses(
        (status = 200, description = "The reader's data", body = ReaderData),
        (status = 404, description = "A forged or unknown link: a page that says how to get a new one", body = String, content_type = "text/html"),
    ))]
pub(super) async fn export(token: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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

//! The author's API under `/admin`, behind a bearer token: lists, posts,
//! feeds, digests, readers and the suppression list.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::body;
use super::endpoint::endpoint;
use super::error::{ApiError, ErrorBody};
use super::{readers, suppressions};
use crate::author::{self, PostInput, Preview, PreviewError};
use crate::config::Settings;
use crate::domain::ListSlug;
use crate::feed::ImportReport as FeedReport;
use crate::feed::{self, FeedError};
use crate::store::digests::{ControlOutcome, DigestStatus, DigestSummary, TriggerOutcome};
use crate::store::lists::ListCounts;
use crate::store::posts::PostRow;
use crate::store::posts::{ListsMode, Upsert};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(require_token))
            .service(endpoint("/lists").get(lists).done())
            .service(endpoint("/posts").get(posts).post(add_post).done())
            .service(endpoint("/posts/pull").post(pull).done())
            .service(endpoint("/digests").get(digests).post(trigger).done())
            .service(endpoint("/digests/preview").get(preview).done())
            .service(endpoint("/digests/{id}").get(digest).done())
            .service(endpoint("/digests/{id}/pause").post(pause).done())
            .service(endpoint("/digests/{id}/resume").post(resume).done())
            .service(endpoint("/digests/{id}/cancel").post(cancel).done())
            .service(endpoint("/suppressions").get(suppressions::list).post(suppressions::add).done())
            .service(endpoint("/suppressions/{email}").delete(suppressions::remove).done())
            .service(endpoint("/subscribers/import").post(readers::import_csv).done())
            .service(endpoint("/subscribers/export.csv").get(readers::export_csv).done())
            .service(endpoint("/subscribers/{email}").delete(readers::erase).done()),
    );
}

/// Every `/admin` request passes here before its handler: a request without
/// the token never reaches one, so no handler can forget to check.
async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().ok_or(ApiError::Internal)?;
    authorize(req.headers(), &state.settings)?;
    next.call(req).await
}

/// Checks `Authorization: Bearer …` against the configured token. Hashing
/// both sides first makes the comparison constant-time whatever the lengths.
/// With no token configured, nobody gets in.
pub(super) fn authorize(headers: &HeaderMap, settings: &Settings) -> Result<(), ApiError> {
    let expected = settings.admin_token.as_deref().ok_or(ApiError::Unauthorized)?;
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // RFC 9110: the scheme is case-insensitive.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or(ApiError::Unauthorized)?;
    let same: bool = Sha256::digest(given.trim().as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into();
    if same { Ok(()) } else { Err(ApiError::Unauthorized) }
}

/// Every list with its readers counted by state.
#[utoipa::path(get, path = "/admin/lists", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, description = "The lists", body = [ListCounts])))]
pub(super) async fn lists(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.store.list_counts().await?))
}

/// A configured list, or a 400 naming the field.
fn known_list(state: &AppState, field: &'static str, slug: &str) -> Result<ListSlug, ApiError> {
    Ok(author::known_list(&state.settings, field, slug)?)
}

/// The id of a stored post.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PostId {
    id: i64,
}

/// `POST /admin/posts`: 201 with a new id; the same URL again updates that
/// post and answers 200 with its id.
#[utoipa::path(post, path = "/admin/posts", tag = "admin", security(("admin_token" = [])),
    request_body = PostInput,
    responses(
        (status = 201, description = "A new post", body = PostId),
        (status = 200, description = "A post with this URL was there: updated", body = PostId),
        (status = 400, description = "A field is missing or wrong (named in `field`)", body = ErrorBody),
    ))]
pub(super) async fn add_post(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input: PostInput = body::json(&req, payload, state.settings.body_timeout()).await?;
    let post = author::parse_post(&input, &state.settings)?;
    let outcome = state.store.upsert_posts(vec![post], ListsMode::Replace).await?;
    Ok(match outcome.first() {
        Some(Upsert::Created(id)) => HttpResponse::Created().json(PostId { id: *id }),
        Some(Upsert::Updated(id) | Upsert::Unchanged(id)) => HttpResponse::Ok().json(PostId { id: *id }),
        None => return Err(ApiError::Internal),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// A list's slug.
    #[param(value_type = Option<ListSlug>)]
    list: Option<String>,
}

/// The newest 1,000 posts, of one list or of all.
#[utoipa::path(get, path = "/admin/posts", tag = "admin", security(("admin_token" = [])), params(ListQuery),
    responses(
        (status = 200, description = "Posts, newest first", body = [PostRow]),
        (status = 400, description = "No such list", body = ErrorBody),
    ))]
pub(super) async fn posts(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let list = query.list.as_deref().map(|s| known_list(&state, "list", s)).transpose()?;
    let posts = state.store.posts(list.map(|l| l.to_string()), 1000).await?;
    Ok(HttpResponse::Ok().json(posts))
}

/// `POST /admin/posts/pull[?list=SLUG]`: fetches the configured feeds.
#[utoipa::path(post, path = "/admin/posts/pull", tag = "admin", security(("admin_token" = [])), params(ListQuery),
    responses(
        (status = 200, description = "What each feed brought", body = [FeedReport]),
        (status = 400, description = "No such list", body = ErrorBody),
        (status = 409, description = "The list has no feed configured", body = ErrorBody),
        (status = 502, description = "A feed could not be fetched or read", body = ErrorBody),
    ))]
pub(super) async fn pull(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let list = query.list.as_deref().map(|s| known_list(&state, "list", s)).transpose()?;
    match feed::pull(&state.store, &state.settings, list.as_ref().map(ListSlug::as_str)).await {
        Ok(reports) => Ok(HttpResponse::Ok().json(reports)),
        Err(FeedError::Store(e)) => Err(e.into()),
        Err(e @ (FeedError::NoFeed(_) | FeedError::UnknownList(_))) => Err(ApiError::Conflict(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "feed pull failed");
            Ok(HttpResponse::BadGateway().json(ErrorBody::new(e.to_string())))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct TriggerBody {
    /// The list's slug.
    #[schema(value_type = ListSlug)]
    list: String,
    /// Overrides the list's subject line (one line of 1-200 characters).
    #[schema(min_length = 1, max_length = 200)]
    subject: Option<String>,
}

/// `POST /admin/digests`: a digest of the list's new posts to every
/// confirmed reader. With an `Idempotency-Key`, a retry gets the first answer.
#[utoipa::path(post, path = "/admin/digests", tag = "admin", security(("admin_token" = [])),
    request_body = TriggerBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Queued; sent in the background", body = DigestSummary, links(
            ("status" = (operation_id = "digest", parameters(("id" = "$response.body#/id")))),
            ("pause" = (operation_id = "pause", parameters(("id" = "$response.body#/id")))),
            ("resume" = (operation_id = "resume", parameters(("id" = "$response.body#/id")))),
            ("cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, description = "A field is missing or wrong (named in `field`)", body = ErrorBody),
        (status = 409, description = "No new posts, or the key was used for another list", body = ErrorBody),
    ))]
pub(super) async fn trigger(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: TriggerBody = body::json(&req, payload, state.settings.body_timeout()).await?;
    let list = known_list(&state, "list", &body.list)?;
    let subject = body.subject.as_deref().map(author::parse_subject).transpose()?;
    let key = idempotency_key(&req)?;
    match state.store.trigger_digest(list, subject, key).await? {
        TriggerOutcome::Created(summary) => {
            tracing::info!(digest = summary.id, recipients = summary.recipients, "digest queued");
            state.digest_wake.notify_one();
            Ok(HttpResponse::Accepted().json(summary))
        }
        TriggerOutcome::Replayed(summary) => Ok(HttpResponse::Accepted().json(summary)),
        TriggerOutcome::NoNewPosts => Err(ApiError::Conflict(
            "no new posts in this list since its last digest: add posts or pull the feed first".into(),
        )),
        TriggerOutcome::UnknownList => Err(ApiError::invalid("list", "there is no such list")),
        TriggerOutcome::KeyReused => {
            Err(ApiError::Conflict("this Idempotency-Key was already used for a digest of another list".into()))
        }
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else { return Ok(None) };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid("Idempotency-Key", "use 1-200 visible ASCII characters"));
    }
    Ok(Some(key.to_owned()))
}

/// The newest 100 digests.
#[utoipa::path(get, path = "/admin/digests", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, description = "Digests, newest first", body = [DigestStatus])))]
pub(super) async fn digests(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.store.digest_statuses(100).await?))
}

fn digest_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound("no digest with that id".into()))
}

/// One digest's progress: counts by outcome, failure classes, last error.
#[utoipa::path(get, path = "/admin/digests/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, description = "The digest's id")),
    responses(
        (status = 200, description = "The digest", body = DigestStatus),
        (status = 404, description = "No digest with that id", body = ErrorBody),
    ))]
pub(super) async fn digest(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&id)?;
    match state.store.digest_status(id).await? {
        Some(status) => Ok(HttpResponse::Ok().json(status)),
        None => Err(ApiError::NotFound("no digest with that id".into())),
    }
}

/// `GET /admin/digests/preview?list=SLUG`: the HTML a reader would get now.
#[utoipa::path(get, path = "/admin/digests/preview", tag = "admin", security(("admin_token" = [])),
    params(("list" = ListSlug, Query, description = "The list's slug")),
    responses(
        (status = 200, description = "The digest's HTML", body = String, content_type = "text/html"),
        (status = 400, description = "No such list", body = ErrorBody),
        (status = 409, description = "No new posts since the list's last digest", body = ErrorBody),
    ))]
pub(super) async fn preview(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let slug = query.list.as_deref().ok_or_else(|| ApiError::invalid("list", "say which list: ?list=SLUG"))?;
    let list = known_list(&state, "list", slug)?;
    preview_page(&state, list).await
}

/// The next digest of `list` as a reader would get it now (the API's
/// preview, and the frame on the dashboard's confirmation step); 409 when
/// there is nothing new.
pub(super) async fn preview_page(state: &AppState, list: ListSlug) -> Result<HttpResponse, ApiError> {
    match author::preview(&state.store, &state.messages, list).await {
        // The email's own inline styles, and nothing else, may apply; only
        // the dashboard's own pages may frame it.
        Ok(Preview::Html(html)) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'",
            ))
            .insert_header(("X-Frame-Options", "SAMEORIGIN"))
            .body(html)),
        Ok(Preview::NoNewPosts) => Err(ApiError::Conflict("no new posts in this list since its last digest".into())),
        Err(PreviewError::Store(e)) => Err(e.into()),
        Err(PreviewError::Render(e)) => {
            tracing::error!(error = %e, "preview failed");
            Err(ApiError::Internal)
        }
    }
}

/// The digest's status after a pause, resume or cancel; 409 saying why when
/// its state does not allow it.
async fn controlled(state: &AppState, id: i64, outcome: ControlOutcome, done: &str) -> Result<HttpResponse, ApiError> {
    match outcome {
        ControlOutcome::Done => {
            state.digest_wake.notify_one();
            let status = state.store.digest_status(id).await?.ok_or(ApiError::Internal)?;
            Ok(HttpResponse::Ok().json(status))
        }
        ControlOutcome::NotFound => Err(ApiError::NotFound("no digest with that id".into())),
        ControlOutcome::Refused(now) => Err(ApiError::Conflict(format!("this digest is {now}: it cannot be {done}"))),
    }
}

/// `POST /admin/digests/{id}/pause`: nothing more is sent until resumed.
#[utoipa::path(post, path = "/admin/digests/{id}/pause", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, description = "The digest's id")),
    responses(
        (status = 200, description = "Done: the digest's status now", body = DigestStatus),
        (status = 404, description = "No digest with that id", body = ErrorBody),
        (status = 409, description = "Not possible in the digest's state", body = ErrorBody),
    ))]
pub(super) async fn pause(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&id)?;
    let outcome = state.store.pause_digest(id).await?;
    controlled(&state, id, outcome, "paused").await
}

/// `POST /admin/digests/{id}/resume`: sends what is pending and what failed
/// for a reason that is not the reader's.
#[utoipa::path(post, path = "/admin/digests/{id}/resume", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, description = "The digest's id")),
    responses(
        (status = 200, description = "Done: the digest's status now", body = DigestStatus),
        (status = 404, description = "No digest with that id", body = ErrorBody),
        (status = 409, description = "Not possible in the digest's state", body = ErrorBody),
    ))]
pub(super) async fn resume(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&id)?;
    let outcome = state.store.resume_digest(id).await?;
    controlled(&state, id, outcome, "resumed (nothing is left to send)").await
}

/// `POST /admin/digests/{id}/cancel`: what is still pending is never sent.
#[utoipa::path(post, path = "/admin/digests/{id}/cancel", tag = "admin", security(("admin_token" = [])),
    params(("id" = i64, Path, description = "The digest's id")),
    responses(
        (status = 200, description = "Done: the digest's status now", body = DigestStatus),
        (status = 404, description = "No digest with that id", body = ErrorBody),
        (status = 409, description = "Not possible in the digest's state", body = ErrorBody),
    ))]
pub(super) async fn cancel(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&id)?;
    let outcome = state.store.cancel_digest(id).await?;
    controlled(&state, id, outcome, "cancelled").await
}

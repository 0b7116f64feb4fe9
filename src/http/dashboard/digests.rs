//! `/admin/ui/digests`: each list's next digest (preview, a confirmation
//! step with the recipient count and subject, then send), and every digest
//! with its progress, pause, resume and cancel. The progress page is right
//! on reload; `dashboard.js` refreshes its figures while it is open.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION};
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde_json::{Value, json};

use super::session::{GenuineForm, SignedIn};
use crate::author;
use crate::domain::{DigestState, digest_subject};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::digests::{ControlOutcome, DigestStatus, TriggerOutcome};

/// The dashboard's pages may run its one script and frame its previews.
pub const DASHBOARD_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
     connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn with_csp(mut answer: HttpResponse) -> HttpResponse {
    answer
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, actix_web::http::header::HeaderValue::from_static(DASHBOARD_CSP));
    answer
}

/// A digest's figures as the page and the script show them.
pub fn progress(status: &DigestStatus) -> Value {
    let done = status.sent + status.failed + status.bounced + status.skipped + status.cancelled;
    let end = status.finished_at.unwrap_or_else(|| Utc::now().naive_utc());
    let secs = (end - status.created_at).num_milliseconds().max(1) as f64 / 1000.0;
    let rate = status.sent as f64 / secs;
    let eta = (status.status == DigestState::Sending && rate > 0.0).then(|| {
        let left = (status.pending as f64 / rate).ceil() as u64;
        format!("{}:{:02}", left / 60, left % 60)
    });
    let percent = if status.recipients > 0 { (done * 100 / status.recipients).min(100) } else { 100 };
    json!({
        "id": status.id,
        "list": status.list,
        "subject": status.subject,
        "state": status.status.as_str(),
        "recipients": status.recipients,
        "sent": status.sent,
        "failed": status.failed,
        "bounced": status.bounced,
        "skipped": status.skipped,
        "pending": status.pending,
        "percent": percent,
        "rate": format!("{rate:.1}"),
        "eta": eta,
        "last_error": status.last_error,
        "paused_reason": status.paused_reason,
        "finished": status.is_finished(),
        "can_pause": matches!(status.status, DigestState::Queued | DigestState::Sending),
        "can_resume": matches!(status.status, DigestState::Paused | DigestState::Failed),
        "can_cancel": !status.is_finished() || status.status == DigestState::Failed,
        "created": status.created_at.format("%-d %B %Y %H:%M UTC").to_string(),
    })
}

pub async fn index(author: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut lists = Vec::new();
    for list in &state.settings.lists {
        let unsent = match state.store.unsent_posts(list.slug.clone()).await? {
            Some((_, posts)) => posts.len(),
            None => 0,
        };
        lists.push(json!({ "slug": list.slug.as_str(), "name": list.name, "unsent": unsent }));
    }
    let digests: Vec<Value> = state.store.digest_statuses(100).await?.iter().map(progress).collect();
    let data = json!({ "title": "Digests", "lists": lists, "digests": digests });
    Ok(with_csp(author.page(&state, StatusCode::OK, "dash_digests", "digests", &data)))
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    list: Option<String>,
    /// Set after a test copy went out: the page says where.
    tested: Option<String>,
}

/// `GET /admin/ui/digests/send?list=SLUG`: what would be sent, to how many,
/// under which subject, and the button that sends it.
pub async fn confirm(
    author: SignedIn,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Ok(list) = author::known_list(&state.settings, "list", query.list.as_deref().unwrap_or_default()) else {
        return Ok(HttpResponse::SeeOther().insert_header((LOCATION, "/admin/ui/digests")).finish());
    };
    let recipients = state.store.recipient_count(list.clone()).await?;
    let Some((row, posts)) = state.store.unsent_posts(list.clone()).await? else {
        return Err(ApiError::NotFound("no such list".into()));
    };
    let subject = posts.first().map(|p| digest_subject(&row.name, &p.title, posts.len()));
    let titles: Vec<&str> = posts.iter().map(|p| p.title.as_str()).collect();
    let data = json!({
        "title": format!("Send {}", row.name),
        "slug": list.as_str(),
        "name": row.name,
        "recipients": recipients,
        "subject": subject,
        "count": titles.len(),
        "posts": titles,
        // One click sends once: a second post of this form replays the first.
        "key": crate::domain::SessionSecret::generate().expose(),
        "tested": query.tested.is_some().then(|| format!("A test copy was sent to {}.", author.email)),
    });
    Ok(with_csp(author.page(&state, StatusCode::OK, "dash_send", "digests", &data)))
}

/// `GET /admin/ui/digests/preview?list=SLUG`: the email as a reader sees it,
/// for the confirmation page's sandboxed frame.
pub async fn preview(
    _author: SignedIn,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let list = author::known_list(&state.settings, "list", query.list.as_deref().unwrap_or_default())?;
    crate::http::admin::preview_page(&state, list).await
}

/// `POST /admin/ui/digests/send` with `list`, `subject` and `key`.
pub async fn send(posted: GenuineForm, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let form = posted.form;
    let list = author::known_list(&state.settings, "list", form.get("list").unwrap_or_default())?;
    let subject =
        form.get("subject").map(str::trim).filter(|s| !s.is_empty()).map(author::parse_subject).transpose()?;
    let key = form.get("key").filter(|k| !k.is_empty()).map(|k| format!("dashboard-{k}"));
    match state.store.trigger_digest(list, subject, key).await? {
        TriggerOutcome::Created(summary) | TriggerOutcome::Replayed(summary) => {
            tracing::info!(digest = summary.id, recipients = summary.recipients, "digest queued from the dashboard");
            state.digest_wake.notify_one();
            Ok(HttpResponse::SeeOther().insert_header((LOCATION, format!("/admin/ui/digests/{}", summary.id))).finish())
        }
        TriggerOutcome::NoNewPosts => Ok(refused(
            &state,
            "There are no new posts in this list since its last digest: add a post or pull the feed first.",
        )),
        TriggerOutcome::UnknownList => Err(ApiError::invalid("list", "there is no such list")),
        TriggerOutcome::KeyReused => Ok(refused(&state, "This form was used for another list. Go back and reload it.")),
    }
}

/// A 409 page for an action the digest's state does not allow.
fn refused(state: &AppState, why: &str) -> HttpResponse {
    state.pages.message(
        StatusCode::CONFLICT,
        "Not possible now",
        &[why],
        Some(("/admin/ui/digests", "Back to the digests")),
    )
}

/// `POST /admin/ui/digests/test` with `list`: the next digest, as it would
/// go out now, to the signed-in author alone (subject marked `[Test]`; its
/// unsubscribe links name no reader and do nothing). An SMTP refusal is
/// shown, not swallowed.
pub async fn test_send(posted: GenuineForm, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let GenuineForm { author, form } = posted;
    let list = author::known_list(&state.settings, "list", form.get("list").unwrap_or_default())?;
    let Some((row, posts)) = state.store.unsent_posts(list.clone()).await? else {
        return Err(ApiError::NotFound("no such list".into()));
    };
    let Some(newest) = posts.first() else {
        return Ok(refused(
            &state,
            "There are no new posts in this list since its last digest: there is nothing to test.",
        ));
    };
    let subject = format!("[Test] {}", digest_subject(&row.name, &newest.title, posts.len()));
    let content = crate::store::digests::DigestContent { id: 0, subject, list: row, posts };
    let message = state
        .messages
        .prepare_digest(&content)
        .and_then(|prepared| state.messages.digest_for(&prepared, &author.email, None, "test-copy"))
        .map_err(|e| {
            tracing::error!(error = %e, "test copy could not be rendered");
            ApiError::Internal
        })?;
    let mailer = crate::mail::Mailer::from_settings(&state.settings).map_err(|e| {
        tracing::error!(error = %e, "no mail transport for a test copy");
        ApiError::Internal
    })?;
    let sent = mailer.send(&message).await;
    mailer.close().await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "test copy refused");
        return Ok(state.pages.message(
            StatusCode::BAD_GATEWAY,
            "The test copy was not sent",
            &[
                &format!("The mail server said: {e}"),
                "Readers' copies would meet the same answer: check the SMTP settings before sending.",
            ],
            Some((&format!("/admin/ui/digests/send?list={list}"), "Back to the digest")),
        ));
    }
    tracing::info!("test copy sent to the author");
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, format!("/admin/ui/digests/send?list={list}&tested=1")))
        .finish())
}

fn digest_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound("no digest with that id".into()))
}

/// `GET /admin/ui/digests/{id}`: one digest's progress and controls.
pub async fn show(
    author: SignedIn,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&id)?;
    let status =
        state.store.digest_status(id).await?.ok_or_else(|| ApiError::NotFound("no digest with that id".into()))?;
    let data = json!({ "title": format!("Digest {id}"), "digest": progress(&status) });
    Ok(with_csp(author.page(&state, StatusCode::OK, "dash_digest", "digests", &data)))
}

/// `GET /admin/ui/digests/{id}/progress`: the same figures as JSON, for
/// the script.
pub async fn progress_json(
    _author: SignedIn,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = digest_id(&id)?;
    let status =
        state.store.digest_status(id).await?.ok_or_else(|| ApiError::NotFound("no digest with that id".into()))?;
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, "no-store")).json(progress(&status)))
}

/// `POST /admin/ui/digests/{id}/{pause|resume|cancel}`.
pub async fn control(
    _genuine: GenuineForm,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = path.into_inner();
    let id = digest_id(&id)?;
    let outcome = match action.as_str() {
        "pause" => state.store.pause_digest(id).await?,
        "resume" => state.store.resume_digest(id).await?,
        "cancel" => state.store.cancel_digest(id).await?,
        _ => return Err(ApiError::NotFound("no such action: pause, resume or cancel".into())),
    };
    match outcome {
        ControlOutcome::Done => {
            state.digest_wake.notify_one();
            Ok(HttpResponse::SeeOther().insert_header((LOCATION, format!("/admin/ui/digests/{id}"))).finish())
        }
        ControlOutcome::NotFound => Err(ApiError::NotFound("no digest with that id".into())),
        ControlOutcome::Refused(now) => {
            let done = match action.as_str() {
                "pause" => "paused",
                "resume" => "resumed (nothing is left to send)",
                _ => "cancelled",
            };
            Ok(refused(&state, &format!("This digest is {now}: it cannot be {done}.")))
        }
    }
}

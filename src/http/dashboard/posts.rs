//! `/admin/ui/posts`: each list's posts, those not in a digest yet marked;
//! adding a post; pulling a list's feed.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde_json::{Value, json};

use super::session::{GenuineForm, SignedIn};
use crate::author::{self, PostInput};
use crate::feed::{self, FeedError};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::posts::{ListsMode, Upsert};

/// What the page says after an action, and the add form's values.
#[derive(Default)]
struct Outcome {
    notice: Option<String>,
    error: Option<String>,
    title: String,
    url: String,
    summary: String,
    lists: Vec<String>,
}

pub async fn page(
    author: SignedIn,
    state: web::Data<AppState>,
    query: web::Query<Notice>,
) -> Result<HttpResponse, ApiError> {
    let outcome = Outcome { notice: query.notice(), ..Outcome::default() };
    render(&author, &state, StatusCode::OK, outcome).await
}

/// A notice carried over a redirect (`?done=…`), from a fixed set.
#[derive(serde::Deserialize)]
pub struct Notice {
    done: Option<String>,
}

impl Notice {
    fn notice(&self) -> Option<String> {
        match self.done.as_deref() {
            Some("added") => Some("The post was added.".into()),
            Some("updated") => Some("A post with this address was there: it was updated.".into()),
            _ => None,
        }
    }
}

async fn render(
    author: &SignedIn,
    state: &AppState,
    status: StatusCode,
    outcome: Outcome,
) -> Result<HttpResponse, ApiError> {
    let mut lists = Vec::new();
    for list in &state.settings.lists {
        let unsent: Vec<i64> = match state.store.unsent_posts(list.slug.clone()).await? {
            Some((_, posts)) => posts.iter().map(|p| p.id).collect(),
            None => Vec::new(),
        };
        let posts: Vec<Value> = state
            .store
            .posts(Some(list.slug.to_string()), 200)
            .await?
            .iter()
            .map(|p| {
                json!({
                    "title": p.title,
                    "url": p.url,
                    "published": p.published_at.format("%-d %B %Y").to_string(),
                    "unsent": unsent.contains(&p.id),
                })
            })
            .collect();
        lists.push(json!({
            "slug": list.slug.as_str(),
            "name": list.name,
            "posts": posts,
            "unsent": unsent.len(),
            "has_feed": list.feed_url.is_some(),
            "checked": outcome.lists.iter().any(|l| l == list.slug.as_str()),
        }));
    }
    let data = json!({
        "title": "Posts",
        "lists": lists,
        "notice": outcome.notice,
        "error": outcome.error,
        "form": { "title": outcome.title, "url": outcome.url, "summary": outcome.summary },
    });
    Ok(author.page(state, status, "dash_posts", "posts", &data))
}

/// `POST /admin/ui/posts`: a new post (or the same URL again: updated).
pub async fn add(posted: GenuineForm, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let GenuineForm { author, form } = posted;
    let input = PostInput {
        title: form.get("title").unwrap_or_default().to_owned(),
        url: form.get("url").unwrap_or_default().to_owned(),
        summary: form.get("summary").unwrap_or_default().to_owned(),
        published_at: Utc::now().to_rfc3339(),
        lists: form.all("lists"),
    };
    let post = match author::parse_post(&input, &state.settings) {
        Ok(post) => post,
        Err(e) => {
            let outcome = Outcome {
                error: Some(e.message),
                title: input.title,
                url: input.url,
                summary: input.summary,
                lists: input.lists,
                ..Outcome::default()
            };
            return render(&author, &state, StatusCode::BAD_REQUEST, outcome).await;
        }
    };
    let done = match state.store.upsert_posts(vec![post], ListsMode::Replace).await?.first() {
        Some(Upsert::Created(_)) => "added",
        _ => "updated",
    };
    Ok(HttpResponse::SeeOther().insert_header((LOCATION, format!("/admin/ui/posts?done={done}"))).finish())
}

/// `POST /admin/ui/posts/pull` with `list`: fetches that list's feed.
pub async fn pull(posted: GenuineForm, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let GenuineForm { author, form } = posted;
    let slug = form.get("list").unwrap_or_default().to_owned();
    let (status, outcome) = match feed::pull(&state.store, &state.settings, Some(&slug)).await {
        Ok(reports) => {
            let said: Vec<String> = reports
                .iter()
                .map(|r| {
                    format!(
                        "{}: {} new, {} updated, {} unchanged, {} skipped",
                        r.list, r.created, r.updated, r.unchanged, r.skipped
                    )
                })
                .collect();
            (
                StatusCode::OK,
                Outcome { notice: Some(format!("Feed pulled. {}", said.join("; "))), ..Outcome::default() },
            )
        }
        Err(FeedError::Store(e)) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "feed pull from the dashboard failed");
            (
                StatusCode::BAD_GATEWAY,
                Outcome { error: Some(format!("The feed could not be pulled: {e}")), ..Outcome::default() },
            )
        }
    };
    render(&author, &state, status, outcome).await
}

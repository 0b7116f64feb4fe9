//! The author's workflows, shared by the admin API and the CLI: checking a
//! new post, previewing the next digest.

use serde::Deserialize;

use crate::config::Settings;
use crate::domain::{
    ListSlug, MAX_SUMMARY, NewPost, PostTitle, PostUrl, digest_subject, parse_published_at, plain_text, truncate,
};
use crate::mail::{MessageError, Messages};
use crate::store::digests::DigestContent;
use crate::store::{Store, StoreError};

/// A post as typed by the author, before any of it is checked.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PostInput {
    #[schema(min_length = 1)]
    pub title: String,
    /// The post's address (`http` or `https`): the same URL again updates
    /// the post.
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: String,
    /// Plain text or HTML (reduced to text).
    #[serde(default)]
    pub summary: String,
    /// RFC 3339 (`2026-11-30T08:00:00Z`).
    #[schema(format = DateTime)]
    pub published_at: String,
    /// The lists the post belongs to.
    #[schema(value_type = Vec<ListSlug>, min_items = 1)]
    pub lists: Vec<String>,
}

/// A refused field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl ToString) -> Self {
        Self { field, message: message.to_string() }
    }
}

/// One of the configured lists, or a refusal naming `field`.
pub fn known_list(settings: &Settings, field: &'static str, slug: &str) -> Result<ListSlug, FieldError> {
    settings.lists.iter().find(|l| l.slug.as_str() == slug).map(|l| l.slug.clone()).ok_or_else(|| {
        let shown: String = slug.chars().take(64).collect();
        let known: Vec<_> = settings.lists.iter().map(|l| l.slug.as_str()).collect();
        FieldError::new(field, format!("there is no list called {shown:?}; the lists are {}", known.join(", ")))
    })
}

pub fn parse_post(input: &PostInput, settings: &Settings) -> Result<NewPost, FieldError> {
    let title = PostTitle::parse(&input.title).map_err(|e| FieldError::new("title", e))?;
    let url = PostUrl::parse(&input.url).map_err(|e| FieldError::new("url", e))?;
    let published_at = parse_published_at(&input.published_at).map_err(|e| FieldError::new("published_at", e))?;
    if input.lists.is_empty() {
        return Err(FieldError::new("lists", "name at least one list"));
    }
    let lists = input.lists.iter().map(|s| known_list(settings, "lists", s)).collect::<Result<Vec<_>, _>>()?;
    Ok(NewPost {
        title,
        url,
        summary: truncate(&plain_text(&input.summary), MAX_SUMMARY),
        published_at: Some(published_at),
        lists,
    })
}

/// A digest subject the author typed: one line, 1–200 characters.
pub fn parse_subject(s: &str) -> Result<String, FieldError> {
    if s.chars().any(char::is_control) {
        return Err(FieldError::new("subject", "a subject is one line of 1-200 characters"));
    }
    // Invisible and direction-changing characters would make the subject
    // read other than it shows: they are dropped, like in post titles.
    let s = crate::domain::shown_only(s.trim());
    if s.is_empty() || s.chars().count() > 200 {
        return Err(FieldError::new("subject", "a subject is one line of 1-200 characters"));
    }
    Ok(s)
}

#[derive(Debug)]
pub enum Preview {
    Html(String),
    NoNewPosts,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] MessageError),
}

/// The HTML a reader of `list` would get if its digest were sent now.
pub async fn preview(store: &Store, messages: &Messages, list: ListSlug) -> Result<Preview, PreviewError> {
    let Some((list, posts)) = store.unsent_posts(list).await? else {
        return Ok(Preview::NoNewPosts);
    };
    let Some(newest) = posts.first() else {
        return Ok(Preview::NoNewPosts);
    };
    let content = DigestContent { id: 0, subject: digest_subject(&list.name, &newest.title, posts.len()), list, posts };
    Ok(Preview::Html(messages.preview_digest(&content)?))
}

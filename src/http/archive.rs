//! The public archive: each list's sent digests as web pages and as an Atom
//! feed. A list with `archive = false` has none (404). Nothing here names a
//! reader: the pages are built from the digest's posts, not from anyone's copy.

use actix_web::http::StatusCode;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use atom_syndication::{Entry, Feed, FixedDateTime, Link, Person, Text};
use chrono::{NaiveDateTime, TimeZone, Utc};

use super::AppState;
use super::endpoint::endpoint;
use super::error::ApiError;
use crate::config::ListSettings;

/// How many digests an archive page and its feed show.
const ARCHIVE_PAGE: i64 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/archive").get(index).done())
        .service(endpoint("/archive/{slug}").get(list).done())
        .service(endpoint("/archive/{slug}/feed.xml").get(feed).done())
        .service(endpoint("/archive/{slug}/{id}").get(digest).done());
}

fn archived_list<'a>(state: &'a AppState, slug: &str) -> Option<&'a ListSettings> {
    state.settings.lists.iter().find(|l| l.slug.as_str() == slug && l.archive)
}

fn no_archive(state: &AppState) -> HttpResponse {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "No such archive page",
        &["This newsletter has no public archive, or nothing was sent at this address."],
        Some(("/archive", "See the archive")),
    )
}

async fn index(state: web::Data<AppState>) -> HttpResponse {
    let lists: Vec<&ListSettings> = state.settings.lists.iter().filter(|l| l.archive).collect();
    state.pages.archive_index(&lists)
}

async fn list(slug: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(list) = archived_list(&state, &slug) else { return Ok(no_archive(&state)) };
    let digests = state.store.archived_digests(slug.into_inner(), ARCHIVE_PAGE).await?;
    Ok(state.pages.archive_list(list, &digests))
}

async fn digest(path: web::Path<(String, String)>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (slug, id) = path.into_inner();
    let (Some(_), Ok(id)) = (archived_list(&state, &slug), id.parse::<i64>()) else { return Ok(no_archive(&state)) };
    let Some((content, sent_at)) = state.store.archived_digest(slug, id).await? else { return Ok(no_archive(&state)) };
    Ok(state.pages.archive_digest(&content, sent_at))
}

fn utc(at: NaiveDateTime) -> FixedDateTime {
    Utc.from_utc_datetime(&at).fixed_offset()
}

fn link(href: String, rel: &str) -> Link {
    Link { href, rel: rel.into(), ..Link::default() }
}

/// `GET /archive/{slug}/feed.xml`: the sent digests as Atom entries, each
/// linking its archive page and holding its posts' titles.
async fn feed(slug: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(list) = archived_list(&state, &slug) else { return Ok(no_archive(&state)) };
    let base = state.settings.base_url.as_str().trim_end_matches('/');
    let slug = slug.into_inner();
    let digests = state.store.archived_digests(slug.clone(), ARCHIVE_PAGE).await?;
    let mut entries = Vec::with_capacity(digests.len());
    for d in &digests {
        let page = format!("{base}/archive/{slug}/{}", d.id);
        entries.push(Entry {
            id: page.clone(),
            title: Text::plain(d.subject.clone()),
            updated: utc(d.sent_at),
            published: Some(utc(d.sent_at)),
            links: vec![link(page, "alternate")],
            ..Entry::default()
        });
    }
    let feed = Feed {
        id: format!("{base}/archive/{slug}"),
        title: Text::plain(format!("{}: archive", list.name)),
        subtitle: (!list.description.is_empty()).then(|| Text::plain(list.description.clone())),
        updated: digests.first().map_or_else(|| Utc::now().fixed_offset(), |d| utc(d.sent_at)),
        authors: vec![Person { name: list.name.clone(), ..Person::default() }],
        links: vec![
            link(format!("{base}/archive/{slug}/feed.xml"), "self"),
            link(format!("{base}/archive/{slug}"), "alternate"),
        ],
        entries,
        ..Feed::default()
    };
    Ok(HttpResponse::Ok()
        .content_type("application/atom+xml; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .body(feed.to_string()))
}

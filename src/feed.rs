//! Posts from the blog's RSS or Atom feeds: fetch (guarded against SSRF),
//! parse with feed-rs, and upsert as posts of a list, idempotently.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use url::{Host, Url};

use crate::config::{ListSettings, Settings};
use crate::domain::{ListSlug, MAX_SUMMARY, NewPost, PostTitle, PostUrl, plain_text, truncate};
use crate::store::posts::{FirstPull, ListsMode, Upsert};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("list {0} has no feed_url configured")]
    NoFeed(String),
    #[error("no list called {0}")]
    UnknownList(String),
    #[error("feed host {0} is a private or loopback address (set feed_allow_private_hosts to allow)")]
    PrivateHost(String),
    #[error("could not fetch the feed: {0}")]
    Fetch(String),
    #[error("the feed did not arrive within the {0}-second limit")]
    TimedOut(u64),
    #[error(
        "the feed answered {status}, a redirect to {location}; redirects are not followed: set feed_url to the feed's final address"
    )]
    Redirected { status: u16, location: String },
    #[error("the feed is larger than {0} bytes")]
    TooLarge(u64),
    #[error("not an RSS or Atom feed: {0}")]
    Parse(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one feed import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = FeedReport)]
pub struct ImportReport {
    pub list: String,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Entries without a usable title or link.
    pub skipped: usize,
    /// Old posts of a feed's first pull, stored as already sent (published
    /// before `feed_first_lookback_days`): no digest mails them.
    pub already_sent: usize,
}

/// Reads a feed's entries as posts of `list`. Entries without a title or a
/// link are skipped; a missing date falls back to the entry's update time,
/// then to now; HTML in titles and summaries is reduced to text.
pub fn parse(bytes: &[u8], list: &ListSlug) -> Result<(Vec<NewPost>, usize), FeedError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| FeedError::Parse(e.to_string()))?;
    let mut skipped = 0;
    let mut posts = Vec::new();
    for entry in feed.entries {
        let link = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .or(entry.links.first())
            .and_then(|l| PostUrl::parse(&l.href).ok());
        // Feed titles often carry entities or markup (WordPress double-encodes).
        let title = entry.title.as_ref().and_then(|t| PostTitle::parse(&plain_text(&t.content)).ok());
        let (Some(url), Some(title)) = (link, title) else {
            skipped += 1;
            continue;
        };
        let summary_html = entry
            .summary
            .as_ref()
            .map(|s| s.content.clone())
            .or_else(|| entry.content.as_ref().and_then(|c| c.body.clone()))
            .unwrap_or_default();
        posts.push(NewPost {
            title,
            url,
            summary: truncate(&plain_text(&summary_html), MAX_SUMMARY),
            published_at: entry.published.or(entry.updated),
            lists: vec![list.clone()],
        });
    }
    Ok((posts, skipped))
}

/// Imports a feed's entries as posts of `list`. On the list's first import,
/// entries published more than `lookback` ago are stored as already sent;
/// `None` counts every entry as new.
pub async fn import(
    store: &Store,
    list: &ListSlug,
    bytes: &[u8],
    lookback: Option<chrono::Duration>,
) -> Result<ImportReport, FeedError> {
    let (posts, skipped) = parse(bytes, list)?;
    let first = lookback.map(|d| FirstPull { cutoff: chrono::Utc::now().naive_utc() - d });
    let done = store.upsert_feed_posts(posts, ListsMode::Add, first).await?;
    let mut report =
        ImportReport { list: list.to_string(), skipped, already_sent: done.sent_before, ..Default::default() };
    for outcome in done.outcomes {
        match outcome {
            Upsert::Created(_) => report.created += 1,
            Upsert::Updated(_) => report.updated += 1,
            Upsert::Unchanged(_) => report.unchanged += 1,
        }
    }
    Ok(report)
}

/// Pulls the configured feed of one list, or of every list that has one.
pub async fn pull(store: &Store, settings: &Settings, only: Option<&str>) -> Result<Vec<ImportReport>, FeedError> {
    let lists: Vec<&ListSettings> = match only {
        Some(slug) => {
            let list = settings
                .lists
                .iter()
                .find(|l| l.slug.as_str() == slug)
                .ok_or_else(|| FeedError::UnknownList(slug.to_owned()))?;
            if list.feed_url.is_none() {
                return Err(FeedError::NoFeed(slug.to_owned()));
            }
            vec![list]
        }
        None => settings.lists.iter().filter(|l| l.feed_url.is_some()).collect(),
    };
    let mut reports = Vec::new();
    for list in lists {
        let Some(url) = &list.feed_url else { continue };
        let bytes = fetch(url, settings).await?;
        let report = import(store, &list.slug, &bytes, Some(settings.feed_first_lookback())).await?;
        tracing::info!(list = %list.slug, created = report.created, updated = report.updated, "feed pulled");
        reports.push(report);
    }
    Ok(reports)
}

/// Fetches only the configured URL, from an address checked before the
/// connection (and pinned, so DNS cannot change its answer in between),
/// within a time and a size limit.
async fn fetch(url: &Url, settings: &Settings) -> Result<Vec<u8>, FeedError> {
    let port = url.port_or_known_default().unwrap_or(80);
    // An IP literal is its own address; `host_str` would keep an IPv6
    // literal's brackets, which no resolver knows.
    let (host, addrs): (String, Vec<SocketAddr>) = match url.host() {
        Some(Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Some(Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Some(Host::Domain(name)) => {
            let found = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| FeedError::Fetch(format!("cannot resolve {name}: {e}")))?
                .collect();
            (name.to_owned(), found)
        }
        None => return Err(FeedError::Fetch("the feed URL has no host".into())),
    };
    let addr = *addrs.first().ok_or_else(|| FeedError::Fetch(format!("{host} has no address")))?;
    if !settings.feed_allow_private_hosts && addrs.iter().any(|a| is_private(a.ip())) {
        return Err(FeedError::PrivateHost(host));
    }
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.feed_timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Tidings/", env!("CARGO_PKG_VERSION")));
    if matches!(url.host(), Some(Host::Domain(_))) {
        client = client.resolve(&host, addr);
    }
    let client = client.build().map_err(|e| FeedError::Fetch(e.to_string()))?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fetch_error(e, settings))?;
    if response.status().is_redirection() {
        return Err(FeedError::Redirected {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map_or_else(|| "no address given".to_owned(), |l| l.chars().take(300).collect()),
        });
    }
    let limit = settings.feed_max_bytes;
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(FeedError::TooLarge(limit));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fetch_error(e, settings))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(FeedError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn fetch_error(e: reqwest::Error, settings: &Settings) -> FeedError {
    if e.is_timeout() {
        FeedError::TimedOut(settings.feed_timeout_secs)
    } else {
        FeedError::Fetch(e.without_url().to_string())
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}

//! Blog posts, each in one or more lists.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{lists, post_lists, posts};
use super::{Store, StoreResult};
use crate::domain::{ListSlug, NewPost};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PostRow {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub summary: String,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub published_at: NaiveDateTime,
    pub lists: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created(i64),
    Updated(i64),
    Unchanged(i64),
}

/// What to do with a known post's lists: the API replaces them, a feed adds
/// its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListsMode {
    Replace,
    Add,
}

/// A feed's first pull: posts published before `cutoff` go into a list that
/// had no posts yet as already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstPull {
    pub cutoff: NaiveDateTime,
}

/// What a batch of upserts did, and how many posts it stored as sent before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    pub outcomes: Vec<Upsert>,
    pub sent_before: usize,
}

per_backend! {
    pub(crate) fn upsert_all(
        c: &mut Conn,
        new: &[NewPost],
        mode: ListsMode,
        first: Option<FirstPull>,
    ) -> QueryResult<Upserted> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            // Lists that have no posts yet: this is their feed's first pull.
            let mut empty: Vec<i64> = Vec::new();
            if first.is_some() {
                let slugs: Vec<&str> = new.iter().flat_map(|p| p.lists.iter().map(ListSlug::as_str)).collect();
                let ids: Vec<i64> = lists::table.filter(lists::slug.eq_any(&slugs)).select(lists::id).load(c)?;
                for id in ids {
                    let any: i64 = post_lists::table.filter(post_lists::list_id.eq(id)).count().get_result(c)?;
                    if any == 0 {
                        empty.push(id);
                    }
                }
            }
            let old_before = first.map(|f| f.cutoff).filter(|_| !empty.is_empty());
            let mut done = Upserted::default();
            for post in new {
                let (outcome, sent_before) = upsert_one(c, post, mode, now, old_before.map(|t| (t, &empty[..])))?;
                done.outcomes.push(outcome);
                done.sent_before += sent_before;
            }
            Ok(done)
        })
    }

    /// One post; `first`: its old posts' place in lists on their first pull.
    fn upsert_one(
        c: &mut Conn,
        post: &NewPost,
        mode: ListsMode,
        now: NaiveDateTime,
        first: Option<(NaiveDateTime, &[i64])>,
    ) -> QueryResult<(Upsert, usize)> {
        let list_ids: Vec<i64> = lists::table
            .filter(lists::slug.eq_any(post.lists.iter().map(ListSlug::as_str)))
            .select(lists::id)
            .load(c)?;
        let published = post.published_at.map(|t| t.naive_utc());
        let existing: Option<(i64, String, String, NaiveDateTime)> = posts::table
            .filter(posts::url.eq(post.url.as_str()))
            .select((posts::id, posts::title, posts::summary, posts::published_at))
            .first(c)
            .optional()?;
        let (id, mut outcome) = match existing {
            None => {
                let id = diesel::insert_into(posts::table)
                    .values((
                        posts::url.eq(post.url.as_str()),
                        posts::title.eq(post.title.as_str()),
                        posts::summary.eq(&post.summary),
                        posts::published_at.eq(published.unwrap_or(now)),
                        posts::created_at.eq(now),
                        posts::updated_at.eq(now),
                    ))
                    .returning(posts::id)
                    .get_result(c)?;
                (id, Upsert::Created(id))
            }
            Some((id, title, summary, at)) if title == post.title.as_str() && summary == post.summary && published.is_none_or(|p| p == at) => {
                (id, Upsert::Unchanged(id))
            }
            Some((id, _, _, at)) => {
                diesel::update(posts::table.find(id))
                    .set((
                        posts::title.eq(post.title.as_str()),
                        posts::summary.eq(&post.summary),
                        posts::published_at.eq(published.unwrap_or(at)),
                        posts::updated_at.eq(now),
                    ))
                    .execute(c)?;
                (id, Upsert::Updated(id))
            }
        };
        let current: Vec<i64> = post_lists::table
            .filter(post_lists::post_id.eq(id))
            .select(post_lists::list_id)
            .load(c)?;
        if mode == ListsMode::Replace {
            let dropped = diesel::delete(
                post_lists::table
                    .filter(post_lists::post_id.eq(id))
                    .filter(post_lists::list_id.ne_all(&list_ids)),
            )
            .execute(c)?;
            if dropped > 0 && outcome == Upsert::Unchanged(id) {
                outcome = Upsert::Updated(id);
            }
        }
        let published_at = published.unwrap_or(now);
        let mut sent_before = 0;
        let added: Vec<_> = list_ids
            .iter()
            .filter(|l| !current.contains(l))
            .map(|&l| {
                let old = first.is_some_and(|(cutoff, empty)| published_at < cutoff && empty.contains(&l));
                sent_before += usize::from(old);
                (post_lists::post_id.eq(id), post_lists::list_id.eq(l), post_lists::sent_before.eq(old))
            })
            .collect();
        if !added.is_empty() {
            diesel::insert_into(post_lists::table).values(&added).execute(c)?;
            if outcome == Upsert::Unchanged(id) {
                outcome = Upsert::Updated(id);
            }
        }
        Ok((outcome, sent_before))
    }

    /// Posts, newest first; of one list when `list` is given.
    pub(crate) fn list(c: &mut Conn, list: Option<&str>, limit: i64) -> QueryResult<Vec<PostRow>> {
        let mut query = posts::table
            .select((posts::id, posts::url, posts::title, posts::summary, posts::published_at))
            .order((posts::published_at.desc(), posts::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(slug) = list {
            let in_list = post_lists::table
                .inner_join(lists::table)
                .filter(lists::slug.eq(slug.to_owned()))
                .select(post_lists::post_id);
            query = query.filter(posts::id.eq_any(in_list));
        }
        let rows: Vec<(i64, String, String, String, NaiveDateTime)> = query.load(c)?;
        with_lists(c, rows)
    }

    pub(crate) fn with_lists(
        c: &mut Conn,
        rows: Vec<(i64, String, String, String, NaiveDateTime)>,
    ) -> QueryResult<Vec<PostRow>> {
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let memberships: Vec<(i64, String)> = post_lists::table
            .inner_join(lists::table)
            .filter(post_lists::post_id.eq_any(&ids))
            .select((post_lists::post_id, lists::slug))
            .order(lists::id)
            .load(c)?;
        Ok(rows
            .into_iter()
            .map(|(id, url, title, summary, published_at)| PostRow {
                lists: memberships.iter().filter(|(p, _)| *p == id).map(|(_, s)| s.clone()).collect(),
                id,
                url,
                title,
                summary,
                published_at,
            })
            .collect())
    }
}

impl Store {
    pub async fn upsert_posts(&self, new: Vec<NewPost>, mode: ListsMode) -> StoreResult<Vec<Upsert>> {
        Ok(self.upsert_feed_posts(new, mode, None).await?.outcomes)
    }

    /// As `upsert_posts`, for a feed: on a list's first pull (`first`),
    /// posts published before its cutoff are stored as already sent.
    pub async fn upsert_feed_posts(
        &self,
        new: Vec<NewPost>,
        mode: ListsMode,
        first: Option<FirstPull>,
    ) -> StoreResult<Upserted> {
        self.write(move |conn| {
            Ok(super::again_on_unique_violation(conn, |c| on_backend!(c, self::upsert_all(&new, mode, first)))?)
        })
        .await
    }

    pub async fn posts(&self, list: Option<String>, limit: i64) -> StoreResult<Vec<PostRow>> {
        self.read(move |conn| Ok(on_backend!(conn, self::list(list.as_deref(), limit))?)).await
    }
}

//! The public archive: digests that went out to a list, as anyone may read
//! them (no reader's name, no token).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::digests::DigestContent;
use super::schema::{digests, lists};
use super::{Store, StoreResult};
use crate::domain::DigestState;

/// One sent digest in a list's archive.
#[derive(Debug, Clone)]
pub struct ArchivedDigest {
    pub id: i64,
    pub subject: String,
    pub sent_at: NaiveDateTime,
}

per_backend! {
    /// A list's sent digests, newest first.
    pub(crate) fn archived(c: &mut Conn, slug: &str, limit: i64) -> QueryResult<Vec<ArchivedDigest>> {
        let rows: Vec<(i64, String, Option<NaiveDateTime>, NaiveDateTime)> = digests::table
            .inner_join(lists::table)
            .filter(lists::slug.eq(slug))
            .filter(digests::status.eq(DigestState::Sent.as_str()))
            .select((digests::id, digests::subject, digests::finished_at, digests::created_at))
            .order(digests::id.desc())
            .limit(limit)
            .load(c)?;
        Ok(rows
            .into_iter()
            .map(|(id, subject, finished, created)| ArchivedDigest { id, subject, sent_at: finished.unwrap_or(created) })
            .collect())
    }

    /// One sent digest of the list `slug`, or `None` (unknown, another
    /// list's, or not sent).
    pub(crate) fn archived_one(c: &mut Conn, slug: &str, id: i64) -> QueryResult<Option<(DigestContent, NaiveDateTime)>> {
        let found: Option<(Option<NaiveDateTime>, NaiveDateTime)> = digests::table
            .inner_join(lists::table)
            .filter(lists::slug.eq(slug))
            .filter(digests::id.eq(id))
            .filter(digests::status.eq(DigestState::Sent.as_str()))
            .select((digests::finished_at, digests::created_at))
            .first(c)
            .optional()?;
        let Some((finished, created)) = found else { return Ok(None) };
        Ok(digests_sql::content(c, id)?.map(|content| (content, finished.unwrap_or(created))))
    }
}

impl Store {
    pub async fn archived_digests(&self, slug: String, limit: i64) -> StoreResult<Vec<ArchivedDigest>> {
        self.read(move |conn| Ok(on_backend!(conn, self::archived(&slug, limit))?)).await
    }

    pub async fn archived_digest(&self, slug: String, id: i64) -> StoreResult<Option<(DigestContent, NaiveDateTime)>> {
        self.read(move |conn| Ok(on_backend!(conn, self::archived_one(&slug, id))?)).await
    }
}

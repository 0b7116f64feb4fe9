//! Transactional mail (confirmations, welcomes, "manage" links) waiting to
//! be sent. Rows are written in
//! the same transaction as the change that causes them and claimed with a
//! lease: a sender that dies leaves its rows to be claimed again.

use std::collections::HashMap;

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::posts::PostRow;
use super::schema::{confirmation_token_lists, confirmation_tokens, lists, outbox, subscribers, subscriptions};
use super::{Store, StoreResult, preferences, signups};
use crate::domain::SubscriptionStatus;

#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: i64,
    pub attempts: i32,
    pub email: String,
    pub mail: OutboxMail,
}

/// What an outbox row sends.
#[derive(Debug, Clone)]
pub enum OutboxMail {
    Confirmation(ConfirmationJob),
    Welcome(WelcomeJob),
    Manage(ManageJob),
    /// A row whose reader, list or token is gone, or of a kind this version
    /// does not know: failed with this reason.
    Unsendable(&'static str),
}

/// A welcome to one list: its latest posts and the reader's link.
#[derive(Debug, Clone)]
pub struct WelcomeJob {
    pub list: JobList,
    pub name: Option<String>,
    pub posts: Vec<PostRow>,
}

/// A link to the reader's preference page, with their current lists.
#[derive(Debug, Clone)]
pub struct ManageJob {
    pub unsubscribe_id: String,
    pub lists: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ConfirmationJob {
    pub token_public_id: String,
    pub lists: Vec<JobList>,
}

#[derive(Debug, Clone)]
pub struct JobList {
    pub name: String,
    pub slug: String,
    pub unsubscribe_id: String,
}

/// An outbox row as claimed, with its reader and confirmation token.
#[derive(Queryable)]
struct ClaimedRow {
    id: i64,
    kind: String,
    attempts: i32,
    subscriber_id: i64,
    email: String,
    name: Option<String>,
    list_id: Option<i64>,
    token_id: Option<i64>,
    token_public_id: Option<String>,
}

/// How many of a list's latest posts a welcome email shows.
const WELCOME_POSTS: i64 = 3;

per_backend! {
    pub(crate) fn claim(c: &mut Conn, limit: i64, lease: chrono::Duration) -> QueryResult<Vec<OutboxJob>> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let ids = due_outbox_ids(c, now, limit)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                .set(outbox::next_attempt_at.eq(now + lease))
                .execute(c)?;
            let rows: Vec<ClaimedRow> = outbox::table
                .inner_join(subscribers::table)
                .left_join(confirmation_tokens::table)
                .filter(outbox::id.eq_any(&ids))
                .select((
                    outbox::id,
                    outbox::kind,
                    outbox::attempts,
                    outbox::subscriber_id,
                    subscribers::email,
                    subscribers::name,
                    outbox::list_id,
                    outbox::token_id,
                    confirmation_tokens::public_id.nullable(),
                ))
                .order(outbox::id)
                .load(c)?;
            let token_ids: Vec<i64> = rows.iter().filter_map(|r| r.token_id).collect();
            let mut lists: HashMap<i64, Vec<JobList>> = HashMap::new();
            for (token_id, list) in token_lists(c, &token_ids)? {
                lists.entry(token_id).or_default().push(list);
            }
            let mut jobs = Vec::with_capacity(rows.len());
            for row in rows {
                let mail = match (row.kind.as_str(), row.token_id.zip(row.token_public_id)) {
                    (signups::CONFIRMATION_KIND, Some((token_id, token_public_id))) => {
                        OutboxMail::Confirmation(ConfirmationJob {
                            token_public_id,
                            lists: lists.remove(&token_id).unwrap_or_default(),
                        })
                    }
                    (signups::CONFIRMATION_KIND, None) => OutboxMail::Unsendable("its confirmation token is gone"),
                    (preferences::WELCOME_KIND, _) => welcome(c, row.subscriber_id, row.list_id, row.name)?,
                    (preferences::MANAGE_KIND, _) => manage(c, row.subscriber_id)?,
                    _ => OutboxMail::Unsendable("unknown outbox kind"),
                };
                jobs.push(OutboxJob { id: row.id, attempts: row.attempts, email: row.email, mail });
            }
            Ok(jobs)
        })
    }

    /// A welcome still worth sending: the reader is still on the list.
    fn welcome(c: &mut Conn, subscriber_id: i64, list_id: Option<i64>, name: Option<String>) -> QueryResult<OutboxMail> {
        let Some(list_id) = list_id else { return Ok(OutboxMail::Unsendable("a welcome without a list")) };
        let found: Option<(String, String, String)> = subscriptions::table
            .inner_join(lists::table)
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::list_id.eq(list_id))
            .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()))
            .select((lists::name, lists::slug, subscriptions::unsubscribe_id))
            .first(c)
            .optional()?;
        let Some((list_name, slug, unsubscribe_id)) = found else {
            return Ok(OutboxMail::Unsendable("the reader left the list before the welcome went out"));
        };
        let posts = posts_sql::list(c, Some(&slug), WELCOME_POSTS)?;
        Ok(OutboxMail::Welcome(WelcomeJob { list: JobList { name: list_name, slug, unsubscribe_id }, name, posts }))
    }

    fn manage(c: &mut Conn, subscriber_id: i64) -> QueryResult<OutboxMail> {
        let theirs: Vec<(String, String, String)> = subscriptions::table
            .inner_join(lists::table)
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .select((subscriptions::unsubscribe_id, subscriptions::status, lists::name))
            .order(lists::id)
            .load(c)?;
        let Some((unsubscribe_id, ..)) = theirs.first().cloned() else {
            return Ok(OutboxMail::Unsendable("the reader has no subscriptions left"));
        };
        let lists = theirs
            .into_iter()
            .filter(|(_, status, _)| status == SubscriptionStatus::Confirmed.as_str())
            .map(|(.., name)| name)
            .collect();
        Ok(OutboxMail::Manage(ManageJob { unsubscribe_id, lists }))
    }

    /// The lists each confirmation token covers, with the reader's
    /// unsubscribe ids, in list order within a token.
    fn token_lists(c: &mut Conn, token_ids: &[i64]) -> QueryResult<Vec<(i64, JobList)>> {
        if token_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(confirmation_token_lists::table
            .inner_join(confirmation_tokens::table)
            .inner_join(lists::table)
            .inner_join(
                subscriptions::table.on(subscriptions::list_id
                    .eq(confirmation_token_lists::list_id)
                    .and(subscriptions::subscriber_id.eq(confirmation_tokens::subscriber_id))),
            )
            .filter(confirmation_token_lists::token_id.eq_any(token_ids))
            .select((confirmation_token_lists::token_id, lists::name, lists::slug, subscriptions::unsubscribe_id))
            .order((confirmation_token_lists::token_id, lists::id))
            .load::<(i64, String, String, String)>(c)?
            .into_iter()
            .map(|(token_id, name, slug, unsubscribe_id)| (token_id, JobList { name, slug, unsubscribe_id }))
            .collect())
    }

    pub(crate) fn mark_sent(c: &mut Conn, ids: &[i64]) -> QueryResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .set((
                outbox::status.eq("sent"),
                outbox::sent_at.eq(Utc::now().naive_utc()),
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(None::<String>),
            ))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn mark_retry(c: &mut Conn, id: i64, next: NaiveDateTime, error: &str) -> QueryResult<()> {
        diesel::update(outbox::table.find(id))
            .set((
                outbox::next_attempt_at.eq(next),
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(error),
            ))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn mark_failed(c: &mut Conn, id: i64, error: &str) -> QueryResult<()> {
        diesel::update(outbox::table.find(id))
            .set((
                outbox::status.eq("failed"),
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(error),
            ))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn record(c: &mut Conn, results: &[(i64, OutboxResult)]) -> QueryResult<()> {
        write_tx(c, |c| {
            let sent: Vec<i64> =
                results.iter().filter(|(_, r)| matches!(r, OutboxResult::Sent)).map(|(id, _)| *id).collect();
            mark_sent(c, &sent)?;
            for (id, result) in results {
                match result {
                    OutboxResult::Sent => {}
                    OutboxResult::Retry { at, error } => mark_retry(c, *id, *at, error)?,
                    OutboxResult::Failed { error } => mark_failed(c, *id, error)?,
                    OutboxResult::Released => release(c, *id)?,
                }
            }
            Ok(())
        })
    }

    /// A row not attempted goes back, due at once.
    fn release(c: &mut Conn, id: i64) -> QueryResult<()> {
        diesel::update(outbox::table.find(id))
            .set(outbox::next_attempt_at.eq(Utc::now().naive_utc()))
            .execute(c)
            .map(drop)
    }

    /// Extends the lease (the due time) of claimed rows still being sent.
    pub(crate) fn renew(c: &mut Conn, ids: &[i64], lease: chrono::Duration) -> QueryResult<()> {
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .filter(outbox::status.eq("pending"))
            .set(outbox::next_attempt_at.eq(Utc::now().naive_utc() + lease))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn pending_count(c: &mut Conn) -> QueryResult<i64> {
        outbox::table.filter(outbox::status.eq("pending")).count().get_result(c)
    }
}

/// How a send attempt ended, as the outbox records it.
#[derive(Debug, Clone)]
pub enum OutboxResult {
    Sent,
    Retry {
        at: NaiveDateTime,
        error: String,
    },
    Failed {
        error: String,
    },
    /// Not attempted (its lease ran out before it could be sent): due again.
    Released,
}

impl Store {
    /// Claims up to `limit` due rows for `lease`; unclaimed again afterwards
    /// unless marked.
    pub async fn claim_outbox(&self, limit: i64, lease: chrono::Duration) -> StoreResult<Vec<OutboxJob>> {
        self.write(move |conn| Ok(on_backend!(conn, self::claim(limit, lease))?)).await
    }

    /// Records a round of send results in one transaction.
    pub async fn record_outbox(&self, results: Vec<(i64, OutboxResult)>) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::record(&results))?)).await
    }

    pub async fn renew_outbox_leases(&self, ids: Vec<i64>, lease: chrono::Duration) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::renew(&ids, lease))?)).await
    }

    pub async fn outbox_pending(&self) -> StoreResult<i64> {
        self.read(|conn| Ok(on_backend!(conn, self::pending_count())?)).await
    }
}

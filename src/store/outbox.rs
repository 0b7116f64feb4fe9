//! Transactional mail (confirmations) waiting to be sent. Rows are written in
//! the same transaction as the change that causes them and claimed with a
//! lease: a sender that dies leaves its rows to be claimed again.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{confirmation_token_lists, confirmation_tokens, lists, outbox, subscribers, subscriptions};
use super::{Store, StoreResult};

#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: i64,
    pub attempts: i32,
    pub email: String,
    pub confirmation: Option<ConfirmationJob>,
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
            let rows: Vec<(i64, i32, i64, String, Option<i64>)> = outbox::table
                .inner_join(subscribers::table)
                .filter(outbox::id.eq_any(&ids))
                .select((outbox::id, outbox::attempts, subscribers::id, subscribers::email, outbox::token_id))
                .order(outbox::id)
                .load(c)?;
            rows.into_iter()
                .map(|(id, attempts, subscriber_id, email, token_id)| {
                    let confirmation = token_id.map(|t| confirmation_job(c, subscriber_id, t)).transpose()?;
                    Ok(OutboxJob { id, attempts, email, confirmation })
                })
                .collect()
        })
    }

    fn confirmation_job(c: &mut Conn, subscriber_id: i64, token_id: i64) -> QueryResult<ConfirmationJob> {
        let token_public_id = confirmation_tokens::table
            .find(token_id)
            .select(confirmation_tokens::public_id)
            .first(c)?;
        let lists = confirmation_token_lists::table
            .inner_join(lists::table)
            .inner_join(
                subscriptions::table.on(subscriptions::list_id
                    .eq(confirmation_token_lists::list_id)
                    .and(subscriptions::subscriber_id.eq(subscriber_id))),
            )
            .filter(confirmation_token_lists::token_id.eq(token_id))
            .select((lists::name, lists::slug, subscriptions::unsubscribe_id))
            .order(lists::id)
            .load::<(String, String, String)>(c)?
            .into_iter()
            .map(|(name, slug, unsubscribe_id)| JobList { name, slug, unsubscribe_id })
            .collect();
        Ok(ConfirmationJob { token_public_id, lists })
    }

    pub(crate) fn mark_sent(c: &mut Conn, id: i64) -> QueryResult<()> {
        diesel::update(outbox::table.find(id))
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
            for (id, result) in results {
                match result {
                    OutboxResult::Sent => mark_sent(c, *id)?,
                    OutboxResult::Retry { at, error } => mark_retry(c, *id, *at, error)?,
                    OutboxResult::Failed { error } => mark_failed(c, *id, error)?,
                }
            }
            Ok(())
        })
    }

    pub(crate) fn pending_count(c: &mut Conn) -> QueryResult<i64> {
        outbox::table.filter(outbox::status.eq("pending")).count().get_result(c)
    }
}

/// How a send attempt ended, as the outbox records it.
#[derive(Debug, Clone)]
pub enum OutboxResult {
    Sent,
    Retry { at: NaiveDateTime, error: String },
    Failed { error: String },
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

    pub async fn outbox_pending(&self) -> StoreResult<i64> {
        self.read(|conn| Ok(on_backend!(conn, self::pending_count())?)).await
    }
}

//! Digests and their deliveries: one row per recipient, fixed at trigger
//! time, claimed in batches with a lease, recorded in batches.

use chrono::{NaiveDateTime, Utc};
use diesel::dsl::{count_star, not};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde::Serialize;

use super::lists::ListRow;
use super::posts::PostRow;
use super::schema::{deliveries, digest_posts, digests, lists, post_lists, posts, subscribers, subscriptions};
use super::{Store, StoreResult};
use crate::domain::{ListSlug, SubscriptionStatus, digest_subject};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DigestSummary {
    pub id: i64,
    pub list: String,
    pub posts: i64,
    pub recipients: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOutcome {
    Created(DigestSummary),
    /// The `Idempotency-Key` was seen before: the first answer again.
    Replayed(DigestSummary),
    NoNewPosts,
    UnknownList,
    /// The key was used before for another list.
    KeyReused,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DigestStatus {
    pub id: i64,
    pub list: String,
    pub subject: String,
    pub status: String,
    pub recipients: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub pending: i64,
    /// Pending deliveries that failed at least once and wait for a retry.
    pub retrying: i64,
    /// The most recent error of a pending delivery, while there is one.
    pub last_error: Option<String>,
    #[serde(serialize_with = "super::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "super::utc_opt")]
    pub finished_at: Option<NaiveDateTime>,
}

impl DigestStatus {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "sent" | "failed")
    }
}

/// What the digest email shows: its list and posts.
#[derive(Debug, Clone)]
pub struct DigestContent {
    pub id: i64,
    pub list: ListRow,
    pub subject: String,
    pub posts: Vec<PostRow>,
}

/// One recipient's message to send.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub id: i64,
    pub digest_id: i64,
    pub attempts: i32,
    pub email: String,
    pub name: Option<String>,
    pub unsubscribe_id: String,
    /// False when the reader left or bounced after the digest was triggered.
    pub still_wanted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Sent,
    Skipped,
    Retry {
        at: NaiveDateTime,
        error: String,
    },
    /// `suppress`: the address bounced for good; send it nothing more.
    Failed {
        error: String,
        suppress: bool,
    },
}

type PostColumns = (i64, String, String, String, NaiveDateTime);
type StatusRow = (i64, String, String, String, Counts, NaiveDateTime, Option<NaiveDateTime>);
type ClaimRow = (i64, i64, i32, Option<String>, Option<String>, Option<String>, Option<String>, Option<NaiveDateTime>);
/// A digest's recipients and its sent, failed and skipped deliveries.
type Counts = (i64, i64, i64, i64);
const COUNTS: (digests::recipients, digests::sent_count, digests::failed_count, digests::skipped_count) =
    (digests::recipients, digests::sent_count, digests::failed_count, digests::skipped_count);

/// Deliveries one group of results moved out of `pending`.
#[derive(Debug, Default, Clone, Copy)]
struct Finished {
    sent: i64,
    failed: i64,
    skipped: i64,
}

per_backend! {
    pub(crate) fn trigger(
        c: &mut Conn,
        slug: &str,
        subject: Option<&str>,
        key: Option<&str>,
    ) -> QueryResult<TriggerOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            if let Some(key) = key {
                let seen: Option<(i64, String)> = digests::table
                    .inner_join(lists::table)
                    .filter(digests::idempotency_key.eq(key))
                    .select((digests::id, lists::slug))
                    .first(c)
                    .optional()?;
                if let Some((id, list)) = seen {
                    if list != slug {
                        return Ok(TriggerOutcome::KeyReused);
                    }
                    return Ok(TriggerOutcome::Replayed(summary(c, id)?));
                }
            }
            let list: Option<(i64, String)> = lists::table
                .filter(lists::slug.eq(slug))
                .select((lists::id, lists::name))
                .first(c)
                .optional()?;
            let Some((list_id, list_name)) = list else {
                return Ok(TriggerOutcome::UnknownList);
            };
            lock_list(c, list_id)?;
            let fresh: Vec<(i64, String)> = new_posts(c, list_id)?
                .into_iter()
                .map(|(id, _, title, _, _)| (id, title))
                .collect();
            let Some((_, newest)) = fresh.first() else {
                return Ok(TriggerOutcome::NoNewPosts);
            };
            let subject = subject.map_or_else(|| digest_subject(&list_name, newest, fresh.len()), str::to_owned);
            let id: i64 = diesel::insert_into(digests::table)
                .values((
                    digests::list_id.eq(list_id),
                    digests::subject.eq(&subject),
                    digests::status.eq("queued"),
                    digests::recipients.eq(0i64),
                    digests::idempotency_key.eq(key),
                    digests::created_at.eq(now),
                ))
                .returning(digests::id)
                .get_result(c)?;
            let included: Vec<_> = fresh
                .iter()
                .map(|(post, _)| (digest_posts::digest_id.eq(id), digest_posts::post_id.eq(post)))
                .collect();
            diesel::insert_into(digest_posts::table).values(&included).execute(c)?;
            // Every confirmed, deliverable reader at this moment, in one statement.
            let recipients = diesel::insert_into(deliveries::table)
                .values(
                    subscriptions::table
                        .inner_join(subscribers::table)
                        .filter(subscriptions::list_id.eq(list_id))
                        .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()))
                        .filter(subscribers::suppressed_at.is_null())
                        .select((
                            id.into_sql::<BigInt>(),
                            subscriptions::id,
                            "pending".into_sql::<Text>(),
                            now.into_sql::<Timestamp>(),
                        )),
                )
                .into_columns((
                    deliveries::digest_id,
                    deliveries::subscription_id,
                    deliveries::status,
                    deliveries::next_attempt_at,
                ))
                .execute(c)?;
            let recipients = recipients as i64;
            let finished = (recipients == 0).then_some(now);
            diesel::update(digests::table.find(id))
                .set((
                    digests::recipients.eq(recipients),
                    digests::status.eq(if recipients == 0 { "sent" } else { "queued" }),
                    digests::finished_at.eq(finished),
                ))
                .execute(c)?;
            Ok(TriggerOutcome::Created(DigestSummary {
                id,
                list: slug.to_owned(),
                posts: fresh.len() as i64,
                recipients,
            }))
        })
    }

    /// Posts of the list not in any earlier digest of that list, newest first.
    fn new_posts(c: &mut Conn, list_id: i64) -> QueryResult<Vec<PostColumns>> {
        let already_sent = digest_posts::table
            .inner_join(digests::table)
            .filter(digests::list_id.eq(list_id))
            .select(digest_posts::post_id);
        post_lists::table
            .inner_join(posts::table)
            .filter(post_lists::list_id.eq(list_id))
            .filter(not(post_lists::post_id.eq_any(already_sent)))
            .select((posts::id, posts::url, posts::title, posts::summary, posts::published_at))
            .order((posts::published_at.desc(), posts::id.desc()))
            .load(c)
    }

    fn summary(c: &mut Conn, id: i64) -> QueryResult<DigestSummary> {
        let (list, recipients): (String, i64) = digests::table
            .inner_join(lists::table)
            .filter(digests::id.eq(id))
            .select((lists::slug, digests::recipients))
            .first(c)?;
        let posts: i64 = digest_posts::table.filter(digest_posts::digest_id.eq(id)).count().get_result(c)?;
        Ok(DigestSummary { id, list, posts, recipients })
    }

    pub(crate) fn unsent(c: &mut Conn, slug: &str) -> QueryResult<Option<(ListRow, Vec<PostRow>)>> {
        let list: Option<ListRow> = lists::table
            .filter(lists::slug.eq(slug))
            .select((lists::id, lists::slug, lists::name, lists::description))
            .first(c)
            .optional()?;
        let Some(list) = list else { return Ok(None) };
        let rows = new_posts(c, list.id)?;
        let posts = posts_sql::with_lists(c, rows)?;
        Ok(Some((list, posts)))
    }

    pub(crate) fn content(c: &mut Conn, id: i64) -> QueryResult<Option<DigestContent>> {
        let found: Option<(String, ListRow)> = digests::table
            .inner_join(lists::table)
            .filter(digests::id.eq(id))
            .select((digests::subject, (lists::id, lists::slug, lists::name, lists::description)))
            .first(c)
            .optional()?;
        let Some((subject, list)) = found else { return Ok(None) };
        let rows: Vec<PostColumns> = digest_posts::table
            .inner_join(posts::table)
            .filter(digest_posts::digest_id.eq(id))
            .select((posts::id, posts::url, posts::title, posts::summary, posts::published_at))
            .order((posts::published_at.desc(), posts::id.desc()))
            .load(c)?;
        let posts = posts_sql::with_lists(c, rows)?;
        Ok(Some(DigestContent { id, list, subject, posts }))
    }

    pub(crate) fn statuses(c: &mut Conn, only: Option<i64>, limit: i64) -> QueryResult<Vec<DigestStatus>> {
        let mut query = digests::table
            .inner_join(lists::table)
            .select((
                digests::id,
                lists::slug,
                digests::subject,
                digests::status,
                COUNTS,
                digests::created_at,
                digests::finished_at,
            ))
            .order(digests::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(id) = only {
            query = query.filter(digests::id.eq(id));
        }
        let rows: Vec<StatusRow> = query.load(c)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        // Pending deliveries that failed at least once: few, and indexed
        // apart (`deliveries_retrying`).
        let retrying: Vec<(i64, i64)> = deliveries::table
            .filter(deliveries::digest_id.eq_any(&ids))
            .filter(deliveries::status.eq("pending"))
            .filter(deliveries::attempts.gt(0))
            .group_by(deliveries::digest_id)
            .select((deliveries::digest_id, count_star()))
            .load(c)?;
        let mut statuses = Vec::with_capacity(rows.len());
        for (id, list, subject, status, (recipients, sent, failed, skipped), created_at, finished_at) in rows {
            let retrying = retrying.iter().find(|r| r.0 == id).map_or(0, |r| r.1);
            let last_error = if retrying > 0 {
                deliveries::table
                    .filter(deliveries::digest_id.eq(id))
                    .filter(deliveries::status.eq("pending"))
                    .filter(deliveries::attempts.gt(0))
                    .filter(deliveries::last_error.is_not_null())
                    .select(deliveries::last_error)
                    .first::<Option<String>>(c)
                    .optional()?
                    .flatten()
            } else {
                None
            };
            statuses.push(DigestStatus {
                sent,
                failed,
                skipped,
                pending: recipients - sent - failed - skipped,
                retrying,
                last_error,
                id,
                list,
                subject,
                status,
                recipients,
                created_at,
                finished_at,
            });
        }
        Ok(statuses)
    }

    pub(crate) fn claim(c: &mut Conn, limit: i64, lease: chrono::Duration) -> QueryResult<Vec<DeliveryJob>> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            relaxed_commit(c)?;
            let ids = due_delivery_ids(c, now, limit)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&ids)))
                .set(deliveries::leased_until.eq(now + lease))
                .execute(c)?;
            let mut rows: Vec<ClaimRow> = deliveries::table
                .inner_join(subscriptions::table.inner_join(subscribers::table))
                .filter(deliveries::id.eq_any(&ids))
                .select((
                    deliveries::id,
                    deliveries::digest_id,
                    deliveries::attempts,
                    subscribers::email.nullable(),
                    subscribers::name,
                    subscriptions::unsubscribe_id.nullable(),
                    subscriptions::status.nullable(),
                    subscribers::suppressed_at,
                ))
                .order(deliveries::id)
                .load(c)?;
            if rows.len() < ids.len() {
                rows.extend(orphans(c, &ids, &rows)?);
            }
            let mut digest_ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
            digest_ids.sort_unstable();
            digest_ids.dedup();
            diesel::update(digests::table.filter(digests::id.eq_any(&digest_ids)))
                .filter(digests::status.eq("queued"))
                .set(digests::status.eq("sending"))
                .execute(c)?;
            Ok(rows
                .into_iter()
                .map(|(id, digest_id, attempts, email, name, unsubscribe_id, status, suppressed_at)| DeliveryJob {
                    id,
                    digest_id,
                    attempts,
                    email: email.unwrap_or_default(),
                    name,
                    unsubscribe_id: unsubscribe_id.unwrap_or_default(),
                    still_wanted: status.as_deref() == Some(SubscriptionStatus::Confirmed.as_str())
                        && suppressed_at.is_none(),
                })
                .collect())
        })
    }

    /// Claimed deliveries whose subscription is gone (on PostgreSQL no
    /// foreign key ties the two; see the migrations): they come back with no
    /// reader, to be skipped rather than claimed again at every lease's end.
    /// A second query, not a left join: SQLite plans a left join onto the
    /// subscription-reader join as a pass over every subscription.
    fn orphans(c: &mut Conn, ids: &[i64], found: &[ClaimRow]) -> QueryResult<Vec<ClaimRow>> {
        let found: std::collections::HashSet<i64> = found.iter().map(|r| r.0).collect();
        let missing: Vec<i64> = ids.iter().copied().filter(|id| !found.contains(id)).collect();
        let rows: Vec<(i64, i64, i32)> = deliveries::table
            .filter(deliveries::id.eq_any(&missing))
            .select((deliveries::id, deliveries::digest_id, deliveries::attempts))
            .load(c)?;
        Ok(rows.into_iter().map(|(id, digest, attempts)| (id, digest, attempts, None, None, None, None, None)).collect())
    }

    pub(crate) fn record(c: &mut Conn, results: &[(i64, i64, DeliveryResult)]) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        let mut digest_ids: Vec<i64> = results.iter().map(|r| r.1).collect();
        digest_ids.sort_unstable();
        digest_ids.dedup();
        write_tx(c, |c| {
            relaxed_commit(c)?;
            for digest in digest_ids {
                let of_digest: Vec<&(i64, i64, DeliveryResult)> = results.iter().filter(|r| r.1 == digest).collect();
                let finished = record_for_digest(c, &of_digest, now)?;
                count_finished(c, digest, finished, now)?;
            }
            Ok(())
        })
    }

    /// Records one digest's results and says how many deliveries they
    /// finished. Only pending rows change: a message sent twice (its lease
    /// ran out while in flight) is counted once.
    fn record_for_digest(
        c: &mut Conn,
        results: &[&(i64, i64, DeliveryResult)],
        now: NaiveDateTime,
    ) -> QueryResult<Finished> {
        let ids: Vec<i64> = results.iter().map(|r| r.0).collect();
        let mut pending = pending_deliveries(c, &ids)?;
        pending.sort_unstable();
        let results: Vec<_> = results.iter().filter(|r| pending.binary_search(&r.0).is_ok()).collect();
        let ids_with = |want: fn(&DeliveryResult) -> bool| -> Vec<i64> {
            results.iter().filter(|r| want(&r.2)).map(|r| r.0).collect()
        };
        let sent = ids_with(|r| matches!(r, DeliveryResult::Sent));
        if !sent.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&sent)))
                .set((
                    deliveries::status.eq("sent"),
                    deliveries::sent_at.eq(now),
                    deliveries::attempts.eq(deliveries::attempts + 1),
                    deliveries::last_error.eq(None::<String>),
                ))
                .execute(c)?;
        }
        let skipped = ids_with(|r| matches!(r, DeliveryResult::Skipped));
        if !skipped.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&skipped)))
                .set(deliveries::status.eq("skipped"))
                .execute(c)?;
        }
        let mut failed = 0;
        for (id, _, result) in &results {
            match result {
                DeliveryResult::Retry { at, error } => {
                    diesel::update(deliveries::table.find(id))
                        .set((
                            deliveries::next_attempt_at.eq(at),
                            deliveries::leased_until.eq(None::<NaiveDateTime>),
                            deliveries::attempts.eq(deliveries::attempts + 1),
                            deliveries::last_error.eq(error),
                        ))
                        .execute(c)?;
                }
                DeliveryResult::Failed { error, suppress } => {
                    failed += 1;
                    diesel::update(deliveries::table.find(id))
                        .set((
                            deliveries::status.eq("failed"),
                            deliveries::attempts.eq(deliveries::attempts + 1),
                            deliveries::last_error.eq(error),
                        ))
                        .execute(c)?;
                    if *suppress {
                        let subscriber = deliveries::table
                            .inner_join(subscriptions::table)
                            .filter(deliveries::id.eq(id))
                            .select(subscriptions::subscriber_id);
                        diesel::update(subscribers::table.filter(subscribers::id.eq_any(subscriber)))
                            .set(subscribers::suppressed_at.eq(now))
                            .execute(c)?;
                    }
                }
                DeliveryResult::Sent | DeliveryResult::Skipped => {}
            }
        }
        Ok(Finished { sent: sent.len() as i64, failed, skipped: skipped.len() as i64 })
    }

    /// Adds finished deliveries to the digest's counts and marks it finished
    /// once none is pending: `sent` when any message went out (or none was
    /// due), `failed` when every one failed. The counts live on the digest
    /// row, so two senders recording at once take turns on it and the later
    /// one sees both: neither can leave a fully sent digest open.
    fn count_finished(c: &mut Conn, digest: i64, finished: Finished, now: NaiveDateTime) -> QueryResult<()> {
        let counted: Option<Counts> = diesel::update(digests::table.find(digest))
            .set((
                digests::sent_count.eq(digests::sent_count + finished.sent),
                digests::failed_count.eq(digests::failed_count + finished.failed),
                digests::skipped_count.eq(digests::skipped_count + finished.skipped),
            ))
            .returning(COUNTS)
            .get_result(c)
            .optional()?;
        match counted {
            Some(counts) => close_if_done(c, digest, counts, now),
            None => Ok(()),
        }
    }

    fn close_if_done(c: &mut Conn, digest: i64, counts: Counts, now: NaiveDateTime) -> QueryResult<()> {
        let (recipients, sent, failed, skipped) = counts;
        if sent + failed + skipped < recipients {
            return Ok(());
        }
        let status = if failed > 0 && sent == 0 { "failed" } else { "sent" };
        diesel::update(digests::table.find(digest))
            .filter(digests::status.eq_any(["queued", "sending"]))
            .set((digests::status.eq(status), digests::finished_at.eq(now)))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn recipients(c: &mut Conn, slug: &str) -> QueryResult<i64> {
        subscriptions::table
            .inner_join(subscribers::table)
            .inner_join(lists::table)
            .filter(lists::slug.eq(slug))
            .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()))
            .filter(subscribers::suppressed_at.is_null())
            .count()
            .get_result(c)
    }

    /// Closes every open digest with nothing pending; run whenever a sender
    /// finds no work. A digest whose counts fall short with nothing pending
    /// lost delivery rows to a hand-run `DELETE` of subscriptions (SQLite
    /// deletes their deliveries with them): those readers count as skipped.
    pub(crate) fn finish_idle(c: &mut Conn) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let open: Vec<i64> =
                digests::table.filter(digests::status.eq_any(["queued", "sending"])).select(digests::id).load(c)?;
            for digest in open {
                lock_digest(c, digest)?;
                let (recipients, sent, failed, skipped): Counts = digests::table.find(digest).select(COUNTS).first(c)?;
                let missing = recipients - sent - failed - skipped;
                if missing > 0 {
                    let pending = deliveries::table
                        .filter(deliveries::status.eq("pending"))
                        .filter(deliveries::digest_id.eq(digest))
                        .select(deliveries::id)
                        .first::<i64>(c)
                        .optional()?;
                    if pending.is_some() {
                        continue;
                    }
                    tracing::warn!(digest, missing, "deliveries gone from the database; counted as skipped");
                    count_finished(c, digest, Finished { skipped: missing, ..Finished::default() }, now)?;
                } else {
                    close_if_done(c, digest, (recipients, sent, failed, skipped), now)?;
                }
            }
            Ok(())
        })
    }

    /// Gives claimed rows back at once (on shutdown), instead of at lease end.
    pub(crate) fn release(c: &mut Conn, ids: &[i64]) -> QueryResult<()> {
        diesel::update(deliveries::table.filter(deliveries::id.eq_any(ids)))
            .set(deliveries::leased_until.eq(None::<NaiveDateTime>))
            .execute(c)
            .map(drop)
    }
}

impl Store {
    pub async fn trigger_digest(
        &self,
        list: ListSlug,
        subject: Option<String>,
        idempotency_key: Option<String>,
    ) -> StoreResult<TriggerOutcome> {
        self.write(move |conn| {
            Ok(on_backend!(conn, self::trigger(list.as_str(), subject.as_deref(), idempotency_key.as_deref()))?)
        })
        .await
    }

    /// The list and the posts its next digest would hold.
    pub async fn unsent_posts(&self, list: ListSlug) -> StoreResult<Option<(ListRow, Vec<PostRow>)>> {
        self.read(move |conn| Ok(on_backend!(conn, self::unsent(list.as_str()))?)).await
    }

    /// How many readers a digest of `list` would go to now.
    pub async fn recipient_count(&self, list: ListSlug) -> StoreResult<i64> {
        self.read(move |conn| Ok(on_backend!(conn, self::recipients(list.as_str()))?)).await
    }

    pub async fn digest_content(&self, id: i64) -> StoreResult<Option<DigestContent>> {
        self.read(move |conn| Ok(on_backend!(conn, self::content(id))?)).await
    }

    pub async fn digest_status(&self, id: i64) -> StoreResult<Option<DigestStatus>> {
        self.read(move |conn| Ok(on_backend!(conn, self::statuses(Some(id), 1))?.pop())).await
    }

    pub async fn digest_statuses(&self, limit: i64) -> StoreResult<Vec<DigestStatus>> {
        self.read(move |conn| Ok(on_backend!(conn, self::statuses(None, limit))?)).await
    }

    pub async fn claim_deliveries(&self, limit: i64, lease: chrono::Duration) -> StoreResult<Vec<DeliveryJob>> {
        self.write(move |conn| Ok(on_backend!(conn, self::claim(limit, lease))?)).await
    }

    pub async fn record_deliveries(&self, results: Vec<(i64, i64, DeliveryResult)>) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::record(&results))?)).await
    }

    pub async fn finish_idle_digests(&self) -> StoreResult<()> {
        self.write(|conn| Ok(on_backend!(conn, self::finish_idle())?)).await
    }

    pub async fn release_deliveries(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::release(&ids))?)).await
    }
}

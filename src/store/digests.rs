//! Digests, the author's side: trigger one (a delivery row per recipient,
//! fixed at that moment), see how it goes, pause, resume or cancel it. The
//! dispatcher's side (claim, record) is in `deliveries`.

use chrono::{NaiveDateTime, Utc};
use diesel::dsl::{count_star, not};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde::Serialize;

use super::deliveries::{COUNTS, Counts};
use super::lists::ListRow;
use super::posts::PostRow;
use super::schema::{
    deliveries, digest_posts, digest_suppressed, digests, lists, post_lists, posts, subscribers, subscriptions,
};
use super::{Store, StoreResult};
use crate::domain::{DeliveryStatus, DigestState, FailureClass, ListSlug, SubscriptionStatus, digest_subject};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DigestStatus {
    pub id: i64,
    pub list: String,
    pub subject: String,
    pub status: DigestState,
    pub recipients: i64,
    pub sent: i64,
    /// Failed for a reason that is not the recipient's (see `failures`).
    pub failed: i64,
    /// The recipient's address bounced (and is suppressed now).
    pub bounced: i64,
    /// Readers who left or were suppressed after the digest was triggered.
    pub skipped: i64,
    /// Confirmed readers left out because their address is suppressed (not
    /// counted in `recipients`).
    pub suppressed: i64,
    pub cancelled: i64,
    pub pending: i64,
    /// Pending deliveries that failed at least once and wait for a retry.
    pub retrying: i64,
    /// Finished failures by whose fault they were.
    pub failures: FailureCounts,
    /// The most recent error: of a delivery waiting for a retry while there
    /// is one, else of a failed or bounced delivery.
    pub last_error: Option<String>,
    /// Why the digest is paused, while it is.
    pub paused_reason: Option<String>,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "super::utc_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FailureCounts {
    pub recipient: i64,
    pub message: i64,
    pub temporary: i64,
}

impl DigestStatus {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

/// What the author asked of a digest, and what came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOutcome {
    Done,
    NotFound,
    /// Not possible in the digest's state (e.g. resuming a cancelled one).
    Refused(DigestState),
}

/// What the digest email shows: its list and posts.
#[derive(Debug, Clone)]
pub struct DigestContent {
    pub id: i64,
    pub list: ListRow,
    pub subject: String,
    pub posts: Vec<PostRow>,
}

type PostColumns = (i64, String, String, String, NaiveDateTime);
type StatusRow =
    (i64, String, String, String, Counts, Option<String>, NaiveDateTime, Option<NaiveDateTime>, Option<i64>);

per_backend! {
    pub(crate) fn trigger(
        c: &mut Conn,
        slug: &str,
        subject: Option<&str>,
        key: Option<&str>,
    ) -> QueryResult<TriggerOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let list: Option<(i64, String)> = lists::table
                .filter(lists::slug.eq(slug))
                .select((lists::id, lists::name))
                .first(c)
                .optional()?;
            let Some((list_id, list_name)) = list else {
                return Ok(TriggerOutcome::UnknownList);
            };
            // Under the list's lock, so that a retry racing the first request
            // waits for it and then finds its digest (on PostgreSQL each
            // statement sees what committed before it began).
            lock_list(c, list_id)?;
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
                    digests::status.eq(DigestState::Queued.as_str()),
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
                            DeliveryStatus::Pending.as_str().into_sql::<Text>(),
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
            let suppressed: i64 = subscriptions::table
                .inner_join(subscribers::table)
                .filter(subscriptions::list_id.eq(list_id))
                .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()))
                .filter(subscribers::suppressed_at.is_not_null())
                .count()
                .get_result(c)?;
            if suppressed > 0 {
                diesel::insert_into(digest_suppressed::table)
                    .values((digest_suppressed::digest_id.eq(id), digest_suppressed::readers.eq(suppressed)))
                    .execute(c)?;
            }
            let finished = (recipients == 0).then_some(now);
            diesel::update(digests::table.find(id))
                .set((
                    digests::recipients.eq(recipients),
                    digests::status.eq(if recipients == 0 { DigestState::Sent } else { DigestState::Queued }.as_str()),
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

    /// Posts of the list not in any earlier digest of that list (nor stored
    /// as sent before by a feed's first pull), newest first.
    fn new_posts(c: &mut Conn, list_id: i64) -> QueryResult<Vec<PostColumns>> {
        let already_sent = digest_posts::table
            .inner_join(digests::table)
            .filter(digests::list_id.eq(list_id))
            .select(digest_posts::post_id);
        post_lists::table
            .inner_join(posts::table)
            .filter(post_lists::list_id.eq(list_id))
            .filter(post_lists::sent_before.eq(false))
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
            .left_join(digest_suppressed::table)
            .select((
                digests::id,
                lists::slug,
                digests::subject,
                digests::status,
                COUNTS,
                digests::paused_reason,
                digests::created_at,
                digests::finished_at,
                digest_suppressed::readers.nullable(),
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
            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(deliveries::attempts.gt(0))
            .group_by(deliveries::digest_id)
            .select((deliveries::digest_id, count_star()))
            .load(c)?;
        let mut statuses = Vec::with_capacity(rows.len());
        for (id, list, subject, status, counts, paused_reason, created_at, finished_at, suppressed) in rows {
            let retrying = retrying.iter().find(|r| r.0 == id).map_or(0, |r| r.1);
            let last_error = if retrying > 0 {
                latest_error(c, id, DeliveryStatus::Pending)?
            } else if counts.failed > 0 {
                latest_error(c, id, DeliveryStatus::Failed)?
            } else if counts.bounced > 0 {
                latest_error(c, id, DeliveryStatus::Bounced)?
            } else {
                None
            };
            statuses.push(DigestStatus {
                id,
                list,
                subject,
                // The column's CHECK allows only known states.
                status: DigestState::parse(&status).unwrap_or(DigestState::Failed),
                recipients: counts.recipients,
                sent: counts.sent,
                failed: counts.failed,
                bounced: counts.bounced,
                skipped: counts.skipped,
                suppressed: suppressed.unwrap_or(0),
                cancelled: counts.cancelled,
                pending: counts.pending(),
                retrying,
                failures: FailureCounts {
                    recipient: counts.bounced,
                    message: counts.rejected,
                    temporary: counts.failed - counts.rejected,
                },
                last_error,
                paused_reason,
                created_at,
                finished_at,
            });
        }
        Ok(statuses)
    }

    /// The error of the latest delivery of the digest in this status that
    /// has one. Failed and bounced deliveries are few next to pending ones,
    /// and pending ones with an error are indexed apart.
    fn latest_error(c: &mut Conn, digest: i64, status: DeliveryStatus) -> QueryResult<Option<String>> {
        let mut query = deliveries::table
            .filter(deliveries::digest_id.eq(digest))
            .filter(deliveries::status.eq(status.as_str()))
            .filter(deliveries::last_error.is_not_null())
            .select(deliveries::last_error)
            .into_boxed();
        if status == DeliveryStatus::Pending {
            query = query.filter(deliveries::attempts.gt(0));
        }
        Ok(query.first::<Option<String>>(c).optional()?.flatten())
    }

    pub(crate) fn state(c: &mut Conn, digest: i64) -> QueryResult<Option<DigestState>> {
        let status: Option<String> = digests::table.find(digest).select(digests::status).first(c).optional()?;
        Ok(status.as_deref().and_then(DigestState::parse))
    }

    /// The author pauses an open digest: nothing more of it is claimed.
    pub(crate) fn pause_by_author(c: &mut Conn, digest: i64) -> QueryResult<ControlOutcome> {
        write_tx(c, |c| {
            let Some(state) = state(c, digest)? else { return Ok(ControlOutcome::NotFound) };
            if state == DigestState::Paused {
                return Ok(ControlOutcome::Done);
            }
            if deliveries_sql::pause(c, digest, "paused by the author")? {
                Ok(ControlOutcome::Done)
            } else {
                Ok(ControlOutcome::Refused(state))
            }
        })
    }

    /// Sends again what the digest has not delivered: every pending delivery
    /// and every delivery that failed for a reason that is not the
    /// recipient's. A paused digest resumes; a finished one with such
    /// failures opens again.
    pub(crate) fn resume(c: &mut Conn, digest: i64) -> QueryResult<ControlOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let Some(state) = state(c, digest)? else { return Ok(ControlOutcome::NotFound) };
            if !matches!(state, DigestState::Paused | DigestState::Failed | DigestState::Sent) {
                return Ok(ControlOutcome::Refused(state));
            }
            let again = |c: &mut Conn, class: FailureClass| {
                diesel::update(deliveries::table)
                    .filter(deliveries::status.eq(DeliveryStatus::Failed.as_str()))
                    .filter(deliveries::digest_id.eq(digest))
                    .filter(deliveries::failure_class.eq(class.as_str()))
                    .set((
                        deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                        deliveries::attempts.eq(0),
                        deliveries::next_attempt_at.eq(now),
                        deliveries::leased_until.eq(None::<NaiveDateTime>),
                        deliveries::last_error.eq(None::<String>),
                        deliveries::failure_class.eq(None::<String>),
                        deliveries::failure_stage.eq(None::<String>),
                        deliveries::failure_code.eq(None::<String>),
                    ))
                    .execute(c)
            };
            let rejected = again(c, FailureClass::Message)? as i64;
            let gave_up = again(c, FailureClass::Temporary)? as i64;
            if state != DigestState::Paused && rejected + gave_up == 0 {
                return Ok(ControlOutcome::Refused(state));
            }
            let counts: Counts = diesel::update(digests::table.find(digest))
                .set((
                    digests::status.eq(DigestState::Sending.as_str()),
                    digests::paused_reason.eq(None::<String>),
                    digests::finished_at.eq(None::<NaiveDateTime>),
                    digests::failure_streak.eq(0i64),
                    digests::failed_count.eq(digests::failed_count - (rejected + gave_up)),
                    digests::rejected_count.eq(digests::rejected_count - rejected),
                ))
                .returning(COUNTS)
                .get_result(c)?;
            deliveries_sql::close_if_done(c, digest, counts, now)?;
            Ok(ControlOutcome::Done)
        })
    }

    /// Ends a digest that is not finished: what is still pending is marked
    /// cancelled and never sent. Messages already in flight still go out
    /// and are counted as sent.
    pub(crate) fn cancel(c: &mut Conn, digest: i64) -> QueryResult<ControlOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let Some(state) = state(c, digest)? else { return Ok(ControlOutcome::NotFound) };
            if state.is_finished() {
                return Ok(ControlOutcome::Refused(state));
            }
            let cancelled = diesel::update(deliveries::table)
                .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(deliveries::digest_id.eq(digest))
                .set(deliveries::status.eq(DeliveryStatus::Cancelled.as_str()))
                .execute(c)? as i64;
            diesel::update(digests::table.find(digest))
                .set((
                    digests::status.eq(DigestState::Cancelled.as_str()),
                    digests::paused_reason.eq(None::<String>),
                    digests::finished_at.eq(now),
                    digests::cancelled_count.eq(digests::cancelled_count + cancelled),
                ))
                .execute(c)?;
            Ok(ControlOutcome::Done)
        })
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
}

impl Store {
    pub async fn trigger_digest(
        &self,
        list: ListSlug,
        subject: Option<String>,
        idempotency_key: Option<String>,
    ) -> StoreResult<TriggerOutcome> {
        self.write(move |conn| {
            Ok(super::again_on_unique_violation(conn, |c| {
                on_backend!(c, self::trigger(list.as_str(), subject.as_deref(), idempotency_key.as_deref()))
            })?)
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

    pub async fn digest_state(&self, id: i64) -> StoreResult<Option<DigestState>> {
        self.read(move |conn| Ok(on_backend!(conn, self::state(id))?)).await
    }

    pub async fn pause_digest(&self, id: i64) -> StoreResult<ControlOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::pause_by_author(id))?)).await
    }

    pub async fn resume_digest(&self, id: i64) -> StoreResult<ControlOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::resume(id))?)).await
    }

    pub async fn cancel_digest(&self, id: i64) -> StoreResult<ControlOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::cancel(id))?)).await
    }
}

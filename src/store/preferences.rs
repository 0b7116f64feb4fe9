//! A reader's own choices from their preference page: every list with its
//! state, joining and leaving lists, their name; and the two emails the
//! reader's side queues besides confirmations (welcome, "manage" link).

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{lists, outbox, subscribers, subscriptions};
use super::subscriptions::{Evidence, Left};
use super::{Store, StoreResult};
use crate::domain::{Signer, SubscriptionStatus};

pub(crate) const WELCOME_KIND: &str = "welcome";
pub(crate) const MANAGE_KIND: &str = "manage";

/// What the preference page shows.
#[derive(Debug, Clone)]
pub struct Preferences {
    pub subscriber_id: i64,
    pub name: Option<String>,
    /// The reader confirmed their address once (any list): lists joined
    /// from the page need no second opt-in.
    pub address_confirmed: bool,
    pub lists: Vec<ListChoice>,
}

#[derive(Debug, Clone)]
pub struct ListChoice {
    pub slug: String,
    pub name: String,
    pub description: String,
    /// `None`: never subscribed.
    pub status: Option<SubscriptionStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined,
    AlreadyThere,
    /// The address was never confirmed: the reader must confirm it first.
    NeedsConfirmation,
    UnknownList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManageOutcome {
    Queued,
    /// No such reader, or one who never confirmed (never mailed anything
    /// but a confirmation), or a suppressed one.
    NotMailed,
    CapReached,
}

per_backend! {
    pub(crate) fn preferences(c: &mut Conn, subscriber_id: i64) -> QueryResult<Option<Preferences>> {
        let name: Option<Option<String>> =
            subscribers::table.find(subscriber_id).select(subscribers::name).first(c).optional()?;
        let Some(name) = name else { return Ok(None) };
        let all: Vec<(i64, String, String, String)> = lists::table
            .select((lists::id, lists::slug, lists::name, lists::description))
            .order(lists::id)
            .load(c)?;
        let mine: Vec<(i64, String, Option<NaiveDateTime>)> = subscriptions::table
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .select((subscriptions::list_id, subscriptions::status, subscriptions::confirmed_at))
            .load(c)?;
        let address_confirmed = mine.iter().any(|(_, _, confirmed)| confirmed.is_some());
        let lists = all
            .into_iter()
            .map(|(id, slug, name, description)| ListChoice {
                slug,
                name,
                description,
                status: mine.iter().find(|(l, ..)| *l == id).and_then(|(_, s, _)| SubscriptionStatus::parse(s)),
            })
            .collect();
        Ok(Some(Preferences { subscriber_id, name, address_confirmed, lists }))
    }

    /// Joins a list from the preference page. A confirmed address joins at
    /// once (the reader proved the mailbox is theirs and asked from a link
    /// only they got); `welcome` lists queue their welcome email.
    pub(crate) fn join(
        c: &mut Conn,
        subscriber_id: i64,
        slug: &str,
        evidence: &Evidence,
        welcome_lists: &[String],
    ) -> QueryResult<JoinOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let Some(list_id) = lists::table.filter(lists::slug.eq(slug)).select(lists::id).first(c).optional()?
            else {
                return Ok(JoinOutcome::UnknownList);
            };
            let mine: Vec<(i64, i64, String, Option<NaiveDateTime>)> = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .select((subscriptions::id, subscriptions::list_id, subscriptions::status, subscriptions::confirmed_at))
                .load(c)?;
            if !mine.iter().any(|(.., confirmed)| confirmed.is_some()) {
                return Ok(JoinOutcome::NeedsConfirmation);
            }
            let confirmed = (
                subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()),
                subscriptions::confirmed_at.eq(now),
                subscriptions::updated_at.eq(now),
                subscriptions::unsubscribed_at.eq(None::<NaiveDateTime>),
            );
            let subscription_id = match mine.iter().find(|(_, l, ..)| *l == list_id) {
                Some((_, _, status, _)) if status == SubscriptionStatus::Confirmed.as_str() => {
                    return Ok(JoinOutcome::AlreadyThere);
                }
                Some((id, ..)) => {
                    diesel::update(subscriptions::table.find(id)).set(confirmed).execute(c)?;
                    *id
                }
                None => diesel::insert_into(subscriptions::table)
                    .values((
                        subscriptions::subscriber_id.eq(subscriber_id),
                        subscriptions::list_id.eq(list_id),
                        subscriptions::unsubscribe_id.eq(Signer::new_id()),
                        subscriptions::created_at.eq(now),
                        confirmed,
                    ))
                    .returning(subscriptions::id)
                    .get_result(c)?,
            };
            subscriptions_sql::record_events(c, &[(subscription_id, evidence)], "confirm", now)?;
            queue_welcomes(c, subscriber_id, &[list_id], welcome_lists, now)?;
            Ok(JoinOutcome::Joined)
        })
    }

    /// Leaves one list (by slug) or all of them.
    pub(crate) fn leave(
        c: &mut Conn,
        subscriber_id: i64,
        slug: Option<&str>,
        evidence: &Evidence,
    ) -> QueryResult<Left> {
        let mut query = subscriptions::table
            .inner_join(lists::table)
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .select(subscriptions::unsubscribe_id)
            .into_boxed();
        if let Some(slug) = slug {
            query = query.filter(lists::slug.eq(slug.to_owned()));
        }
        let Some(link) = query.first::<String>(c).optional()? else { return Ok(Left::default()) };
        Ok(subscriptions_sql::unsubscribe(c, &link, slug.is_none(), evidence)?.unwrap_or_default())
    }

    /// Changes the reader's name (or clears it), with a consent record on
    /// each of their subscriptions.
    pub(crate) fn rename(c: &mut Conn, subscriber_id: i64, name: Option<&str>, evidence: &Evidence) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            diesel::update(subscribers::table.find(subscriber_id)).set(subscribers::name.eq(name)).execute(c)?;
            let ids: Vec<i64> = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .select(subscriptions::id)
                .load(c)?;
            let events: Vec<_> = ids.iter().map(|&id| (id, evidence)).collect();
            subscriptions_sql::record_events(c, &events, "name", now)
        })
    }

    /// Queues the welcome email of each of `list_ids` that has one, at most
    /// once per reader and list (a unique index; a second is ignored).
    pub(crate) fn queue_welcomes(
        c: &mut Conn,
        subscriber_id: i64,
        list_ids: &[i64],
        welcome_lists: &[String],
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        if welcome_lists.is_empty() || list_ids.is_empty() {
            return Ok(());
        }
        let welcoming: Vec<i64> = lists::table
            .filter(lists::id.eq_any(list_ids))
            .filter(lists::slug.eq_any(welcome_lists))
            .select(lists::id)
            .load(c)?;
        for list_id in welcoming {
            diesel::insert_into(outbox::table)
                .values((
                    outbox::kind.eq(WELCOME_KIND),
                    outbox::subscriber_id.eq(subscriber_id),
                    outbox::list_id.eq(list_id),
                    outbox::status.eq("pending"),
                    outbox::next_attempt_at.eq(now),
                    outbox::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
        }
        Ok(())
    }

    /// Queues a "manage your subscriptions" email to a known reader, capped
    /// per address per day like confirmations.
    pub(crate) fn queue_manage_link(c: &mut Conn, email: &str, per_day: u32) -> QueryResult<ManageOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let found: Option<(i64, Option<NaiveDateTime>)> = subscribers::table
                .filter(subscribers::email.eq(email))
                .select((subscribers::id, subscribers::suppressed_at))
                .first(c)
                .optional()?;
            let Some((subscriber_id, None)) = found else { return Ok(ManageOutcome::NotMailed) };
            let confirmed_once: i64 = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .filter(subscriptions::confirmed_at.is_not_null())
                .count()
                .get_result(c)?;
            if confirmed_once == 0 {
                return Ok(ManageOutcome::NotMailed);
            }
            let sent_today: i64 = outbox::table
                .filter(outbox::subscriber_id.eq(subscriber_id))
                .filter(outbox::kind.eq(MANAGE_KIND))
                .filter(outbox::created_at.gt(now - chrono::Duration::hours(24)))
                .count()
                .get_result(c)?;
            if sent_today >= i64::from(per_day) {
                return Ok(ManageOutcome::CapReached);
            }
            diesel::insert_into(outbox::table)
                .values((
                    outbox::kind.eq(MANAGE_KIND),
                    outbox::subscriber_id.eq(subscriber_id),
                    outbox::status.eq("pending"),
                    outbox::next_attempt_at.eq(now),
                    outbox::created_at.eq(now),
                ))
                .execute(c)?;
            Ok(ManageOutcome::Queued)
        })
    }
}

impl Store {
    pub async fn preferences(&self, subscriber_id: i64) -> StoreResult<Option<Preferences>> {
        self.read(move |conn| Ok(on_backend!(conn, self::preferences(subscriber_id))?)).await
    }

    pub async fn join_list(
        &self,
        subscriber_id: i64,
        slug: String,
        evidence: Evidence,
        welcome_lists: Vec<String>,
    ) -> StoreResult<JoinOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::join(subscriber_id, &slug, &evidence, &welcome_lists))?))
            .await
    }

    /// Leaves the list `slug`, or every list when `None`.
    pub async fn leave_lists(&self, subscriber_id: i64, slug: Option<String>, evidence: Evidence) -> StoreResult<Left> {
        self.write(move |conn| Ok(on_backend!(conn, self::leave(subscriber_id, slug.as_deref(), &evidence))?)).await
    }

    pub async fn rename_reader(&self, subscriber_id: i64, name: Option<String>, evidence: Evidence) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::rename(subscriber_id, name.as_deref(), &evidence))?)).await
    }

    pub async fn queue_manage_link(&self, email: String, per_day: u32) -> StoreResult<ManageOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::queue_manage_link(&email, per_day))?)).await
    }
}

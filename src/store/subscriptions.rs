//! Readers and their subscriptions: signup, confirmation, unsubscribe.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{
    confirmation_token_lists, confirmation_tokens, consent_events, lists, outbox, subscribers, subscriptions,
};
use super::{Store, StoreError, StoreResult};
use crate::domain::{EmailAddress, ListSlug, Signer, SubscriberName, SubscriptionStatus};

/// Who asked, from where, how, under which consent text: kept as a
/// `consent_events` row with every signup, confirmation and withdrawal.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `form`, `api`, `link`, `one-click`, `page`...
    pub source: String,
    pub consent_version: String,
}

#[derive(Debug, Clone)]
pub struct SignupRequest {
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub lists: Vec<ListSlug>,
    pub evidence: Evidence,
    pub token_ttl: chrono::Duration,
    pub confirmations_per_day: u32,
}

/// What a signup did. The HTTP answer is the same for all of them, so that
/// nobody can learn who subscribes; the difference is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    ConfirmationQueued,
    AlreadyConfirmed,
    ConfirmationCapReached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed { lists: Vec<String> },
    AlreadyConfirmed { lists: Vec<String> },
    Expired,
    Unknown,
}

/// What the unsubscribe page shows about the link's subscription.
#[derive(Debug, Clone)]
pub struct UnsubscribeTarget {
    pub list_name: String,
    pub status: SubscriptionStatus,
    /// Other lists this reader is still subscribed to.
    pub other_active_lists: Vec<String>,
}

#[derive(Queryable)]
struct TokenRow {
    id: i64,
    subscriber_id: i64,
    name: Option<String>,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

pub(crate) const CONFIRMATION_KIND: &str = "confirmation";

per_backend! {
    fn record_events(
        c: &mut Conn,
        subscription_ids: &[i64],
        kind: &str,
        evidence: &Evidence,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        if subscription_ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = subscription_ids
            .iter()
            .map(|&id| {
                (
                    consent_events::subscription_id.eq(id),
                    consent_events::kind.eq(kind),
                    consent_events::at.eq(now),
                    consent_events::ip.eq(evidence.ip.as_deref()),
                    consent_events::user_agent.eq(evidence.user_agent.as_deref()),
                    consent_events::source.eq(&evidence.source),
                    consent_events::consent_version.eq(&evidence.consent_version),
                )
            })
            .collect();
        diesel::insert_into(consent_events::table).values(&rows).execute(c).map(drop)
    }

    /// Several signups in one transaction: one commit (one WAL write, one
    /// fsync on PostgreSQL) for the whole group. Should one signup fail, the
    /// group is rolled back and done again with a savepoint for each, so
    /// that one failure leaves the others intact; savepoints cost two round
    /// trips a signup, so they are only paid for when needed.
    pub(crate) fn signup_group(
        c: &mut Conn,
        group: &[SignupRequest],
    ) -> QueryResult<Vec<QueryResult<SignupOutcome>>> {
        let together = write_tx(c, |c| {
            let list_ids = list_ids(c)?;
            group.iter().map(|req| signup(c, &list_ids, req)).collect::<QueryResult<Vec<_>>>()
        });
        match together {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(e) => {
                tracing::debug!(error = %e, "a signup failed its group: committing one by one");
                write_tx(c, |c| {
                    let list_ids = list_ids(c)?;
                    Ok(group.iter().map(|req| c.transaction(|c| signup(c, &list_ids, req))).collect())
                })
            }
        }
    }

    fn list_ids(c: &mut Conn) -> QueryResult<Vec<(String, i64)>> {
        lists::table.select((lists::slug, lists::id)).load(c)
    }

    fn signup(c: &mut Conn, all_lists: &[(String, i64)], req: &SignupRequest) -> QueryResult<SignupOutcome> {
        let now = Utc::now().naive_utc();
        {
            let list_ids: Vec<i64> = all_lists
                .iter()
                .filter(|(slug, _)| req.lists.iter().any(|l| l.as_str() == slug))
                .map(|(_, id)| *id)
                .collect();
            // One statement finds or creates the reader. Updating the row on
            // conflict also locks it on PostgreSQL, which serialises
            // concurrent signups of one address across processes (SQLite
            // has one writer anyway). The uuid we offered comes back only
            // if the row is new.
            let offered_uuid = uuid::Uuid::new_v4().to_string();
            let (subscriber_id, stored_uuid): (i64, String) = diesel::insert_into(subscribers::table)
                .values((
                    subscribers::uuid.eq(&offered_uuid),
                    subscribers::email.eq(req.email.as_str()),
                    subscribers::created_at.eq(now),
                ))
                .on_conflict(subscribers::email)
                .do_update()
                .set(subscribers::email.eq(diesel::upsert::excluded(subscribers::email)))
                .returning((subscribers::id, subscribers::uuid))
                .get_result(c)?;
            let new_reader = stored_uuid == offered_uuid;

            // A new reader has no subscriptions and was sent nothing yet.
            let existing: Vec<(i64, i64, String)> = if new_reader {
                Vec::new()
            } else {
                subscriptions::table
                    .filter(subscriptions::subscriber_id.eq(subscriber_id))
                    .filter(subscriptions::list_id.eq_any(&list_ids))
                    .select((subscriptions::id, subscriptions::list_id, subscriptions::status))
                    .load(c)?
            };
            let mut to_confirm = Vec::new();
            let mut asked = Vec::new();
            let mut to_create = Vec::new();
            for &list_id in &list_ids {
                let found = existing.iter().find(|(_, l, _)| *l == list_id);
                match found.map(|(id, _, s)| (*id, SubscriptionStatus::parse(s))) {
                    // Nobody but the reader can change a confirmed subscription.
                    Some((_, Some(SubscriptionStatus::Confirmed))) => continue,
                    Some((id, _)) => {
                        diesel::update(subscriptions::table.find(id))
                            .set((
                                subscriptions::status.eq(SubscriptionStatus::Pending.as_str()),
                                subscriptions::updated_at.eq(now),
                            ))
                            .execute(c)?;
                        asked.push(id);
                    }
                    None => to_create.push((
                        subscriptions::subscriber_id.eq(subscriber_id),
                        subscriptions::list_id.eq(list_id),
                        subscriptions::status.eq(SubscriptionStatus::Pending.as_str()),
                        subscriptions::unsubscribe_id.eq(Signer::new_id()),
                        subscriptions::created_at.eq(now),
                        subscriptions::updated_at.eq(now),
                    )),
                }
                to_confirm.push(list_id);
            }
            if !to_create.is_empty() {
                let created: Vec<i64> = diesel::insert_into(subscriptions::table)
                    .values(&to_create)
                    .returning(subscriptions::id)
                    .get_results(c)?;
                asked.extend(created);
            }
            record_events(c, &asked, "signup", &req.evidence, now)?;
            if to_confirm.is_empty() {
                return Ok(SignupOutcome::AlreadyConfirmed);
            }

            let sent_today: i64 = if new_reader {
                0
            } else {
                outbox::table
                    .filter(outbox::subscriber_id.eq(subscriber_id))
                    .filter(outbox::kind.eq(super::CONFIRMATION_KIND))
                    .filter(outbox::created_at.gt(now - chrono::Duration::hours(24)))
                    .count()
                    .get_result(c)?
            };
            if sent_today >= i64::from(req.confirmations_per_day) {
                return Ok(SignupOutcome::ConfirmationCapReached);
            }

            let token_id: i64 = diesel::insert_into(confirmation_tokens::table)
                .values((
                    confirmation_tokens::public_id.eq(Signer::new_id()),
                    confirmation_tokens::subscriber_id.eq(subscriber_id),
                    confirmation_tokens::name.eq(req.name.as_ref().map(SubscriberName::as_str)),
                    confirmation_tokens::created_at.eq(now),
                    confirmation_tokens::expires_at.eq(now + req.token_ttl),
                ))
                .returning(confirmation_tokens::id)
                .get_result(c)?;
            let token_lists: Vec<_> = to_confirm
                .iter()
                .map(|&list_id| {
                    (
                        confirmation_token_lists::token_id.eq(token_id),
                        confirmation_token_lists::list_id.eq(list_id),
                    )
                })
                .collect();
            diesel::insert_into(confirmation_token_lists::table)
                .values(&token_lists)
                .execute(c)?;
            diesel::insert_into(outbox::table)
                .values((
                    outbox::kind.eq(super::CONFIRMATION_KIND),
                    outbox::subscriber_id.eq(subscriber_id),
                    outbox::token_id.eq(token_id),
                    outbox::status.eq("pending"),
                    outbox::next_attempt_at.eq(now),
                    outbox::created_at.eq(now),
                ))
                .execute(c)?;
            Ok(SignupOutcome::ConfirmationQueued)
        }
    }

    pub(crate) fn confirm(c: &mut Conn, public_id: &str, evidence: &Evidence) -> QueryResult<ConfirmOutcome> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let token: Option<TokenRow> = confirmation_tokens::table
                .filter(confirmation_tokens::public_id.eq(public_id))
                .select((
                    confirmation_tokens::id,
                    confirmation_tokens::subscriber_id,
                    confirmation_tokens::name,
                    confirmation_tokens::expires_at,
                    confirmation_tokens::used_at,
                ))
                .first(c)
                .optional()?;
            let Some(TokenRow { id: token_id, subscriber_id, name, expires_at, used_at }) = token else {
                return Ok(ConfirmOutcome::Unknown);
            };
            let (list_ids, list_names): (Vec<i64>, Vec<String>) = confirmation_token_lists::table
                .inner_join(lists::table)
                .filter(confirmation_token_lists::token_id.eq(token_id))
                .select((lists::id, lists::name))
                .order(lists::id)
                .load::<(i64, String)>(c)?
                .into_iter()
                .unzip();
            if used_at.is_some() {
                return Ok(ConfirmOutcome::AlreadyConfirmed { lists: list_names });
            }
            if expires_at < now {
                return Ok(ConfirmOutcome::Expired);
            }
            let confirming: Vec<i64> = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .filter(subscriptions::list_id.eq_any(&list_ids))
                .filter(subscriptions::status.eq(SubscriptionStatus::Pending.as_str()))
                .select(subscriptions::id)
                .load(c)?;
            diesel::update(subscriptions::table.filter(subscriptions::id.eq_any(&confirming)))
                .set((
                    subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()),
                    subscriptions::confirmed_at.eq(now),
                    subscriptions::updated_at.eq(now),
                ))
                .execute(c)?;
            record_events(c, &confirming, "confirm", evidence, now)?;
            diesel::update(confirmation_tokens::table.find(token_id))
                .set(confirmation_tokens::used_at.eq(now))
                .execute(c)?;
            // The mailbox owner has spoken: apply their name and lift any
            // suppression left by an earlier bounce.
            let subscriber = subscribers::table.find(subscriber_id);
            diesel::update(subscriber)
                .set(subscribers::suppressed_at.eq(None::<NaiveDateTime>))
                .execute(c)?;
            if let Some(name) = name {
                diesel::update(subscriber).set(subscribers::name.eq(name)).execute(c)?;
            }
            Ok(ConfirmOutcome::Confirmed { lists: list_names })
        })
    }

    pub(crate) fn unsubscribe_target(c: &mut Conn, unsubscribe_id: &str) -> QueryResult<Option<UnsubscribeTarget>> {
        let found: Option<(i64, String, String)> = subscriptions::table
            .inner_join(lists::table)
            .filter(subscriptions::unsubscribe_id.eq(unsubscribe_id))
            .select((subscriptions::subscriber_id, subscriptions::status, lists::name))
            .first(c)
            .optional()?;
        let Some((subscriber_id, status, list_name)) = found else {
            return Ok(None);
        };
        let other_active_lists = subscriptions::table
            .inner_join(lists::table)
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::unsubscribe_id.ne(unsubscribe_id))
            .filter(subscriptions::status.ne(SubscriptionStatus::Unsubscribed.as_str()))
            .select(lists::name)
            .order(lists::id)
            .load(c)?;
        Ok(Some(UnsubscribeTarget {
            list_name,
            status: SubscriptionStatus::parse(&status).unwrap_or(SubscriptionStatus::Unsubscribed),
            other_active_lists,
        }))
    }

    /// Unsubscribes the link's list, or every list of that reader when `all`.
    /// Returns the names of the lists left, or `None` for an unknown link.
    pub(crate) fn unsubscribe(
        c: &mut Conn,
        unsubscribe_id: &str,
        all: bool,
        evidence: &Evidence,
    ) -> QueryResult<Option<Vec<String>>> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let found: Option<i64> = subscriptions::table
                .filter(subscriptions::unsubscribe_id.eq(unsubscribe_id))
                .select(subscriptions::subscriber_id)
                .first(c)
                .optional()?;
            let Some(subscriber_id) = found else {
                return Ok(None);
            };
            let mut query = subscriptions::table
                .inner_join(lists::table)
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .select((subscriptions::id, subscriptions::status, lists::name))
                .order(lists::id)
                .into_boxed();
            if !all {
                query = query.filter(subscriptions::unsubscribe_id.eq(unsubscribe_id));
            }
            let targets: Vec<(i64, String, String)> = query.load(c)?;
            let leaving: Vec<i64> = targets
                .iter()
                .filter(|(_, status, _)| status != SubscriptionStatus::Unsubscribed.as_str())
                .map(|(id, _, _)| *id)
                .collect();
            diesel::update(subscriptions::table.filter(subscriptions::id.eq_any(&leaving)))
                .set((
                    subscriptions::status.eq(SubscriptionStatus::Unsubscribed.as_str()),
                    subscriptions::unsubscribed_at.eq(now),
                    subscriptions::updated_at.eq(now),
                ))
                .execute(c)?;
            record_events(c, &leaving, "unsubscribe", evidence, now)?;
            Ok(Some(targets.into_iter().map(|(_, _, name)| name).collect()))
        })
    }
}

impl Store {
    /// Stores a signup. Concurrent signups are committed together (group
    /// commit); each answer still waits for its own commit.
    pub async fn signup(&self, req: SignupRequest) -> StoreResult<SignupOutcome> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.signups.send((req, answer)).await.map_err(|_| StoreError::Task("signup writer stopped".into()))?;
        answered.await.map_err(|_| StoreError::Task("signup writer stopped".into()))?
    }

    /// Confirms every list of the signup that issued the token `public_id`.
    pub async fn confirm(&self, public_id: String, evidence: Evidence) -> StoreResult<ConfirmOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::confirm(&public_id, &evidence))?)).await
    }

    pub async fn unsubscribe_target(&self, unsubscribe_id: String) -> StoreResult<Option<UnsubscribeTarget>> {
        self.read(move |conn| Ok(on_backend!(conn, self::unsubscribe_target(&unsubscribe_id))?)).await
    }

    pub async fn unsubscribe(
        &self,
        unsubscribe_id: String,
        all: bool,
        evidence: Evidence,
    ) -> StoreResult<Option<Vec<String>>> {
        self.write(move |conn| Ok(on_backend!(conn, self::unsubscribe(&unsubscribe_id, all, &evidence))?)).await
    }
}

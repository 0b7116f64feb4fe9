//! Readers and their subscriptions: confirmation, unsubscribe, and the
//! consent record every change leaves (signups are in `signups`).

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{confirmation_token_lists, confirmation_tokens, consent_events, lists, subscribers, subscriptions};
use super::{Store, StoreResult};
use crate::domain::SubscriptionStatus;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed {
        lists: Vec<String>,
    },
    /// The link was used before: `lists` are still confirmed, the reader
    /// has left (or is confirming again) the lists in `left`.
    AlreadyConfirmed {
        lists: Vec<String>,
        left: Vec<String>,
    },
    Expired,
    Unknown,
}

/// The lists an unsubscribe was about (names), and those of them the reader
/// was still on (the rest they had left already).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Left {
    pub lists: Vec<String>,
    pub newly: Vec<String>,
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

per_backend! {
    /// One consent record per subscription, each with the evidence of the
    /// request that touched it.
    pub(crate) fn record_events(
        c: &mut Conn,
        events: &[(i64, &Evidence)],
        kind: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = events
            .iter()
            .map(|&(id, evidence)| {
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

    pub(crate) fn confirm(
        c: &mut Conn,
        public_id: &str,
        evidence: &Evidence,
        welcome_lists: &[String],
    ) -> QueryResult<ConfirmOutcome> {
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
                // A used link says what is true now: the reader may have
                // left some of its lists since.
                let confirmed: Vec<i64> = subscriptions::table
                    .filter(subscriptions::subscriber_id.eq(subscriber_id))
                    .filter(subscriptions::list_id.eq_any(&list_ids))
                    .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()))
                    .select(subscriptions::list_id)
                    .load(c)?;
                let (lists, left) = list_ids
                    .iter()
                    .zip(list_names)
                    .partition::<Vec<_>, _>(|(id, _)| confirmed.contains(id));
                let names = |pairs: Vec<(&i64, String)>| pairs.into_iter().map(|(_, name)| name).collect();
                return Ok(ConfirmOutcome::AlreadyConfirmed { lists: names(lists), left: names(left) });
            }
            if expires_at < now {
                return Ok(ConfirmOutcome::Expired);
            }
            let (confirming, confirming_lists): (Vec<i64>, Vec<i64>) = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .filter(subscriptions::list_id.eq_any(&list_ids))
                .filter(subscriptions::status.eq(SubscriptionStatus::Pending.as_str()))
                .select((subscriptions::id, subscriptions::list_id))
                .load::<(i64, i64)>(c)?
                .into_iter()
                .unzip();
            diesel::update(subscriptions::table.filter(subscriptions::id.eq_any(&confirming)))
                .set((
                    subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()),
                    subscriptions::confirmed_at.eq(now),
                    subscriptions::updated_at.eq(now),
                ))
                .execute(c)?;
            let events: Vec<_> = confirming.iter().map(|&id| (id, evidence)).collect();
            record_events(c, &events, "confirm", now)?;
            preferences_sql::queue_welcomes(c, subscriber_id, &confirming_lists, welcome_lists, now)?;
            diesel::update(confirmation_tokens::table.find(token_id))
                .set(confirmation_tokens::used_at.eq(now))
                .execute(c)?;
            // The mailbox owner has spoken: apply their name and lift any
            // suppression left by an earlier bounce (never a complaint's).
            suppressions_sql::lift_bounce(c, subscriber_id)?;
            let subscriber = subscribers::table.find(subscriber_id);
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
    /// `None` for an unknown link.
    pub(crate) fn unsubscribe(
        c: &mut Conn,
        unsubscribe_id: &str,
        all: bool,
        evidence: &Evidence,
    ) -> QueryResult<Option<Left>> {
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
            let events: Vec<_> = leaving.iter().map(|&id| (id, evidence)).collect();
            record_events(c, &events, "unsubscribe", now)?;
            let newly = targets.iter().filter(|(id, ..)| leaving.contains(id)).map(|(.., name)| name.clone()).collect();
            Ok(Some(Left { lists: targets.into_iter().map(|(_, _, name)| name).collect(), newly }))
        })
    }
}

impl Store {
    /// Confirms every list of the signup that issued the token `public_id`,
    /// queueing the welcome email of those among `welcome_lists` (slugs).
    pub async fn confirm(
        &self,
        public_id: String,
        evidence: Evidence,
        welcome_lists: Vec<String>,
    ) -> StoreResult<ConfirmOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::confirm(&public_id, &evidence, &welcome_lists))?)).await
    }

    pub async fn unsubscribe_target(&self, unsubscribe_id: String) -> StoreResult<Option<UnsubscribeTarget>> {
        self.read(move |conn| Ok(on_backend!(conn, self::unsubscribe_target(&unsubscribe_id))?)).await
    }

    pub async fn unsubscribe(
        &self,
        unsubscribe_id: String,
        all: bool,
        evidence: Evidence,
    ) -> StoreResult<Option<Left>> {
        self.write(move |conn| Ok(on_backend!(conn, self::unsubscribe(&unsubscribe_id, all, &evidence))?)).await
    }
}

//! Readers as a whole: the export, a reader's own data (GDPR Art. 15/20),
//! and erasure (Art. 17), which keeps only a hash in the suppression list.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{
    confirmation_token_lists, confirmation_tokens, consent_events, deliveries, digests, lists, outbox, subscribers,
    subscriptions, suppressions,
};
use super::{Store, StoreResult};
use crate::domain::{DeliveryStatus, SubscriptionStatus, address_hash};

/// One row of the export: a reader's subscription to one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub list: String,
    /// The subscription's status, or `suppressed` for an address on the
    /// suppression list that has not left.
    pub status: String,
    pub subscribed_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    pub unsubscribed_at: Option<NaiveDateTime>,
    pub consent_source: String,
}

/// Which readers an export holds.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub list: Option<String>,
    /// One of `STATUSES`.
    pub status: Option<String>,
}

impl ExportFilter {
    pub const STATUSES: &[&str] = &["confirmed", "pending", "unsubscribed", "suppressed"];
}

/// Everything Tidings keeps about one reader.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReaderData {
    pub email: String,
    pub name: Option<String>,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
    pub subscriptions: Vec<SubscriptionData>,
    pub deliveries: Vec<DeliveryData>,
    pub suppression: Option<SuppressionData>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionData {
    pub list: String,
    pub status: String,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub subscribed_at: NaiveDateTime,
    #[serde(serialize_with = "super::utc_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub confirmed_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "super::utc_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub unsubscribed_at: Option<NaiveDateTime>,
    /// Every consent record: signups, confirmations, unsubscribes.
    pub history: Vec<ConsentData>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentData {
    pub kind: String,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub at: NaiveDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub source: String,
    pub consent_version: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryData {
    pub digest: i64,
    pub subject: String,
    pub status: String,
    #[serde(serialize_with = "super::utc_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SuppressionData {
    pub reason: String,
    pub source: String,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
}

type ExportColumns = (
    i64,
    String,
    Option<String>,
    String,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

/// id, list, status, subscribed, confirmed, unsubscribed.
type SubscriptionColumns = (i64, String, String, NaiveDateTime, Option<NaiveDateTime>, Option<NaiveDateTime>);
/// subscription, kind, at, ip, user agent, source, consent version.
type ConsentColumns = (i64, String, NaiveDateTime, Option<String>, Option<String>, String, String);

per_backend! {
    /// Up to `limit` rows after subscription `after`, in id order.
    pub(crate) fn export_page(c: &mut Conn, filter: &ExportFilter, after: i64, limit: i64) -> QueryResult<Vec<ExportRow>> {
        let mut query = subscriptions::table
            .inner_join(subscribers::table)
            .inner_join(lists::table)
            .filter(subscriptions::id.gt(after))
            .select((
                subscriptions::id,
                subscribers::email,
                subscribers::name,
                lists::slug,
                subscriptions::status,
                subscriptions::created_at,
                subscriptions::confirmed_at,
                subscriptions::unsubscribed_at,
                subscribers::suppressed_at,
            ))
            .order(subscriptions::id)
            .limit(limit)
            .into_boxed();
        if let Some(list) = &filter.list {
            query = query.filter(lists::slug.eq(list.clone()));
        }
        let unsubscribed = SubscriptionStatus::Unsubscribed.as_str();
        match filter.status.as_deref() {
            Some("suppressed") => {
                query = query.filter(subscribers::suppressed_at.is_not_null()).filter(subscriptions::status.ne(unsubscribed))
            }
            Some(status) if status == unsubscribed => query = query.filter(subscriptions::status.eq(unsubscribed)),
            Some(status) => {
                query = query.filter(subscriptions::status.eq(status.to_owned())).filter(subscribers::suppressed_at.is_null())
            }
            None => {}
        }
        let rows: Vec<ExportColumns> = query.load(c)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let sources: Vec<(i64, String)> = consent_events::table
            .filter(consent_events::subscription_id.eq_any(&ids))
            .filter(consent_events::kind.eq("signup"))
            .select((consent_events::subscription_id, consent_events::source))
            .order(consent_events::id)
            .load(c)?;
        Ok(rows
            .into_iter()
            .map(|(id, email, name, list, status, subscribed_at, confirmed_at, unsubscribed_at, suppressed_at)| {
                let status = if suppressed_at.is_some() && status != unsubscribed { "suppressed".into() } else { status };
                let consent_source = sources.iter().find(|(s, _)| *s == id).map(|(_, src)| src.clone()).unwrap_or_default();
                ExportRow { id, email, name, list, status, subscribed_at, confirmed_at, unsubscribed_at, consent_source }
            })
            .collect())
    }

    pub(crate) fn reader_data(c: &mut Conn, subscriber_id: i64) -> QueryResult<Option<ReaderData>> {
        let Some((email, name, created_at)) = subscribers::table
            .find(subscriber_id)
            .select((subscribers::email, subscribers::name, subscribers::created_at))
            .first::<(String, Option<String>, NaiveDateTime)>(c)
            .optional()?
        else {
            return Ok(None);
        };
        let subs: Vec<SubscriptionColumns> =
            subscriptions::table
                .inner_join(lists::table)
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .select((
                    subscriptions::id,
                    lists::slug,
                    subscriptions::status,
                    subscriptions::created_at,
                    subscriptions::confirmed_at,
                    subscriptions::unsubscribed_at,
                ))
                .order(lists::id)
                .load(c)?;
        let ids: Vec<i64> = subs.iter().map(|s| s.0).collect();
        let events: Vec<ConsentColumns> =
            consent_events::table
                .filter(consent_events::subscription_id.eq_any(&ids))
                .select((
                    consent_events::subscription_id,
                    consent_events::kind,
                    consent_events::at,
                    consent_events::ip,
                    consent_events::user_agent,
                    consent_events::source,
                    consent_events::consent_version,
                ))
                .order(consent_events::id)
                .load(c)?;
        let sent: Vec<(i64, String, String, Option<NaiveDateTime>)> = deliveries::table
            .inner_join(digests::table)
            .filter(deliveries::subscription_id.eq_any(&ids))
            .select((digests::id, digests::subject, deliveries::status, deliveries::sent_at))
            .order(deliveries::id)
            .load(c)?;
        let suppression = suppressions::table
            .find(address_hash(&email))
            .select((suppressions::reason, suppressions::source, suppressions::created_at))
            .first::<(String, String, NaiveDateTime)>(c)
            .optional()?
            .map(|(reason, source, created_at)| SuppressionData { reason, source, created_at });
        let subscriptions = subs
            .into_iter()
            .map(|(id, list, status, subscribed_at, confirmed_at, unsubscribed_at)| SubscriptionData {
                list,
                status,
                subscribed_at,
                confirmed_at,
                unsubscribed_at,
                history: events
                    .iter()
                    .filter(|e| e.0 == id)
                    .map(|(_, kind, at, ip, user_agent, source, consent_version)| ConsentData {
                        kind: kind.clone(),
                        at: *at,
                        ip: ip.clone(),
                        user_agent: user_agent.clone(),
                        source: source.clone(),
                        consent_version: consent_version.clone(),
                    })
                    .collect(),
            })
            .collect();
        let deliveries = sent
            .into_iter()
            .map(|(digest, subject, status, sent_at)| DeliveryData { digest, subject, status, sent_at })
            .collect();
        Ok(Some(ReaderData { email, name, created_at, subscriptions, deliveries, suppression }))
    }

    pub(crate) fn reader_of_link(c: &mut Conn, unsubscribe_id: &str) -> QueryResult<Option<i64>> {
        subscriptions::table
            .filter(subscriptions::unsubscribe_id.eq(unsubscribe_id))
            .select(subscriptions::subscriber_id)
            .first(c)
            .optional()
    }

    pub(crate) fn reader_by_email(c: &mut Conn, email: &str) -> QueryResult<Option<i64>> {
        subscribers::table.filter(subscribers::email.eq(email)).select(subscribers::id).first(c).optional()
    }

    /// Deletes the reader's personal data everywhere and keeps only the hash
    /// of the address in the suppression list (if it is there). Deliveries
    /// not yet sent are counted as skipped, so digest counts stay right.
    pub(crate) fn erase(c: &mut Conn, subscriber_id: i64) -> QueryResult<bool> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let Some(email) = subscribers::table
                .find(subscriber_id)
                .select(subscribers::email)
                .first::<String>(c)
                .optional()?
            else {
                return Ok(false);
            };
            let subs: Vec<i64> = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(subscriber_id))
                .select(subscriptions::id)
                .load(c)?;
            // Pending, unclaimed deliveries: skipped now. A claimed one is
            // being sent; its sender records it (against the digest's counts).
            let unclaimed = deliveries::table
                .filter(deliveries::subscription_id.eq_any(&subs))
                .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(deliveries::leased_until.is_null().or(deliveries::leased_until.lt(now)));
            let skipped: Vec<(i64, i64)> = unclaimed.select((deliveries::id, deliveries::digest_id)).load(c)?;
            for (_, digest) in &skipped {
                lock_digest(c, *digest)?;
                diesel::update(digests::table.find(digest))
                    .set(digests::skipped_count.eq(digests::skipped_count + 1))
                    .execute(c)?;
            }
            let skipped_ids: Vec<i64> = skipped.iter().map(|(id, _)| *id).collect();
            diesel::delete(deliveries::table.filter(deliveries::id.eq_any(&skipped_ids))).execute(c)?;
            diesel::delete(
                deliveries::table
                    .filter(deliveries::subscription_id.eq_any(&subs))
                    .filter(deliveries::status.ne(DeliveryStatus::Pending.as_str())),
            )
            .execute(c)?;
            diesel::delete(consent_events::table.filter(consent_events::subscription_id.eq_any(&subs))).execute(c)?;
            diesel::delete(outbox::table.filter(outbox::subscriber_id.eq(subscriber_id))).execute(c)?;
            let tokens = confirmation_tokens::table
                .filter(confirmation_tokens::subscriber_id.eq(subscriber_id))
                .select(confirmation_tokens::id);
            diesel::delete(confirmation_token_lists::table.filter(confirmation_token_lists::token_id.eq_any(tokens)))
                .execute(c)?;
            diesel::delete(confirmation_tokens::table.filter(confirmation_tokens::subscriber_id.eq(subscriber_id)))
                .execute(c)?;
            // A claimed delivery's sender records its result in the digest's
            // counts; the row itself carries no personal data.
            diesel::delete(subscriptions::table.filter(subscriptions::subscriber_id.eq(subscriber_id))).execute(c)?;
            diesel::delete(subscribers::table.find(subscriber_id)).execute(c)?;
            diesel::update(suppressions::table.find(address_hash(&email)))
                .set((suppressions::email.eq(None::<String>), suppressions::detail.eq(None::<String>)))
                .execute(c)?;
            Ok(true)
        })
    }

    /// Readers whose address contains `needle` (lowercased: addresses are
    /// stored lowercase), the oldest first.
    pub(crate) fn search(c: &mut Conn, needle: &str, limit: i64) -> QueryResult<Vec<(i64, String, Option<String>)>> {
        let escaped: String = needle
            .to_lowercase()
            .chars()
            .flat_map(|ch| match ch {
                '%' | '_' | '\\' => vec!['\\', ch],
                other => vec![other],
            })
            .collect();
        // The trigram table answers any needle of 3 or more plain
        // characters; shorter ones, or ones with LIKE's own characters,
        // read the table.
        if let Some(query) = SEARCH_BY_TRIGRAMS.filter(|_| escaped == needle.to_lowercase() && needle.chars().count() >= 3) {
            #[derive(diesel::QueryableByName)]
            struct Hit {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                id: i64,
                #[diesel(sql_type = diesel::sql_types::Text)]
                email: String,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                name: Option<String>,
            }
            let hits: Vec<Hit> = diesel::sql_query(query)
                .bind::<diesel::sql_types::Text, _>(format!("%{escaped}%"))
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .load(c)?;
            return Ok(hits.into_iter().map(|h| (h.id, h.email, h.name)).collect());
        }
        subscribers::table
            .filter(subscribers::email.like(format!("%{escaped}%")).escape('\\'))
            .select((subscribers::id, subscribers::email, subscribers::name))
            .order(subscribers::id)
            .limit(limit)
            .load(c)
    }
}

impl Store {
    /// Up to `limit` readers whose address contains `needle`, any case.
    pub async fn search_readers(&self, needle: String, limit: i64) -> StoreResult<Vec<(i64, String, Option<String>)>> {
        self.read(move |conn| Ok(on_backend!(conn, self::search(&needle, limit))?)).await
    }

    pub async fn export_page(&self, filter: ExportFilter, after: i64, limit: i64) -> StoreResult<Vec<ExportRow>> {
        self.read(move |conn| Ok(on_backend!(conn, self::export_page(&filter, after, limit))?)).await
    }

    /// The reader a preference or unsubscribe link (its id) belongs to.
    pub async fn reader_of_link(&self, unsubscribe_id: String) -> StoreResult<Option<i64>> {
        self.read(move |conn| Ok(on_backend!(conn, self::reader_of_link(&unsubscribe_id))?)).await
    }

    pub async fn reader_by_email(&self, email: String) -> StoreResult<Option<i64>> {
        self.read(move |conn| Ok(on_backend!(conn, self::reader_by_email(&email))?)).await
    }

    pub async fn reader_data(&self, subscriber_id: i64) -> StoreResult<Option<ReaderData>> {
        self.read(move |conn| Ok(on_backend!(conn, self::reader_data(subscriber_id))?)).await
    }

    /// True when there was a reader to erase.
    pub async fn erase_reader(&self, subscriber_id: i64) -> StoreResult<bool> {
        self.write(move |conn| Ok(on_backend!(conn, self::erase(subscriber_id))?)).await
    }
}

//! The suppression list and the bounce events that feed it. Each address
//! is a row keyed by its hash (`domain::address_hash`); `subscribers.
//! suppressed_at` mirrors it for the digest and claim queries, and both are
//! written in the same transaction.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{bounce_events, deliveries, outbox, subscribers, subscriptions, suppressions};
use super::subscriptions::Evidence;
use super::{Store, StoreResult};
use crate::domain::{BounceKind, SubscriptionStatus, SuppressionReason, address_hash};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Suppression {
    /// `None` once the reader was erased: the hash is all that is kept.
    pub email: Option<String>,
    pub address_hash: String,
    pub reason: SuppressionReason,
    /// Where it came from: `smtp` (refused at send time), `import`, `imap`,
    /// `webhook:<provider>`, `api`, `cli`.
    pub source: String,
    pub detail: Option<String>,
    #[serde(serialize_with = "super::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
}

/// Whom a bounce report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceTarget {
    Delivery(i64),
    Outbox(i64),
    Email(String),
}

#[derive(Debug, Clone)]
pub struct BounceRecord {
    /// Names the report and the recipient: the same report twice is one.
    pub key: String,
    pub target: BounceTarget,
    pub kind: BounceKind,
    pub source: String,
    pub detail: String,
}

/// When soft bounces add up to a suppression.
#[derive(Debug, Clone, Copy)]
pub struct SoftBounceLimit {
    pub count: u32,
    pub days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Suppressed(SuppressionReason),
    /// Recorded without suppressing: a soft bounce under the limit, or a
    /// refusal that was the message's fault.
    Recorded,
    /// This report was applied before.
    Duplicate,
    /// The report names nobody we know.
    UnknownReader,
}

/// email, hash, reason, source, detail, created_at.
type SuppressionRow = (Option<String>, String, String, String, Option<String>, NaiveDateTime);

per_backend! {
    /// Adds `email` to the list, or strengthens its reason (a complaint
    /// replaces a bounce, never the other way round).
    pub(crate) fn suppress(
        c: &mut Conn,
        email: &str,
        reason: SuppressionReason,
        source: &str,
        detail: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let hash = address_hash(email);
        let existing: Option<String> =
            suppressions::table.find(&hash).select(suppressions::reason).first(c).optional()?;
        match existing.as_deref().and_then(SuppressionReason::parse) {
            None => {
                diesel::insert_into(suppressions::table)
                    .values((
                        suppressions::address_hash.eq(&hash),
                        suppressions::email.eq(email),
                        suppressions::reason.eq(reason.as_str()),
                        suppressions::source.eq(source),
                        suppressions::detail.eq(detail),
                        suppressions::created_at.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
            Some(old) if reason.outranks(old) => {
                diesel::update(suppressions::table.find(&hash))
                    .set((
                        suppressions::reason.eq(reason.as_str()),
                        suppressions::source.eq(source),
                        suppressions::detail.eq(detail),
                        suppressions::created_at.eq(now),
                    ))
                    .execute(c)?;
            }
            Some(_) => {}
        }
        diesel::update(subscribers::table.filter(subscribers::email.eq(email)))
            .filter(subscribers::suppressed_at.is_null())
            .set(subscribers::suppressed_at.eq(now))
            .execute(c)
            .map(drop)
    }

    /// Takes `email` off the list; false when it was not on it.
    pub(crate) fn lift(c: &mut Conn, email: &str) -> QueryResult<bool> {
        write_tx(c, |c| {
            let removed = diesel::delete(suppressions::table.find(address_hash(email))).execute(c)?;
            let cleared = diesel::update(subscribers::table.filter(subscribers::email.eq(email)))
                .filter(subscribers::suppressed_at.is_not_null())
                .set(subscribers::suppressed_at.eq(None::<NaiveDateTime>))
                .execute(c)?;
            Ok(removed + cleared > 0)
        })
    }

    /// A bounce suppression is lifted when its reader confirms a signup;
    /// a complaint or a manual entry stays.
    pub(crate) fn lift_bounce(c: &mut Conn, subscriber_id: i64) -> QueryResult<()> {
        let email: String = subscribers::table.find(subscriber_id).select(subscribers::email).first(c)?;
        let hash = address_hash(&email);
        let reason: Option<String> =
            suppressions::table.find(&hash).select(suppressions::reason).first(c).optional()?;
        if reason.as_deref().and_then(SuppressionReason::parse).is_some_and(|r| !r.lifted_by_confirming()) {
            return Ok(());
        }
        diesel::delete(suppressions::table.find(&hash)).execute(c)?;
        diesel::update(subscribers::table.find(subscriber_id))
            .set(subscribers::suppressed_at.eq(None::<NaiveDateTime>))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn list(c: &mut Conn, limit: i64, offset: i64) -> QueryResult<Vec<Suppression>> {
        let rows: Vec<SuppressionRow> = suppressions::table
            .select((
                suppressions::email,
                suppressions::address_hash,
                suppressions::reason,
                suppressions::source,
                suppressions::detail,
                suppressions::created_at,
            ))
            .order((suppressions::created_at.desc(), suppressions::address_hash))
            .limit(limit)
            .offset(offset)
            .load(c)?;
        Ok(rows
            .into_iter()
            .map(|(email, address_hash, reason, source, detail, created_at)| Suppression {
                email,
                address_hash,
                // The column's CHECK allows only known reasons.
                reason: SuppressionReason::parse(&reason).unwrap_or(SuppressionReason::Manual),
                source,
                detail,
                created_at,
            })
            .collect())
    }

    /// The suppression reasons of these addresses, by hash.
    pub(crate) fn reasons_of(c: &mut Conn, hashes: &[String]) -> QueryResult<Vec<(String, SuppressionReason)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String)> = suppressions::table
            .filter(suppressions::address_hash.eq_any(hashes))
            .select((suppressions::address_hash, suppressions::reason))
            .load(c)?;
        Ok(rows.into_iter().filter_map(|(h, r)| SuppressionReason::parse(&r).map(|r| (h, r))).collect())
    }

    /// Applies one finding of a bounce or complaint report, once.
    pub(crate) fn apply_bounce(c: &mut Conn, record: &BounceRecord, limit: SoftBounceLimit) -> QueryResult<Applied> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let Some((subscriber_id, email)) = reader_of(c, &record.target)? else {
                return Ok(Applied::UnknownReader);
            };
            let hash = address_hash(&email);
            let inserted = diesel::insert_into(bounce_events::table)
                .values((
                    bounce_events::report_key.eq(&record.key),
                    bounce_events::address_hash.eq(&hash),
                    bounce_events::kind.eq(record.kind.as_str()),
                    bounce_events::source.eq(&record.source),
                    bounce_events::detail.eq(&record.detail),
                    bounce_events::at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            if inserted == 0 {
                return Ok(Applied::Duplicate);
            }
            let detail = Some(record.detail.as_str()).filter(|d| !d.is_empty());
            let reason = match record.kind {
                BounceKind::Hard => SuppressionReason::HardBounce,
                BounceKind::Complaint => {
                    leave_every_list(c, subscriber_id, &record.source, now)?;
                    SuppressionReason::Complaint
                }
                BounceKind::Soft => {
                    let since = now - chrono::Duration::days(i64::from(limit.days));
                    let soft: i64 = bounce_events::table
                        .filter(bounce_events::address_hash.eq(&hash))
                        .filter(bounce_events::kind.eq(BounceKind::Soft.as_str()))
                        .filter(bounce_events::at.gt(since))
                        .count()
                        .get_result(c)?;
                    if soft < i64::from(limit.count) {
                        return Ok(Applied::Recorded);
                    }
                    SuppressionReason::SoftBounces
                }
                BounceKind::Policy => return Ok(Applied::Recorded),
            };
            suppress(c, &email, reason, &record.source, detail, now)?;
            Ok(Applied::Suppressed(reason))
        })
    }

    fn reader_of(c: &mut Conn, target: &BounceTarget) -> QueryResult<Option<(i64, String)>> {
        let columns = (subscribers::id, subscribers::email);
        match target {
            BounceTarget::Delivery(id) => deliveries::table
                .inner_join(subscriptions::table.inner_join(subscribers::table))
                .filter(deliveries::id.eq(id))
                .select(columns)
                .first(c)
                .optional(),
            BounceTarget::Outbox(id) => outbox::table
                .inner_join(subscribers::table)
                .filter(outbox::id.eq(id))
                .select(columns)
                .first(c)
                .optional(),
            BounceTarget::Email(email) => {
                subscribers::table.filter(subscribers::email.eq(email)).select(columns).first(c).optional()
            }
        }
    }

    /// A complaint: the reader leaves every list at once, recorded as an
    /// unsubscribe from the complaint's source.
    fn leave_every_list(c: &mut Conn, subscriber_id: i64, source: &str, now: NaiveDateTime) -> QueryResult<()> {
        let leaving: Vec<i64> = subscriptions::table
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::status.ne(SubscriptionStatus::Unsubscribed.as_str()))
            .select(subscriptions::id)
            .load(c)?;
        diesel::update(subscriptions::table.filter(subscriptions::id.eq_any(&leaving)))
            .set((
                subscriptions::status.eq(SubscriptionStatus::Unsubscribed.as_str()),
                subscriptions::unsubscribed_at.eq(now),
                subscriptions::updated_at.eq(now),
            ))
            .execute(c)?;
        let evidence = Evidence {
            ip: None,
            user_agent: None,
            source: format!("complaint ({source})"),
            consent_version: String::new(),
        };
        let events: Vec<_> = leaving.iter().map(|&id| (id, &evidence)).collect();
        subscriptions_sql::record_events(c, &events, "unsubscribe", now)
    }

    /// Suppressions for readers suppressed before the list existed.
    pub(crate) fn backfill(c: &mut Conn) -> QueryResult<usize> {
        let missing: Vec<(String, Option<NaiveDateTime>)> = subscribers::table
            .filter(subscribers::suppressed_at.is_not_null())
            .select((subscribers::email, subscribers::suppressed_at))
            .load(c)?;
        let mut added = 0;
        for (email, at) in missing {
            added += diesel::insert_into(suppressions::table)
                .values((
                    suppressions::address_hash.eq(address_hash(&email)),
                    suppressions::email.eq(&email),
                    suppressions::reason.eq(SuppressionReason::HardBounce.as_str()),
                    suppressions::source.eq("smtp"),
                    suppressions::created_at.eq(at.unwrap_or_else(|| Utc::now().naive_utc())),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
        }
        Ok(added)
    }
}

impl Store {
    pub async fn suppress(
        &self,
        email: String,
        reason: SuppressionReason,
        source: String,
        detail: Option<String>,
    ) -> StoreResult<()> {
        let now = Utc::now().naive_utc();
        self.write(move |conn| Ok(on_backend!(conn, self::suppress(&email, reason, &source, detail.as_deref(), now))?))
            .await
    }

    pub async fn lift_suppression(&self, email: String) -> StoreResult<bool> {
        self.write(move |conn| Ok(on_backend!(conn, self::lift(&email))?)).await
    }

    pub async fn suppressions(&self, limit: i64, offset: i64) -> StoreResult<Vec<Suppression>> {
        self.read(move |conn| Ok(on_backend!(conn, self::list(limit, offset))?)).await
    }

    pub async fn apply_bounce(&self, record: BounceRecord, limit: SoftBounceLimit) -> StoreResult<Applied> {
        self.write(move |conn| Ok(on_backend!(conn, self::apply_bounce(&record, limit))?)).await
    }

    /// Adds a suppression row for each reader suppressed without one (those
    /// bounced before the suppression list existed). Run at start-up.
    pub async fn backfill_suppressions(&self) -> StoreResult<usize> {
        self.write(|conn| Ok(on_backend!(conn, self::backfill())?)).await
    }
}

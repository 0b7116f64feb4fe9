//! Readers brought in from a CSV file, a batch at a time: a statement per
//! table per batch, and rules that never resurrect nor downgrade anyone.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{consent_events, lists, subscribers, subscriptions};
use super::signups::Confirmation;
use super::{Store, StoreError, StoreResult};
use crate::domain::{Signer, SubscriberName, SubscriptionStatus, SuppressionReason, address_hash};
use crate::portability::formats::{ImportRow, ImportStatus};

/// What an import did with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Created,
    Updated,
    Unchanged,
    /// Kept as it is: the row would resurrect an unsubscribed or suppressed
    /// reader, or move a confirmed one back to pending.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub list: String,
    pub dry_run: bool,
    /// Send pending readers a confirmation (otherwise nobody is mailed).
    pub send_confirmations: bool,
    pub confirm_ttl: chrono::Duration,
    pub consent_version: String,
}

/// Consent records are kept with the old tool's time and IP, from `import`.
const SOURCE: &str = "import";

/// A consent record to write.
struct Consent<'a> {
    subscription: i64,
    kind: &'static str,
    at: NaiveDateTime,
    ip: Option<&'a str>,
}

per_backend! {
    pub(crate) fn import_batch(
        c: &mut Conn,
        rows: &[ImportRow],
        settings: &ImportSettings,
    ) -> QueryResult<Option<Vec<RowOutcome>>> {
        let mut outcomes = None;
        let result = write_tx(c, |c| {
            outcomes = Some(apply(c, rows, settings)?);
            // A dry run does it all, counts it, and keeps nothing.
            if settings.dry_run { Err(diesel::result::Error::RollbackTransaction) } else { Ok(()) }
        });
        match result {
            Ok(()) | Err(diesel::result::Error::RollbackTransaction) => Ok(outcomes),
            Err(e) => Err(e),
        }
    }

    fn apply(c: &mut Conn, rows: &[ImportRow], settings: &ImportSettings) -> QueryResult<Vec<RowOutcome>> {
        let now = Utc::now().naive_utc();
        let Some(list_id) = lists::table.filter(lists::slug.eq(&settings.list)).select(lists::id).first(c).optional()? else {
            return Err(diesel::result::Error::NotFound);
        };
        // An address twice in one batch: the first row counts, the rest are skipped.
        let mut seen = HashSet::new();
        let first: Vec<bool> = rows.iter().map(|r| seen.insert(r.email.as_str().to_owned())).collect();
        let readers = readers_of(c, rows, &first, now)?;
        let ids: Vec<i64> = readers.values().copied().collect();
        let existing: HashMap<i64, (i64, String)> = subscriptions::table
            .filter(subscriptions::list_id.eq(list_id))
            .filter(subscriptions::subscriber_id.eq_any(&ids))
            .select((subscriptions::subscriber_id, subscriptions::id, subscriptions::status))
            .load::<(i64, i64, String)>(c)?
            .into_iter()
            .map(|(reader, id, status)| (reader, (id, status)))
            .collect();
        let hashes: Vec<String> = rows.iter().map(|r| address_hash(r.email.as_str())).collect();
        let suppressed: HashSet<String> =
            suppressions_sql::reasons_of(c, &hashes)?.into_iter().map(|(hash, _)| hash).collect();

        let mut outcomes = Vec::with_capacity(rows.len());
        let mut new_subscriptions = Vec::new();
        let mut to_confirm = Vec::new();
        let mut to_unsubscribe = Vec::new();
        let mut to_suppress: Vec<(&str, SuppressionReason)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let Some(&reader) = readers.get(row.email.as_str()).filter(|_| first[i]) else {
                outcomes.push(RowOutcome::Skipped);
                continue;
            };
            let is_suppressed = suppressed.contains(&hashes[i]);
            let current = existing.get(&reader).map(|(id, s)| (*id, SubscriptionStatus::parse(s)));
            use SubscriptionStatus::{Confirmed, Pending, Unsubscribed};
            let outcome = match (row.status, current) {
                // Never mailed again by an import: suppressed addresses stay so.
                (ImportStatus::Confirmed | ImportStatus::Pending, None) if is_suppressed => RowOutcome::Skipped,
                (ImportStatus::Confirmed | ImportStatus::Pending, None) => {
                    new_subscriptions.push((reader, row));
                    RowOutcome::Created
                }
                (ImportStatus::Confirmed, Some((id, Some(Pending)))) if !is_suppressed => {
                    to_confirm.push((id, row));
                    RowOutcome::Updated
                }
                (ImportStatus::Confirmed | ImportStatus::Pending, Some((_, Some(Confirmed)))) => RowOutcome::Unchanged,
                (ImportStatus::Pending, Some((_, Some(Pending)))) => RowOutcome::Unchanged,
                (ImportStatus::Confirmed | ImportStatus::Pending, Some(_)) => RowOutcome::Skipped,
                (ImportStatus::Unsubscribed, None) => {
                    new_subscriptions.push((reader, row));
                    RowOutcome::Created
                }
                (ImportStatus::Unsubscribed, Some((_, Some(Unsubscribed)))) => RowOutcome::Unchanged,
                (ImportStatus::Unsubscribed, Some((id, _))) => {
                    to_unsubscribe.push((id, row));
                    RowOutcome::Updated
                }
                (ImportStatus::Suppressed(reason), current) => {
                    if current.is_none() {
                        new_subscriptions.push((reader, row));
                    }
                    if is_suppressed {
                        if current.is_some() { RowOutcome::Unchanged } else { RowOutcome::Created }
                    } else {
                        to_suppress.push((row.email.as_str(), reason));
                        if current.is_some() { RowOutcome::Updated } else { RowOutcome::Created }
                    }
                }
            };
            outcomes.push(outcome);
        }
        let mut events = Vec::new();
        let pending_readers = insert_subscriptions(c, list_id, &new_subscriptions, &mut events, now)?;
        for (id, row) in &to_confirm {
            let at = row.confirmed_at.or(row.opted_in_at).unwrap_or(now);
            diesel::update(subscriptions::table.find(id))
                .set((
                    subscriptions::status.eq(SubscriptionStatus::Confirmed.as_str()),
                    subscriptions::confirmed_at.eq(at),
                    subscriptions::updated_at.eq(now),
                ))
                .execute(c)?;
            events.push(Consent { subscription: *id, kind: "confirm", at, ip: row.opt_in_ip.as_deref() });
        }
        for (id, row) in &to_unsubscribe {
            let at = row.unsubscribed_at.unwrap_or(now);
            diesel::update(subscriptions::table.find(id))
                .set((
                    subscriptions::status.eq(SubscriptionStatus::Unsubscribed.as_str()),
                    subscriptions::unsubscribed_at.eq(at),
                    subscriptions::updated_at.eq(now),
                ))
                .execute(c)?;
            events.push(Consent { subscription: *id, kind: "unsubscribe", at, ip: None });
        }
        record_all(c, &events, settings)?;
        for (email, reason) in to_suppress {
            suppressions_sql::suppress(c, email, reason, SOURCE, Some("imported as suppressed"), now)?;
        }
        if settings.send_confirmations && !pending_readers.is_empty() {
            let confirmations: Vec<Confirmation<'_>> = pending_readers
                .iter()
                .map(|&subscriber_id| Confirmation {
                    subscriber_id,
                    name: None,
                    lists: vec![list_id],
                    ttl: settings.confirm_ttl,
                })
                .collect();
            signups_sql::issue_confirmations(c, &confirmations, now)?;
        }
        Ok(outcomes)
    }

    /// Finds or creates the reader of every first row (a new one with the
    /// row's name; a known reader's name is theirs to change).
    fn readers_of(
        c: &mut Conn,
        rows: &[ImportRow],
        first: &[bool],
        now: NaiveDateTime,
    ) -> QueryResult<HashMap<String, i64>> {
        let mut wanted: Vec<&ImportRow> = rows.iter().zip(first).filter(|(_, first)| **first).map(|(r, _)| r).collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        // The same order as signups lock rows in, so the two cannot deadlock.
        wanted.sort_unstable_by_key(|r| r.email.as_str());
        let values: Vec<_> = wanted
            .iter()
            .map(|r| {
                (
                    subscribers::uuid.eq(uuid::Uuid::new_v4().to_string()),
                    subscribers::email.eq(r.email.as_str()),
                    subscribers::name.eq(r.name.as_ref().map(SubscriberName::as_str)),
                    subscribers::created_at.eq(now),
                )
            })
            .collect();
        let mut found = HashMap::with_capacity(values.len());
        for chunk in values.chunks(4000) {
            let stored: Vec<(i64, String)> = diesel::insert_into(subscribers::table)
                .values(chunk)
                .on_conflict(subscribers::email)
                .do_update()
                .set(subscribers::email.eq(diesel::upsert::excluded(subscribers::email)))
                .returning((subscribers::id, subscribers::email))
                .get_results(c)?;
            found.extend(stored.into_iter().map(|(id, email)| (email, id)));
        }
        Ok(found)
    }

    /// One statement for the batch's new subscriptions, then their consent
    /// records. Returns the readers left pending.
    fn insert_subscriptions<'a>(
        c: &mut Conn,
        list_id: i64,
        new: &[(i64, &'a ImportRow)],
        events: &mut Vec<Consent<'a>>,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<i64>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let status_of = |row: &ImportRow| match row.status {
            ImportStatus::Pending => SubscriptionStatus::Pending,
            ImportStatus::Unsubscribed => SubscriptionStatus::Unsubscribed,
            ImportStatus::Confirmed | ImportStatus::Suppressed(_) => SubscriptionStatus::Confirmed,
        };
        let values: Vec<_> = new
            .iter()
            .map(|(reader, row)| {
                let status = status_of(row);
                let joined = row.opted_in_at.or(row.confirmed_at).unwrap_or(now);
                let confirmed = (status != SubscriptionStatus::Pending).then(|| row.confirmed_at.unwrap_or(joined));
                let left = (status == SubscriptionStatus::Unsubscribed).then(|| row.unsubscribed_at.unwrap_or(now));
                (
                    subscriptions::subscriber_id.eq(*reader),
                    subscriptions::list_id.eq(list_id),
                    subscriptions::status.eq(status.as_str()),
                    subscriptions::unsubscribe_id.eq(Signer::new_id()),
                    subscriptions::created_at.eq(joined),
                    subscriptions::updated_at.eq(now),
                    subscriptions::confirmed_at.eq(confirmed),
                    subscriptions::unsubscribed_at.eq(left),
                )
            })
            .collect();
        let mut created: Vec<(i64, i64)> = Vec::with_capacity(values.len());
        // Below SQLite's limit of bound parameters per statement.
        for chunk in values.chunks(4000) {
            created.extend(
                diesel::insert_into(subscriptions::table)
                    .values(chunk)
                    .returning((subscriptions::id, subscriptions::subscriber_id))
                    .get_results::<(i64, i64)>(c)?,
            );
        }
        let rows: HashMap<i64, &ImportRow> = new.iter().map(|&(reader, row)| (reader, row)).collect();
        let mut pending = Vec::new();
        for (id, reader) in created {
            let Some(&row) = rows.get(&reader) else { continue };
            let joined = row.opted_in_at.or(row.confirmed_at).unwrap_or(now);
            let ip = row.opt_in_ip.as_deref();
            events.push(Consent { subscription: id, kind: "signup", at: joined, ip });
            match status_of(row) {
                SubscriptionStatus::Pending => pending.push(reader),
                SubscriptionStatus::Confirmed => {
                    events.push(Consent { subscription: id, kind: "confirm", at: row.confirmed_at.unwrap_or(joined), ip })
                }
                SubscriptionStatus::Unsubscribed => events.push(Consent {
                    subscription: id,
                    kind: "unsubscribe",
                    at: row.unsubscribed_at.unwrap_or(now),
                    ip: None,
                }),
            }
        }
        Ok(pending)
    }

    /// The batch's consent records, in one statement.
    fn record_all(c: &mut Conn, events: &[Consent<'_>], settings: &ImportSettings) -> QueryResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    consent_events::subscription_id.eq(e.subscription),
                    consent_events::kind.eq(e.kind),
                    consent_events::at.eq(e.at),
                    consent_events::ip.eq(e.ip),
                    consent_events::user_agent.eq(None::<String>),
                    consent_events::source.eq(SOURCE),
                    consent_events::consent_version.eq(&settings.consent_version),
                )
            })
            .collect();
        // Below SQLite's limit of bound parameters per statement.
        for chunk in rows.chunks(4000) {
            diesel::insert_into(consent_events::table).values(chunk).execute(c)?;
        }
        Ok(())
    }
}

impl Store {
    /// Imports one batch of rows in one transaction (rolled back for a dry
    /// run); an outcome per row, in order.
    pub async fn import_batch(&self, rows: Vec<ImportRow>, settings: ImportSettings) -> StoreResult<Vec<RowOutcome>> {
        self.write(move |conn| {
            on_backend!(conn, self::import_batch(&rows, &settings))?
                .ok_or_else(|| StoreError::Task("the import batch did not run".into()))
        })
        .await
    }
}

//! Deliveries, the dispatcher's side of a digest: claim due ones with a
//! lease, renew or release leases, record results in groups, close digests
//! that have nothing left, and trip a digest's circuit breaker.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{deliveries, digests, subscribers, subscriptions};
use super::{Store, StoreResult};
use crate::domain::{DeliveryStatus, DigestState, FailureClass, SmtpStage, SubscriptionStatus, SuppressionReason};

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

/// Why one send failed, as it is kept with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    pub class: FailureClass,
    pub stage: SmtpStage,
    /// `550 5.1.1`, when the server answered.
    pub code: Option<String>,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Sent,
    Skipped,
    /// Not attempted (its digest was paused or cancelled, or its lease ran
    /// out while it waited): the delivery goes back as it was.
    Released,
    Retry {
        at: NaiveDateTime,
        failure: DeliveryFailure,
    },
    /// For good. A recipient-class failure is a bounce: the delivery is
    /// `bounced` and the address suppressed; any other is `failed`, and
    /// resuming the digest sends it again.
    Failed(DeliveryFailure),
}

/// A result for one delivery of one digest.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub delivery: i64,
    pub digest: i64,
    pub result: DeliveryResult,
}

/// Digests the senders work on.
pub(crate) const OPEN: [&str; 2] = [DigestState::Queued.as_str(), DigestState::Sending.as_str()];

type ClaimRow = (i64, i64, i32, Option<String>, Option<String>, Option<String>, Option<String>, Option<NaiveDateTime>);

/// A digest's recipients and its finished deliveries, as the digest row
/// counts them.
#[derive(Debug, Default, Clone, Copy, Queryable)]
pub(crate) struct Counts {
    pub recipients: i64,
    pub sent: i64,
    pub failed: i64,
    pub rejected: i64,
    pub bounced: i64,
    pub skipped: i64,
    pub cancelled: i64,
}

impl Counts {
    pub fn pending(&self) -> i64 {
        self.recipients - self.sent - self.failed - self.bounced - self.skipped - self.cancelled
    }
}

#[allow(clippy::type_complexity)]
pub(crate) const COUNTS: (
    digests::recipients,
    digests::sent_count,
    digests::failed_count,
    digests::rejected_count,
    digests::bounced_count,
    digests::skipped_count,
    digests::cancelled_count,
) = (
    digests::recipients,
    digests::sent_count,
    digests::failed_count,
    digests::rejected_count,
    digests::bounced_count,
    digests::skipped_count,
    digests::cancelled_count,
);

/// What one group of results changed in a digest's counts. `cancelled` can
/// go down: a message sent while its digest was being cancelled counts as
/// sent, not cancelled.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Finished {
    pub sent: i64,
    pub failed: i64,
    pub rejected: i64,
    pub bounced: i64,
    pub skipped: i64,
    pub cancelled: i64,
}

/// How a group of results moves the digest's run of failures: `reset` when
/// one of them went through (or bounced: the recipient's fault breaks the
/// run), then `add` failures after the last such one.
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    reset: bool,
    add: i64,
    last_error: Option<usize>,
}

/// What a group of results leaves: the counts, the run of failures, and the
/// error of the run's last failure.
struct Outcome<'a> {
    finished: Finished,
    streak: Streak,
    last_error: Option<&'a str>,
}

per_backend! {
    /// Digest messages still to send, from the digests' running counts (no
    /// scan of the deliveries): queued, sending and paused digests.
    pub(crate) fn pending_total(c: &mut Conn) -> QueryResult<i64> {
        let unfinished = [DigestState::Queued.as_str(), DigestState::Sending.as_str(), DigestState::Paused.as_str()];
        let counts: Vec<Counts> = digests::table.filter(digests::status.eq_any(unfinished)).select(COUNTS).load(c)?;
        Ok(counts.iter().map(Counts::pending).sum())
    }

    /// The digests senders work on. Few are open at once.
    pub(crate) fn open_digests(c: &mut Conn) -> QueryResult<Vec<i64>> {
        digests::table.filter(digests::status.eq_any(OPEN)).select(digests::id).load(c)
    }

    pub(crate) fn claim(
        c: &mut Conn,
        limit: i64,
        lease: chrono::Duration,
        active: &[i64],
    ) -> QueryResult<Vec<DeliveryJob>> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            relaxed_commit(c)?;
            // Paused and cancelled digests keep their pending deliveries,
            // but nothing of theirs is claimed: `active` are the open ones,
            // as the caller read them a moment ago (`open_digests`).
            if active.is_empty() {
                return Ok(Vec::new());
            }
            let ids = due_delivery_ids(c, now, limit, active)?;
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
                .filter(digests::status.eq(DigestState::Queued.as_str()))
                .set(digests::status.eq(DigestState::Sending.as_str()))
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

    /// Extends the lease of claimed deliveries still waiting to be sent, so
    /// no sender claims them again meanwhile.
    pub(crate) fn renew(c: &mut Conn, ids: &[i64], lease: chrono::Duration) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        diesel::update(deliveries::table.filter(deliveries::id.eq_any(ids)))
            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .set(deliveries::leased_until.eq(now + lease))
            .execute(c)
            .map(drop)
    }

    /// Records results; says which digests their circuit breaker paused.
    pub(crate) fn record(c: &mut Conn, results: &[Recorded], breaker: i64) -> QueryResult<Vec<i64>> {
        let now = Utc::now().naive_utc();
        let mut digest_ids: Vec<i64> = results.iter().map(|r| r.digest).collect();
        digest_ids.sort_unstable();
        digest_ids.dedup();
        write_tx(c, |c| {
            relaxed_commit(c)?;
            let mut paused = Vec::new();
            for digest in digest_ids {
                let of_digest: Vec<&Recorded> = results.iter().filter(|r| r.digest == digest).collect();
                let outcome = record_for_digest(c, &of_digest, now)?;
                if count_finished(c, digest, &outcome, breaker, now)? {
                    paused.push(digest);
                }
            }
            Ok(paused)
        })
    }

    /// Records one digest's results. Only pending rows change: a message
    /// sent twice (its lease ran out while in flight) is counted once. A
    /// message that went out while its digest was being cancelled is counted
    /// as sent.
    fn record_for_digest<'a>(c: &mut Conn, results: &[&'a Recorded], now: NaiveDateTime) -> QueryResult<Outcome<'a>> {
        let ids: Vec<i64> = results.iter().map(|r| r.delivery).collect();
        let mut statuses = delivery_statuses(c, &ids)?;
        statuses.sort_unstable();
        let status_of = |id: i64| -> Option<DeliveryStatus> {
            let i = statuses.binary_search_by_key(&id, |(id, _)| *id).ok()?;
            DeliveryStatus::parse(&statuses[i].1)
        };
        let mut finished = Finished::default();
        let late: Vec<i64> = results
            .iter()
            .filter(|r| r.result == DeliveryResult::Sent && status_of(r.delivery) == Some(DeliveryStatus::Cancelled))
            .map(|r| r.delivery)
            .collect();
        let results: Vec<&Recorded> =
            results.iter().copied().filter(|r| status_of(r.delivery) == Some(DeliveryStatus::Pending)).collect();
        let ids_with = |want: fn(&DeliveryResult) -> bool| -> Vec<i64> {
            results.iter().filter(|r| want(&r.result)).map(|r| r.delivery).collect()
        };
        let mut sent = ids_with(|r| matches!(r, DeliveryResult::Sent));
        finished.sent = (sent.len() + late.len()) as i64;
        finished.cancelled = -(late.len() as i64);
        sent.extend(late);
        if !sent.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&sent)))
                .set((
                    deliveries::status.eq(DeliveryStatus::Sent.as_str()),
                    deliveries::sent_at.eq(now),
                    deliveries::attempts.eq(deliveries::attempts + 1),
                    deliveries::last_error.eq(None::<String>),
                ))
                .execute(c)?;
        }
        let skipped = ids_with(|r| matches!(r, DeliveryResult::Skipped));
        finished.skipped = skipped.len() as i64;
        if !skipped.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&skipped)))
                .set(deliveries::status.eq(DeliveryStatus::Skipped.as_str()))
                .execute(c)?;
        }
        let released = ids_with(|r| matches!(r, DeliveryResult::Released));
        if !released.is_empty() {
            diesel::update(deliveries::table.filter(deliveries::id.eq_any(&released)))
                .set(deliveries::leased_until.eq(None::<NaiveDateTime>))
                .execute(c)?;
        }
        let mut streak = Streak::default();
        for (i, r) in results.iter().enumerate() {
            match &r.result {
                DeliveryResult::Sent => streak = Streak { reset: true, ..Streak::default() },
                DeliveryResult::Retry { at, failure } => {
                    diesel::update(deliveries::table.find(r.delivery))
                        .set((
                            deliveries::next_attempt_at.eq(at),
                            deliveries::leased_until.eq(None::<NaiveDateTime>),
                            deliveries::attempts.eq(deliveries::attempts + 1),
                            deliveries::last_error.eq(&failure.error),
                            deliveries::failure_class.eq(failure.class.as_str()),
                            deliveries::failure_stage.eq(failure.stage.as_str()),
                            deliveries::failure_code.eq(&failure.code),
                        ))
                        .execute(c)?;
                }
                DeliveryResult::Failed(failure) => {
                    let bounced = failure.class == FailureClass::Recipient;
                    let status = if bounced { DeliveryStatus::Bounced } else { DeliveryStatus::Failed };
                    diesel::update(deliveries::table.find(r.delivery))
                        .set((
                            deliveries::status.eq(status.as_str()),
                            deliveries::attempts.eq(deliveries::attempts + 1),
                            deliveries::last_error.eq(&failure.error),
                            deliveries::failure_class.eq(failure.class.as_str()),
                            deliveries::failure_stage.eq(failure.stage.as_str()),
                            deliveries::failure_code.eq(&failure.code),
                        ))
                        .execute(c)?;
                    if bounced {
                        finished.bounced += 1;
                        streak = Streak { reset: true, ..Streak::default() };
                        suppress_reader_of(c, r.delivery, &failure.error, now)?;
                    } else {
                        finished.failed += 1;
                        if failure.class == FailureClass::Message {
                            finished.rejected += 1;
                        }
                        streak.add += 1;
                        streak.last_error = Some(i);
                    }
                }
                DeliveryResult::Skipped | DeliveryResult::Released => {}
            }
        }
        let last_error = streak.last_error.and_then(|i| match &results[i].result {
            DeliveryResult::Failed(f) => Some(f.error.as_str()),
            _ => None,
        });
        Ok(Outcome { finished, streak, last_error })
    }

    /// A hard bounce: nothing more is sent to this address.
    fn suppress_reader_of(c: &mut Conn, delivery: i64, error: &str, now: NaiveDateTime) -> QueryResult<()> {
        let email: Option<String> = deliveries::table
            .inner_join(subscriptions::table.inner_join(subscribers::table))
            .filter(deliveries::id.eq(delivery))
            .select(subscribers::email)
            .first(c)
            .optional()?;
        match email {
            Some(email) => suppressions_sql::suppress(c, &email, SuppressionReason::HardBounce, "smtp", Some(error), now),
            None => Ok(()),
        }
    }

    /// Adds finished deliveries to the digest's counts, moves its run of
    /// failures, and then pauses the digest (the run reached `breaker`:
    /// true) or closes it (nothing pending). The counts live on the digest row, so two
    /// senders recording at once take turns on it and the later one sees
    /// both: neither can leave a fully sent digest open.
    fn count_finished(
        c: &mut Conn,
        digest: i64,
        outcome: &Outcome<'_>,
        breaker: i64,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let Outcome { finished: f, streak, last_error } = outcome;
        let target = digests::table.find(digest);
        let counts = (
            digests::sent_count.eq(digests::sent_count + f.sent),
            digests::failed_count.eq(digests::failed_count + f.failed),
            digests::rejected_count.eq(digests::rejected_count + f.rejected),
            digests::bounced_count.eq(digests::bounced_count + f.bounced),
            digests::skipped_count.eq(digests::skipped_count + f.skipped),
            digests::cancelled_count.eq(digests::cancelled_count + f.cancelled),
        );
        let returning = (COUNTS, digests::failure_streak, digests::status);
        let counted: Option<(Counts, i64, String)> = if streak.reset {
            diesel::update(target)
                .set((counts, digests::failure_streak.eq(streak.add)))
                .returning(returning)
                .get_result(c)
                .optional()?
        } else {
            diesel::update(target)
                .set((counts, digests::failure_streak.eq(digests::failure_streak + streak.add)))
                .returning(returning)
                .get_result(c)
                .optional()?
        };
        let Some((counts, run, status)) = counted else { return Ok(false) };
        let active = DigestState::parse(&status).is_some_and(DigestState::is_active);
        if active && streak.add > 0 && run >= breaker {
            let reason = format!(
                "paused by itself: the last {run} sends all failed for a reason that is not the readers' \
                 (last: {}). Nobody was unsubscribed. Fix the relay or the message, then resume the digest \
                 (POST /admin/digests/{digest}/resume or `tidings digest resume {digest}`): every reader not \
                 reached yet gets it once.",
                last_error.unwrap_or("unknown")
            );
            tracing::warn!(digest, run, "digest paused by its circuit breaker");
            return pause(c, digest, &reason);
        }
        close_if_done(c, digest, counts, now).map(|()| false)
    }

    /// Marks an open digest finished once nothing is pending: `sent` when
    /// any message went out (or none was due), `failed` when every one failed.
    pub(crate) fn close_if_done(c: &mut Conn, digest: i64, counts: Counts, now: NaiveDateTime) -> QueryResult<()> {
        if counts.pending() > 0 {
            return Ok(());
        }
        let failed = counts.failed + counts.bounced > 0 && counts.sent == 0 && counts.cancelled == 0;
        let status = if failed { DigestState::Failed } else { DigestState::Sent };
        diesel::update(digests::table.find(digest))
            .filter(digests::status.eq_any(OPEN))
            .set((digests::status.eq(status.as_str()), digests::finished_at.eq(now)))
            .execute(c)
            .map(drop)
    }

    /// Pauses an open digest, saying why; false when it was not open.
    pub(crate) fn pause(c: &mut Conn, digest: i64, reason: &str) -> QueryResult<bool> {
        diesel::update(digests::table.find(digest))
            .filter(digests::status.eq_any(OPEN))
            .set((digests::status.eq(DigestState::Paused.as_str()), digests::paused_reason.eq(reason)))
            .execute(c)
            .map(|n| n > 0)
    }

    /// Closes every open digest with nothing pending; run whenever a sender
    /// finds no work. A digest whose counts fall short with nothing pending
    /// lost delivery rows to a hand-run `DELETE` of subscriptions (SQLite
    /// deletes their deliveries with them): those readers count as skipped.
    pub(crate) fn finish_idle(c: &mut Conn) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            let open: Vec<i64> = digests::table
                .filter(digests::status.eq_any(OPEN))
                .select(digests::id)
                .load(c)?;
            for digest in open {
                lock_digest(c, digest)?;
                let counts: Counts = digests::table.find(digest).select(COUNTS).first(c)?;
                let missing = counts.pending();
                if missing > 0 {
                    let pending = deliveries::table
                        .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                        .filter(deliveries::digest_id.eq(digest))
                        .select(deliveries::id)
                        .first::<i64>(c)
                        .optional()?;
                    if pending.is_some() {
                        continue;
                    }
                    tracing::warn!(digest, missing, "deliveries gone from the database; counted as skipped");
                    let outcome = Outcome {
                        finished: Finished { skipped: missing, ..Finished::default() },
                        streak: Streak::default(),
                        last_error: None,
                    };
                    count_finished(c, digest, &outcome, i64::MAX, now)?;
                } else {
                    close_if_done(c, digest, counts, now)?;
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
    /// Claims up to `limit` due deliveries of the digests in `active` (read
    /// with `open_digests`: a digest paused since is caught before sending).
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease: chrono::Duration,
        active: Vec<i64>,
    ) -> StoreResult<Vec<DeliveryJob>> {
        self.write(move |conn| Ok(on_backend!(conn, self::claim(limit, lease, &active))?)).await
    }

    pub async fn open_digests(&self) -> StoreResult<Vec<i64>> {
        self.read(|conn| Ok(on_backend!(conn, self::open_digests())?)).await
    }

    /// Records results; a digest whose last `breaker` finished sends all
    /// failed for a reason that is not the recipient's pauses itself.
    pub async fn record_deliveries(&self, results: Vec<Recorded>, breaker: u32) -> StoreResult<Vec<i64>> {
        self.write(move |conn| Ok(on_backend!(conn, self::record(&results, i64::from(breaker)))?)).await
    }

    pub async fn renew_delivery_leases(&self, ids: Vec<i64>, lease: chrono::Duration) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::renew(&ids, lease))?)).await
    }

    pub async fn finish_idle_digests(&self) -> StoreResult<()> {
        self.write(|conn| Ok(on_backend!(conn, self::finish_idle())?)).await
    }

    pub async fn release_deliveries(&self, ids: Vec<i64>) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::release(&ids))?)).await
    }
}

impl Store {
    pub async fn deliveries_pending(&self) -> StoreResult<i64> {
        self.read(|conn| Ok(on_backend!(conn, self::pending_total())?)).await
    }
}

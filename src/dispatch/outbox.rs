use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::lease::Held;
use super::{SendContext, Verdict, after, outcome, verdict};
use crate::bounce::Target;
use crate::domain::FailureClass;
use crate::store::outbox::{OutboxJob, OutboxMail, OutboxResult};
use crate::telemetry::meters::SendMeters;

/// The metrics of each kind of outbox mail.
struct OutboxMeters {
    confirmation: SendMeters,
    welcome: SendMeters,
    manage: SendMeters,
}

impl OutboxMeters {
    fn new() -> Self {
        Self {
            confirmation: SendMeters::new("confirmation"),
            welcome: SendMeters::new("welcome"),
            manage: SendMeters::new("manage"),
        }
    }

    fn of(&self, mail: &OutboxMail) -> Option<&SendMeters> {
        match mail {
            OutboxMail::Confirmation(_) => Some(&self.confirmation),
            OutboxMail::Welcome(_) => Some(&self.welcome),
            OutboxMail::Manage(_) => Some(&self.manage),
            OutboxMail::Unsendable(_) => None,
        }
    }
}

/// Delivers the outbox (confirmations, welcomes, "manage" links). Wakes when a signup queues mail,
/// and polls for retries that have come due.
///
/// A round claims at most `smtp_concurrency` rows, sends them side by side
/// and records their results before the next round: like the digest sender,
/// a crash leaves at most `smtp_concurrency` messages sent but unrecorded.
pub struct OutboxSender {
    ctx: SendContext,
    meters: OutboxMeters,
    wake: Arc<Notify>,
    held: Arc<Held>,
}

impl OutboxSender {
    pub fn new(ctx: SendContext, wake: Arc<Notify>) -> Self {
        let held = Arc::new(Held::new(Duration::from_secs(ctx.settings.delivery_lease_secs)));
        Self { ctx, wake, held, meters: OutboxMeters::new() }
    }

    /// A claim is a lease: a sender that dies (or loses the database
    /// mid-claim) leaves its rows to be claimed again when it runs out.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.held.lease()).unwrap_or(chrono::Duration::MAX)
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.ctx.settings.outbox_poll_ms);
        let round = self.ctx.settings.smtp_concurrency;
        let renewer = {
            let (held, store, lease) = (Arc::clone(&self.held), self.ctx.store.clone(), self.lease());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                held.keep_renewed(|ids| store.renew_outbox_leases(ids, lease), shutdown).await;
            })
        };
        while !*shutdown.borrow() {
            let claimed_at = Instant::now();
            let jobs = match self.ctx.store.claim_outbox(round as i64, self.lease()).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim outbox mail; retrying");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            self.held.hold(jobs.iter().map(|j| j.id), claimed_at);
            // In-flight sends finish even when shutdown is asked for meanwhile;
            // the round's results are recorded in one transaction.
            let results: Vec<(i64, OutboxResult)> = futures_util::stream::iter(jobs)
                .map(|job| {
                    let span = tracing::info_span!("outbox", id = job.id);
                    let id = job.id;
                    self.deliver(job).instrument(span).map(move |r| (id, r))
                })
                .buffer_unordered(round)
                .collect()
                .await;
            let ids: Vec<i64> = results.iter().map(|(id, _)| *id).collect();
            self.record(results).await;
            for id in ids {
                self.held.release(id);
            }
        }
        let _ = renewer.await;
    }

    async fn deliver(&self, job: OutboxJob) -> OutboxResult {
        let attempts = u32::try_from(job.attempts).unwrap_or(0);
        let message = match &job.mail {
            OutboxMail::Confirmation(confirmation) => self.ctx.messages.confirmation(&job.email, confirmation),
            OutboxMail::Welcome(welcome) => self.ctx.messages.welcome(&job.email, welcome),
            OutboxMail::Manage(manage) => self.ctx.messages.manage(&job.email, manage),
            OutboxMail::Unsendable(why) => {
                tracing::info!(why, "outbox mail not sent");
                return OutboxResult::Failed { error: format!("not sent: {why}") };
            }
        };
        let mut message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "could not build outbox mail");
                return OutboxResult::Failed { error: e.to_string() };
            }
        };
        self.ctx.tagger.stamp(&mut message, Target::Outbox(job.id));
        self.ctx.rate.acquire().await;
        if !self.held.still_ours(job.id, self.held.lease() / 3) {
            tracing::warn!("lease of a claimed confirmation ran out before it was sent; giving it back");
            return OutboxResult::Released;
        }
        let started = Instant::now();
        let result = self.ctx.mailer.send(&message).await;
        let took = started.elapsed();
        if self.ctx.mailer.is_file() {
            if let OutboxMail::Confirmation(c) = &job.mail {
                // Development only: the .eml is on disk anyway, and this is
                // the quickest way to click through a local signup.
                tracing::info!(url = %self.ctx.messages.links.confirm_url(&c.token_public_id), "confirmation link");
            }
        }
        // A relay that refuses the session itself (login, TLS) refuses every
        // confirmation alike: that is ours to fix, so it is retried like a
        // temporary failure instead of losing the reader's confirmation.
        let result = result.map_err(|mut e| {
            if e.stage.is_session() && e.class() == FailureClass::Message {
                e.code = None;
            }
            e
        });
        let verdict = verdict(&self.ctx.settings, attempts, result);
        if let Some(meters) = self.meters.of(&job.mail) {
            meters.record(outcome(&verdict), Some(took));
        }
        match verdict {
            Verdict::Sent => {
                // Routine, like each digest message: failures are what an
                // operator needs at the default level.
                tracing::debug!(message_id = %message.message_id, "outbox mail sent");
                OutboxResult::Sent
            }
            Verdict::RetryAfter(delay, failure) => {
                tracing::warn!(error = %failure.error, retry_in = ?delay, "outbox mail not sent; will retry");
                OutboxResult::Retry { at: after(delay), error: failure.error }
            }
            Verdict::Failed(failure) => {
                tracing::error!(error = %failure.error, class = %failure.class, "outbox mail failed for good");
                OutboxResult::Failed { error: failure.error }
            }
        }
    }

    async fn record(&self, results: Vec<(i64, OutboxResult)>) {
        if let Err(e) = self.ctx.store.record_outbox(results).await {
            // The lease runs out and the rows are claimed again: at worst one
            // round of duplicate confirmations, never a lost one.
            tracing::error!(error = %e, "could not record outbox results");
        }
    }
}

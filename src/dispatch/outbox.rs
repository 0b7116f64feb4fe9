use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use super::{SendContext, Verdict, after, verdict};
use crate::store::outbox::{OutboxJob, OutboxResult};

/// Rows claimed per round.
const BATCH: i64 = 64;

/// Delivers the outbox (confirmation emails). Wakes when a signup queues mail,
/// and polls for retries that have come due.
pub struct OutboxSender {
    ctx: SendContext,
    wake: Arc<Notify>,
}

impl OutboxSender {
    pub fn new(ctx: SendContext, wake: Arc<Notify>) -> Self {
        Self { ctx, wake }
    }

    /// A claim is a lease: a sender that dies (or loses the database
    /// mid-claim) leaves its rows to be claimed again when it runs out.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.ctx.settings.delivery_lease_secs).unwrap_or(i64::MAX))
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.ctx.settings.outbox_poll_ms);
        while !*shutdown.borrow() {
            let jobs = match self.ctx.store.claim_outbox(BATCH, self.lease()).await {
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
            // In-flight sends finish even when shutdown is asked for meanwhile;
            // the round's results are recorded in one transaction.
            let results: Vec<(i64, OutboxResult)> = futures_util::stream::iter(jobs)
                .map(|job| {
                    let span = tracing::info_span!("outbox", id = job.id);
                    let id = job.id;
                    self.deliver(job).instrument(span).map(move |r| (id, r))
                })
                .buffer_unordered(self.ctx.settings.smtp_concurrency)
                .collect()
                .await;
            self.record(results).await;
        }
    }

    async fn deliver(&self, job: OutboxJob) -> OutboxResult {
        let attempts = u32::try_from(job.attempts).unwrap_or(0);
        let message = match &job.confirmation {
            Some(confirmation) => self.ctx.messages.confirmation(&job.email, confirmation),
            None => {
                return OutboxResult::Failed { error: "unknown outbox kind".into() };
            }
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "could not build outbox mail");
                return OutboxResult::Failed { error: e.to_string() };
            }
        };
        self.ctx.rate.acquire().await;
        let result = self.ctx.mailer.send(&message).await;
        if self.ctx.mailer.is_file() {
            if let Some(c) = &job.confirmation {
                // Development only: the .eml is on disk anyway, and this is
                // the quickest way to click through a local signup.
                tracing::info!(url = %self.ctx.messages.links.confirm_url(&c.token_public_id), "confirmation link");
            }
        }
        match verdict(&self.ctx.settings, attempts, result) {
            Verdict::Sent => {
                // Routine, like each digest message: failures are what an
                // operator needs at the default level.
                tracing::debug!(message_id = %message.message_id, "confirmation sent");
                OutboxResult::Sent
            }
            Verdict::RetryAfter(delay, error) => {
                tracing::warn!(%error, retry_in = ?delay, "confirmation not sent; will retry");
                OutboxResult::Retry { at: after(delay), error }
            }
            Verdict::Failed(error) => {
                tracing::error!(%error, "confirmation failed for good");
                OutboxResult::Failed { error }
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

//! The digest sender: a pipeline that claims deliveries in batches, sends
//! them over `smtp_concurrency` workers and records the results in group
//! commits. A worker takes its next message only once the result of its last
//! one is committed, so at most `smtp_concurrency` messages are ever sent but
//! not recorded: the bound on duplicates after a crash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tracing::Instrument;

use super::{SendContext, Verdict, after, verdict};
use crate::mail::{PreparedDigest, SendError};
use crate::store::Store;
use crate::store::digests::{DeliveryJob, DeliveryResult};

/// Results committed in one transaction at most.
const MAX_GROUP: usize = 512;

/// How long a commit waits for more results once it has its first. Each
/// commit has a fixed cost (on SQLite, writing every page it touched to the
/// WAL; on PostgreSQL, a handful of round trips), so a few milliseconds
/// spent gathering a bigger group cost less than the commits they save.
const LINGER: Duration = Duration::from_millis(2);

type Recorded = (i64, i64, DeliveryResult, oneshot::Sender<()>);

pub struct DigestSender {
    ctx: SendContext,
    wake: Arc<Notify>,
    prepared: StdMutex<HashMap<i64, Arc<PreparedDigest>>>,
    /// Held while a digest is loaded and rendered, so the workers that all
    /// meet a new digest at once wait for one load instead of each starting
    /// its own (each on a blocking thread of its own: a hundred threads,
    /// and their memory, for one digest).
    preparing: Mutex<()>,
}

impl DigestSender {
    pub fn new(ctx: SendContext, wake: Arc<Notify>) -> Self {
        Self { ctx, wake, prepared: StdMutex::new(HashMap::new()), preparing: Mutex::new(()) }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let workers = this.ctx.settings.smtp_concurrency;
        let batch = (workers * 4).clamp(64, 2048);
        let (job_tx, job_rx) = mpsc::channel::<DeliveryJob>(batch);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, result_rx) = mpsc::channel::<Recorded>(workers * 2);
        let recorder = tokio::spawn(record(this.ctx.store.clone(), result_rx, (workers / 2).max(1)));
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let worker = Arc::clone(&this).work(Arc::clone(&job_rx), result_tx.clone(), shutdown.clone());
            handles.push(tokio::spawn(worker));
        }
        drop(result_tx);

        let lease = chrono::Duration::seconds(this.ctx.settings.delivery_lease_secs as i64);
        let poll = Duration::from_millis(this.ctx.settings.outbox_poll_ms);
        while !*shutdown.borrow() {
            // Claim only what the workers can take soon: claimed rows wait in
            // memory, and their lease must not run out before they are sent.
            let permits = tokio::select! {
                p = job_tx.reserve_many(batch / 2) => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let jobs = match this.ctx.store.claim_deliveries(permits.len() as i64, lease).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim deliveries; retrying");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                drop(permits);
                if let Err(e) = this.ctx.store.finish_idle_digests().await {
                    tracing::warn!(error = %e, "could not close finished digests");
                }
                tokio::select! {
                    () = this.wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            for (permit, job) in permits.zip(jobs) {
                permit.send(job);
            }
        }

        // Shutdown: workers finish the message in hand; claimed messages not
        // yet started go back at once rather than at the end of their lease.
        drop(job_tx);
        for handle in handles {
            let _ = handle.await;
        }
        let mut left = Vec::new();
        while let Ok(job) = job_rx.lock().await.try_recv() {
            left.push(job.id);
        }
        if !left.is_empty() {
            if let Err(e) = this.ctx.store.release_deliveries(left).await {
                tracing::warn!(error = %e, "could not release claimed deliveries; their lease will expire");
            }
        }
        let _ = recorder.await;
    }

    async fn work(
        self: Arc<Self>,
        jobs: Arc<Mutex<mpsc::Receiver<DeliveryJob>>>,
        results: mpsc::Sender<Recorded>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let job = {
                let mut jobs = jobs.lock().await;
                tokio::select! {
                    job = jobs.recv() => job,
                    _ = shutdown.changed() => None,
                }
            };
            let Some(job) = job else { return };
            let span = tracing::debug_span!("delivery", id = job.id, digest = job.digest_id);
            let result = self.deliver(&job).instrument(span).await;
            let (ack, acked) = oneshot::channel();
            if results.send((job.id, job.digest_id, result, ack)).await.is_err() {
                return;
            }
            let _ = acked.await;
        }
    }

    async fn deliver(&self, job: &DeliveryJob) -> DeliveryResult {
        if !job.still_wanted {
            return DeliveryResult::Skipped;
        }
        let digest = match self.prepared(job.digest_id).await {
            Ok(d) => d,
            Err(e) => return self.judge(job, Err(SendError::Transient(e))),
        };
        let message = match self.ctx.messages.digest_for(&digest, &job.email, job.name.as_deref(), &job.unsubscribe_id)
        {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "could not build a digest message");
                return DeliveryResult::Failed { error: e.to_string(), suppress: false };
            }
        };
        self.ctx.rate.acquire().await;
        let sent = self.ctx.mailer.send(&message).await;
        self.judge(job, sent)
    }

    fn judge(&self, job: &DeliveryJob, sent: Result<(), SendError>) -> DeliveryResult {
        let suppress = matches!(sent, Err(SendError::Permanent(_)));
        match verdict(&self.ctx.settings, u32::try_from(job.attempts).unwrap_or(0), sent) {
            Verdict::Sent => DeliveryResult::Sent,
            Verdict::RetryAfter(delay, error) => {
                tracing::warn!(%error, retry_in = ?delay, "digest message not sent; will retry");
                DeliveryResult::Retry { at: after(delay), error }
            }
            Verdict::Failed(error) => {
                tracing::warn!(%error, suppress, "digest message failed for good");
                DeliveryResult::Failed { error, suppress }
            }
        }
    }

    /// The digest rendered once per process, shared by every worker.
    async fn prepared(&self, digest_id: i64) -> Result<Arc<PreparedDigest>, String> {
        if let Some(found) = self.cache().get(&digest_id) {
            return Ok(Arc::clone(found));
        }
        let _preparing = self.preparing.lock().await;
        if let Some(found) = self.cache().get(&digest_id) {
            return Ok(Arc::clone(found));
        }
        let content = self
            .ctx
            .store
            .digest_content(digest_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("digest {digest_id} is gone"))?;
        let prepared = Arc::new(self.ctx.messages.prepare_digest(&content).map_err(|e| e.to_string())?);
        let mut cache = self.cache();
        if cache.len() > 32 {
            cache.clear();
        }
        cache.insert(digest_id, Arc::clone(&prepared));
        Ok(prepared)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<PreparedDigest>>> {
        self.prepared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Commits results in groups: whatever arrives while the previous commit
/// runs, or within `LINGER` of the group's first result, up to `enough`, goes
/// into the next one; then every worker in the group is released.
async fn record(store: Store, mut results: mpsc::Receiver<Recorded>, enough: usize) {
    while let Some(first) = results.recv().await {
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while group.len() < enough.min(MAX_GROUP) {
            match tokio::time::timeout_at(deadline, results.recv()).await {
                Ok(Some(r)) => group.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        while group.len() < MAX_GROUP {
            match results.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let rows: Vec<_> = group.iter().map(|(id, digest, r, _)| (*id, *digest, r.clone())).collect();
        let mut delay = Duration::from_millis(200);
        for attempt in 1.. {
            match store.record_deliveries(rows.clone()).await {
                Ok(()) => break,
                Err(e) if attempt < 12 => {
                    tracing::warn!(error = %e, attempt, "could not record deliveries; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    // Their lease runs out and they are sent again: duplicates,
                    // never losses.
                    tracing::error!(error = %e, count = rows.len(), "giving up recording deliveries");
                    break;
                }
            }
        }
        for (.., ack) in group {
            let _ = ack.send(());
        }
    }
}

//! The digest sender: a pipeline that claims deliveries in batches, sends
//! them over `smtp_concurrency` workers and records the results in group
//! commits. A worker takes its next message only once the result of its last
//! one is committed, so at most `smtp_concurrency` messages are ever sent but
//! not recorded: the bound on duplicates after a crash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::lease::Held;
use super::{SendContext, Verdict, after, outcome, verdict};
use crate::bounce::Target;
use crate::domain::{FailureClass, SmtpStage};
use crate::mail::{PreparedDigest, SendError};
use crate::store::Store;
use crate::store::deliveries::{DeliveryFailure, DeliveryJob, DeliveryResult, Recorded};
use crate::telemetry::meters::SendMeters;

/// Results committed in one transaction at most.
const MAX_GROUP: usize = 512;

/// How long a commit waits for more results once it has its first. Each
/// commit has a fixed cost (on SQLite, writing every page it touched to the
/// WAL; on PostgreSQL, a handful of round trips), so a few milliseconds
/// spent gathering a bigger group cost less than the commits they save.
const LINGER: Duration = Duration::from_millis(2);

/// How long a digest's state (open, or paused/cancelled) is trusted before
/// a worker looks again: a pause from another process stops this one's
/// sends within this.
const STATE_TTL: Duration = Duration::from_secs(1);

/// A result on its way to the recorder, and the worker waiting for it.
type Outcome = (Recorded, oneshot::Sender<()>);

pub struct DigestSender {
    ctx: SendContext,
    meters: SendMeters,
    wake: Arc<Notify>,
    prepared: StdMutex<HashMap<i64, Arc<PreparedDigest>>>,
    /// Held while a digest is loaded and rendered, so the workers that all
    /// meet a new digest at once wait for one load instead of each starting
    /// its own (each on a blocking thread of its own: a hundred threads,
    /// and their memory, for one digest).
    preparing: Mutex<()>,
    /// Whether each digest in hand may still be sent, and when that was
    /// read from the database.
    open: Arc<StdMutex<HashMap<i64, (bool, Instant)>>>,
    /// The open digests, and when they were read: asked once per
    /// `STATE_TTL` rather than in every claim (a claim is a few rows, and
    /// one statement fewer each is measurable on PostgreSQL).
    active: StdMutex<Option<(Vec<i64>, Instant)>>,
    held: Arc<Held>,
}

impl DigestSender {
    pub fn new(ctx: SendContext, wake: Arc<Notify>) -> Self {
        let held = Arc::new(Held::new(Duration::from_secs(ctx.settings.delivery_lease_secs)));
        Self {
            ctx,
            meters: SendMeters::new("digest"),
            wake,
            prepared: StdMutex::new(HashMap::new()),
            preparing: Mutex::new(()),
            open: Arc::default(),
            active: StdMutex::new(None),
            held,
        }
    }

    /// The open digests, as the database said at most `STATE_TTL` ago.
    async fn active_digests(&self) -> Vec<i64> {
        if let Some((ids, at)) = lock(&self.active).as_ref() {
            if at.elapsed() < STATE_TTL {
                return ids.clone();
            }
        }
        match self.ctx.store.open_digests().await {
            Ok(ids) => {
                *lock(&self.active) = Some((ids.clone(), Instant::now()));
                ids
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the open digests; retrying");
                Vec::new()
            }
        }
    }

    /// How many claimed deliveries may wait in memory. Under a send-rate
    /// limit, no more than can go out in half a lease: leases are renewed
    /// anyway, but rows claimed far ahead are rows other workers cannot take.
    fn queue_capacity(&self) -> usize {
        let workers = self.ctx.settings.smtp_concurrency;
        let batch = (workers * 4).clamp(64, 2048);
        let rate = self.ctx.settings.send_rate_per_second;
        if rate <= 0.0 {
            return batch;
        }
        let in_half_a_lease = (rate * self.held.lease().as_secs_f64() / 2.0) as usize;
        in_half_a_lease.saturating_sub(workers).clamp(1, batch)
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let workers = this.ctx.settings.smtp_concurrency;
        let batch = this.queue_capacity();
        let (job_tx, job_rx) = mpsc::channel::<DeliveryJob>(batch);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, result_rx) = mpsc::channel::<Outcome>(workers * 2);
        let recorder = tokio::spawn(record(
            this.ctx.store.clone(),
            result_rx,
            (workers / 2).max(1),
            this.ctx.settings.digest_breaker_failures,
            Arc::clone(&this.open),
        ));
        let renewer = {
            let (held, store, lease) = (Arc::clone(&this.held), this.ctx.store.clone(), this.lease());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                held.keep_renewed(|ids| store.renew_delivery_leases(ids, lease), shutdown).await;
            })
        };
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let worker = Arc::clone(&this).work(Arc::clone(&job_rx), result_tx.clone(), shutdown.clone());
            handles.push(tokio::spawn(worker));
        }
        drop(result_tx);

        let lease = this.lease();
        let poll = Duration::from_millis(this.ctx.settings.outbox_poll_ms);
        while !*shutdown.borrow() {
            // Claim only what the workers can take soon: claimed rows wait in
            // memory, and their lease must not run out before they are sent.
            let permits = tokio::select! {
                p = job_tx.reserve_many((batch / 2).max(1)) => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let claimed_at = Instant::now();
            let active = this.active_digests().await;
            let jobs = match this.ctx.store.claim_deliveries(permits.len() as i64, lease, active).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim deliveries; retrying");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                drop(permits);
                // Nothing to do: look again at which digests are open.
                *lock(&this.active) = None;
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
            this.held.hold(jobs.iter().map(|j| j.id), claimed_at);
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
            this.held.release(job.id);
            left.push(job.id);
        }
        if !left.is_empty() {
            if let Err(e) = this.ctx.store.release_deliveries(left).await {
                tracing::warn!(error = %e, "could not release claimed deliveries; their lease will expire");
            }
        }
        let _ = recorder.await;
        let _ = renewer.await;
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.held.lease()).unwrap_or(chrono::Duration::MAX)
    }

    async fn work(
        self: Arc<Self>,
        jobs: Arc<Mutex<mpsc::Receiver<DeliveryJob>>>,
        results: mpsc::Sender<Outcome>,
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
            let recorded = Recorded { delivery: job.id, digest: job.digest_id, result };
            if results.send((recorded, ack)).await.is_err() {
                return;
            }
            let _ = acked.await;
            self.held.release(job.id);
        }
    }

    async fn deliver(&self, job: &DeliveryJob) -> DeliveryResult {
        if !job.still_wanted {
            return DeliveryResult::Skipped;
        }
        if !self.is_open(job.digest_id).await {
            return DeliveryResult::Released;
        }
        let digest = match self.prepared(job.digest_id).await {
            Ok(d) => d,
            Err(e) => return self.judge(job, Err(SendError::without_reply(SmtpStage::Local, e)), None),
        };
        let mut message =
            match self.ctx.messages.digest_for(&digest, &job.email, job.name.as_deref(), &job.unsubscribe_id) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "could not build a digest message");
                    let error = format!("could not build the message: {e}");
                    return DeliveryResult::Failed(DeliveryFailure {
                        class: FailureClass::Message,
                        stage: SmtpStage::Local,
                        code: None,
                        error,
                    });
                }
            };
        self.ctx.tagger.stamp(&mut message, Target::Delivery(job.id));
        self.ctx.rate.acquire().await;
        // Renewed while it waited; should the database have been away for
        // longer than the lease, another sender may hold it now.
        if !self.held.still_ours(job.id, self.held.lease() / 3) {
            tracing::warn!("lease of a claimed delivery ran out before it was sent; giving it back");
            return DeliveryResult::Released;
        }
        let started = Instant::now();
        let sent = self.ctx.mailer.send(&message).await;
        self.judge(job, sent, Some(started.elapsed()))
    }

    fn judge(&self, job: &DeliveryJob, sent: Result<(), SendError>, took: Option<Duration>) -> DeliveryResult {
        let verdict = verdict(&self.ctx.settings, u32::try_from(job.attempts).unwrap_or(0), sent);
        self.meters.record(outcome(&verdict), took);
        match verdict {
            Verdict::Sent => DeliveryResult::Sent,
            Verdict::RetryAfter(delay, failure) => {
                tracing::warn!(error = %failure.error, retry_in = ?delay, "digest message not sent; will retry");
                DeliveryResult::Retry { at: after(delay), failure }
            }
            Verdict::Failed(failure) => {
                tracing::warn!(error = %failure.error, class = %failure.class, "digest message failed for good");
                DeliveryResult::Failed(failure)
            }
        }
    }

    /// Whether the digest may still be sent (not paused or cancelled), as
    /// the database said at most `STATE_TTL` ago.
    ///
    /// One worker asks the database when the answer is stale; the others
    /// meanwhile go by the last one (a digest is open when first met: it
    /// was claimed from the open ones). Without this, every worker asked at
    /// once each time the answer aged, one statement each.
    async fn is_open(&self, digest: i64) -> bool {
        {
            let mut states = lock(&self.open);
            let last = match states.get(&digest) {
                Some(&(open, at)) if at.elapsed() < STATE_TTL => return open,
                Some(&(open, _)) => open,
                None => true,
            };
            states.insert(digest, (last, Instant::now()));
        }
        match self.ctx.store.digest_state(digest).await {
            Ok(state) => {
                let open = state.is_some_and(|s| s.is_active());
                let mut states = lock(&self.open);
                if states.len() > 1024 {
                    states.clear();
                }
                states.insert(digest, (open, Instant::now()));
                open
            }
            // The claim said it was open; the record will tell again.
            Err(_) => true,
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
        lock(&self.prepared)
    }
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Commits results in groups: whatever arrives while the previous commit
/// runs, or within `LINGER` of the group's first result, up to `enough`, goes
/// into the next one; then every worker in the group is released.
async fn record(
    store: Store,
    mut results: mpsc::Receiver<Outcome>,
    enough: usize,
    breaker: u32,
    open: Arc<StdMutex<HashMap<i64, (bool, Instant)>>>,
) {
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
        let rows: Vec<Recorded> = group.iter().map(|(r, _)| r.clone()).collect();
        let mut delay = Duration::from_millis(200);
        for attempt in 1.. {
            match store.record_deliveries(rows.clone(), breaker).await {
                Ok(paused) => {
                    // This process's workers stop at once; others within STATE_TTL.
                    let mut open = lock(&open);
                    for digest in paused {
                        open.insert(digest, (false, Instant::now()));
                    }
                    break;
                }
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
        for (_, ack) in group {
            let _ = ack.send(());
        }
    }
}

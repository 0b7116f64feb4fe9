use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::Store;

/// One ceiling on messages per second for every sender of every process
/// sharing the database (providers limit the account, not the connection).
/// Each process spaces its sends evenly at its share of the cap: the cap
/// divided by the live sending processes, counted by heartbeat (`run_share`).
/// No bursts: an idle period earns no credit.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    /// The processes sharing the cap, this one included (at least 1).
    sharing: AtomicU64,
    next: Mutex<Instant>,
}

/// How often a process says it is alive, and learns how many others are.
const HEARTBEAT: Duration = Duration::from_secs(1);

impl RateLimiter {
    /// `per_second` of 0 means no limit.
    pub fn new(per_second: f64) -> Self {
        Self { per_second, sharing: AtomicU64::new(1), next: Mutex::new(Instant::now()) }
    }

    pub fn is_limited(&self) -> bool {
        self.per_second > 0.0
    }

    /// This process's interval between two sends.
    fn interval(&self) -> Option<Duration> {
        let sharing = self.sharing.load(Ordering::Relaxed).max(1) as f64;
        self.is_limited().then(|| Duration::from_secs_f64(sharing / self.per_second))
    }

    /// Sets how many processes share the cap.
    pub fn share_with(&self, processes: u64) {
        self.sharing.store(processes.max(1), Ordering::Relaxed);
    }

    pub async fn acquire(&self) {
        let Some(interval) = self.interval() else { return };
        let at = {
            let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = (*next).max(Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Keeps this process's share right while it sends: a heartbeat every
    /// second, which also counts the live senders. A process that cannot
    /// reach the database keeps its last share (it cannot claim work then
    /// either).
    pub async fn run_share(&self, store: Store, mut shutdown: watch::Receiver<bool>) {
        if !self.is_limited() {
            return;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        while !*shutdown.borrow() {
            match store.sender_heartbeat(id.clone()).await {
                Ok(live) => self.share_with(u64::try_from(live).unwrap_or(1)),
                Err(e) => tracing::warn!(error = %e, "could not count the senders sharing the send rate"),
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                _ = shutdown.changed() => {}
            }
        }
        if let Err(e) = store.sender_leaves(id).await {
            tracing::warn!(error = %e, "could not sign off from the send rate");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_permits_evenly() {
        let limiter = RateLimiter::new(100.0);
        let start = Instant::now();
        for _ in 0..51 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_spaces_permits_wider() {
        let limiter = RateLimiter::new(100.0);
        limiter.share_with(2);
        let start = Instant::now();
        for _ in 0..51 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unlimited() {
        let limiter = RateLimiter::new(0.0);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

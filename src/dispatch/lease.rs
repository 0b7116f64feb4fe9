//! Claimed mail a sender holds in memory (queued for a worker, waiting for
//! the rate limit, or being sent), with when each lease ends. A background
//! loop renews the leases of everything held, so nothing is claimed again
//! while it waits, whatever the rate limit and the concurrency; a sender
//! checks the lease before it sends, so a lease lost (the database away for
//! longer than a lease) never turns into a second copy from this process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub struct Held {
    lease: Duration,
    ends: Mutex<HashMap<i64, Instant>>,
}

impl Held {
    pub fn new(lease: Duration) -> Self {
        Self { lease, ends: Mutex::new(HashMap::new()) }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn ends(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Instant>> {
        self.ends.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rows just claimed at `claimed_at` (taken before the claim query, so
    /// the lease in memory never outlives the one in the database).
    pub fn hold(&self, ids: impl IntoIterator<Item = i64>, claimed_at: Instant) {
        let end = claimed_at + self.lease;
        self.ends().extend(ids.into_iter().map(|id| (id, end)));
    }

    /// The row's result is recorded (or it was given back).
    pub fn release(&self, id: i64) {
        self.ends().remove(&id);
    }

    /// Whether the row is still ours for `needed` more. Held rows are renewed
    /// every third of a lease, so one with less than that left has missed a
    /// renewal: the database may have let it go to another sender.
    pub fn still_ours(&self, id: i64, needed: Duration) -> bool {
        self.ends().get(&id).is_some_and(|end| *end > Instant::now() + needed)
    }

    /// Renews every held lease a third of the way through it, until
    /// shutdown. `renew` extends the given rows' leases in the database.
    pub async fn keep_renewed<F, Fut, E>(&self, renew: F, mut shutdown: watch::Receiver<bool>)
    where
        F: Fn(Vec<i64>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let every = (self.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            let ids: Vec<i64> = self.ends().keys().copied().collect();
            if ids.is_empty() {
                continue;
            }
            let started = Instant::now();
            match renew(ids.clone()).await {
                Ok(()) => {
                    let mut ends = self.ends();
                    for id in ids {
                        // Only rows still held: one recorded meanwhile is gone.
                        if let Some(end) = ends.get_mut(&id) {
                            *end = started + self.lease;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not renew the leases of claimed mail"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn leases_are_renewed_while_held() {
        let held = std::sync::Arc::new(Held::new(Duration::from_secs(9)));
        held.hold([1, 2], Instant::now());
        let (stop, shutdown) = watch::channel(false);
        let renewed = std::sync::Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (held, renewed) = (held.clone(), renewed.clone());
            tokio::spawn(async move {
                held.keep_renewed(
                    |ids| {
                        renewed.lock().unwrap().push(ids.len());
                        async { Ok::<(), String>(()) }
                    },
                    shutdown,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(held.still_ours(1, Duration::from_secs(5)), "renewed past its first lease");
        held.release(1);
        assert!(!held.still_ours(1, Duration::ZERO));
        assert!(held.still_ours(2, Duration::from_secs(5)));
        assert!(renewed.lock().unwrap().len() >= 6);
        let _ = stop.send(true);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_that_ran_out_is_not_ours() {
        let held = Held::new(Duration::from_secs(10));
        held.hold([7], Instant::now());
        assert!(held.still_ours(7, Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!held.still_ours(7, Duration::from_secs(5)), "a send could outlive the lease");
    }
}

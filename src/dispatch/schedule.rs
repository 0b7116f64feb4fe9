//! Scheduled digests: at each slot of a list's schedule, pull its feed and
//! send a digest when there is a new post. Exactly one process runs each
//! slot (the store's claim), whatever number of `serve` and `worker`
//! processes share the database; a slot missed while all were down is
//! run once at start if it is younger than `schedule_grace_hours`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, watch};

use crate::config::Settings;
use crate::domain::{ListSlug, Schedule};
use crate::feed;
use crate::store::Store;
use crate::store::digests::TriggerOutcome;

pub struct Scheduler {
    store: Store,
    settings: Arc<Settings>,
    digest_wake: Arc<Notify>,
    lists: Vec<(ListSlug, Schedule, bool)>,
}

impl Scheduler {
    /// `None` when no list has a schedule.
    pub fn new(store: Store, settings: Arc<Settings>, digest_wake: Arc<Notify>) -> Option<Self> {
        let lists: Vec<_> = settings
            .lists
            .iter()
            .filter_map(|l| match l.schedule() {
                Some(Ok(schedule)) => Some((l.slug.clone(), schedule, l.feed_url.is_some())),
                // Checked at start-up: a list with a bad schedule never gets here.
                _ => None,
            })
            .collect();
        (!lists.is_empty()).then_some(Self { store, settings, digest_wake, lists })
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.settings.schedule_poll_secs);
        loop {
            self.tick().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Runs every due slot nobody has claimed.
    pub async fn tick(&self) {
        let grace = chrono::Duration::hours(i64::from(self.settings.schedule_grace_hours));
        for (list, schedule, has_feed) in &self.lists {
            let Some(slot) = schedule.due(Utc::now(), grace) else { continue };
            match self.store.claim_slot(list.to_string(), slot.naive_utc()).await {
                Ok(true) => self.run_slot(list, slot, *has_feed).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, %list, "could not check the schedule; will try again"),
            }
        }
    }

    async fn run_slot(&self, list: &ListSlug, slot: chrono::DateTime<Utc>, has_feed: bool) {
        let span = tracing::info_span!("scheduled digest", %list, slot = %slot.to_rfc3339());
        let _entered = span.enter();
        if has_feed {
            if let Err(e) = feed::pull(&self.store, &self.settings, Some(list.as_str())).await {
                // The posts added by other means still go out.
                tracing::warn!(error = %e, "feed pull failed at a scheduled slot");
            }
        }
        let key = format!("schedule:{list}:{}", slot.to_rfc3339());
        let (outcome, digest) = match self.store.trigger_digest(list.clone(), None, Some(key)).await {
            Ok(TriggerOutcome::Created(summary) | TriggerOutcome::Replayed(summary)) => {
                tracing::info!(digest = summary.id, recipients = summary.recipients, "scheduled digest queued");
                self.digest_wake.notify_one();
                ("sent".to_owned(), Some(summary.id))
            }
            Ok(TriggerOutcome::NoNewPosts) => {
                tracing::info!("nothing new, nothing sent");
                ("nothing new".to_owned(), None)
            }
            Ok(other) => (format!("not sent: {other:?}"), None),
            Err(e) => {
                tracing::error!(error = %e, "scheduled digest failed");
                (format!("failed: {e}"), None)
            }
        };
        if let Err(e) = self.store.finish_slot(list.to_string(), slot.naive_utc(), outcome, digest).await {
            tracing::warn!(error = %e, "could not record the scheduled slot's outcome");
        }
    }
}

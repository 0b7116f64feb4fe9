//! Bounces and complaints: VERP tags on what we send, and one classifier
//! for what comes back, however it comes (an imported mailbox file, the
//! IMAP poller, a provider's webhook). Everything it finds is applied
//! through `store::suppressions`, once per report.

pub mod imap;
pub mod mailbox;
pub mod report;
pub mod tag;
pub mod webhook;

use serde::Serialize;

pub use tag::{Tagger, Target};

use self::report::{Reading, Who};
use crate::config::Settings;
use crate::domain::{BounceKind, EmailAddress};
use crate::store::suppressions::{Applied, BounceRecord, BounceTarget, SoftBounceLimit};
use crate::store::{Store, StoreResult};

/// What a batch of reports or events amounted to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tally {
    pub hard: u64,
    pub soft: u64,
    pub complaint: u64,
    /// Refused for the message's sake (5.7.x and the like): nobody suppressed.
    pub policy: u64,
    /// Well-formed, asking for nothing (delays, deliveries, "not spam").
    pub ignored: u64,
    /// Unreadable, unsigned, or naming nobody we know: nothing changed.
    pub unrecognised: u64,
    /// Applied before (the same report imported or posted again).
    pub duplicate: u64,
    /// Addresses suppressed by this batch.
    pub suppressed: u64,
}

impl Tally {
    fn count(&mut self, kind: BounceKind, applied: Applied) {
        match applied {
            Applied::Duplicate => self.duplicate += 1,
            Applied::UnknownReader => self.unrecognised += 1,
            Applied::Suppressed(_) | Applied::Recorded => {
                match kind {
                    BounceKind::Hard => self.hard += 1,
                    BounceKind::Soft => self.soft += 1,
                    BounceKind::Complaint => self.complaint += 1,
                    BounceKind::Policy => self.policy += 1,
                }
                if matches!(applied, Applied::Suppressed(_)) {
                    self.suppressed += 1;
                }
            }
        }
    }

    pub fn add(&mut self, other: Tally) {
        self.hard += other.hard;
        self.soft += other.soft;
        self.complaint += other.complaint;
        self.policy += other.policy;
        self.ignored += other.ignored;
        self.unrecognised += other.unrecognised;
        self.duplicate += other.duplicate;
        self.suppressed += other.suppressed;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} hard, {} soft, {} complaint, {} policy (nobody suppressed), {} ignored, {} unrecognised, \
             {} already applied; {} address(es) suppressed",
            self.hard,
            self.soft,
            self.complaint,
            self.policy,
            self.ignored,
            self.unrecognised,
            self.duplicate,
            self.suppressed
        )
    }
}

/// Reads reports and applies what they say.
#[derive(Clone)]
pub struct Bounces {
    store: Store,
    tagger: Tagger,
    limit: SoftBounceLimit,
}

impl Bounces {
    pub fn new(store: Store, tagger: Tagger, settings: &Settings) -> Self {
        let limit = SoftBounceLimit { count: settings.soft_bounce_limit, days: settings.soft_bounce_days };
        Self { store, tagger, limit }
    }

    /// One returned mail (a DSN or an ARF report), from `source`.
    pub async fn read_report(&self, raw: &[u8], source: &str) -> StoreResult<Tally> {
        let mut tally = Tally::default();
        let findings = match report::read(raw, &self.tagger) {
            Reading::Findings(findings) => findings,
            Reading::Ignored(why) => {
                tracing::debug!(%why, "report ignored");
                tally.ignored += 1;
                return Ok(tally);
            }
            Reading::Unrecognised(why) => {
                tracing::info!(%why, source, "report not recognised; nothing changed");
                tally.unrecognised += 1;
                return Ok(tally);
            }
        };
        for finding in findings {
            let target = match finding.who {
                Who::Tagged(Target::Delivery(id)) => BounceTarget::Delivery(id),
                Who::Tagged(Target::Outbox(id)) => BounceTarget::Outbox(id),
                Who::Address(email) => BounceTarget::Email(email),
            };
            let record = BounceRecord {
                key: finding.key,
                target,
                kind: finding.kind,
                source: source.to_owned(),
                detail: finding.reason,
            };
            let applied = self.store.apply_bounce(record, self.limit).await?;
            tally.count(finding.kind, applied);
        }
        Ok(tally)
    }

    /// Events from an authenticated provider webhook: they name the
    /// address themselves.
    pub async fn apply_events(&self, provider: &str, events: Vec<webhook::Event>) -> StoreResult<Tally> {
        let mut tally = Tally::default();
        for event in events {
            let Some(kind) = event.kind else {
                tally.ignored += 1;
                continue;
            };
            let Ok(email) = EmailAddress::parse(&event.email) else {
                tally.unrecognised += 1;
                continue;
            };
            let record = BounceRecord {
                key: event.key,
                target: BounceTarget::Email(email.as_str().to_owned()),
                kind,
                source: format!("webhook:{provider}"),
                detail: event.reason,
            };
            let applied = self.store.apply_bounce(record, self.limit).await?;
            tally.count(kind, applied);
        }
        Ok(tally)
    }
}

//! Background senders: claim work from the store, render, send, record.
//! Retry policy lives here and nowhere else.

mod digest;
mod lease;
mod outbox;
mod rate;
mod schedule;

pub use digest::DigestSender;
pub use outbox::OutboxSender;
pub use rate::RateLimiter;
pub use schedule::Scheduler;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::bounce::Tagger;
use crate::config::Settings;
use crate::domain::FailureClass;
use crate::mail::{Mailer, Messages, SendError};
use crate::store::Store;
use crate::store::deliveries::DeliveryFailure;
use crate::telemetry::meters::Outcome;

/// What every sender works with: where the work is, how to write and send
/// it, and the one send rate all senders of a process share.
#[derive(Clone)]
pub struct SendContext {
    pub store: Store,
    pub mailer: Arc<Mailer>,
    pub messages: Arc<Messages>,
    pub settings: Arc<Settings>,
    pub rate: Arc<RateLimiter>,
    /// Marks each message with its VERP tag, so that bounces find it.
    pub tagger: Arc<Tagger>,
}

/// What to record after a send attempt, given how many attempts came before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    RetryAfter(Duration, DeliveryFailure),
    /// For good: the class says whose fault it was.
    Failed(DeliveryFailure),
}

/// The retry policy: temporary failures are retried with backoff until the
/// attempts run out; the recipient's and the message's faults are final.
pub fn verdict(settings: &Settings, attempts_before: u32, result: Result<(), SendError>) -> Verdict {
    let e = match result {
        Ok(()) => return Verdict::Sent,
        Err(e) => e,
    };
    let failure = |error: String| DeliveryFailure { class: e.class(), stage: e.stage, code: e.code_text(), error };
    match e.class() {
        FailureClass::Temporary if attempts_before + 1 >= settings.send_max_attempts => {
            Verdict::Failed(failure(format!("gave up after {} attempts: {e}", attempts_before + 1)))
        }
        FailureClass::Temporary => {
            Verdict::RetryAfter(settings.retry_delay(attempts_before + 1), failure(e.to_string()))
        }
        FailureClass::Recipient | FailureClass::Message => Verdict::Failed(failure(e.to_string())),
    }
}

/// How a verdict is counted in the metrics.
pub fn outcome(verdict: &Verdict) -> Outcome {
    match verdict {
        Verdict::Sent => Outcome::Sent,
        Verdict::RetryAfter(..) => Outcome::Retried,
        Verdict::Failed(f) if f.class == FailureClass::Recipient => Outcome::Bounced,
        Verdict::Failed(_) => Outcome::Failed,
    }
}

/// `now + delay` in the store's clock.
pub fn after(delay: Duration) -> chrono::NaiveDateTime {
    Utc::now().naive_utc() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SmtpStage;

    #[test]
    fn retries_temporary_failures_until_the_cap() {
        let s = Settings::from_toml_str("send_max_attempts = 3\nretry_base_ms = 10").unwrap();
        let t = || Err(SendError::reply(SmtpStage::EndOfData, 451, "4.3.0 Try again"));
        let retry = |v: Verdict| match v {
            Verdict::RetryAfter(d, f) => (d, f.class),
            other => panic!("{other:?}"),
        };
        assert_eq!(retry(verdict(&s, 0, t())), (Duration::from_millis(10), FailureClass::Temporary));
        assert_eq!(retry(verdict(&s, 1, t())), (Duration::from_millis(20), FailureClass::Temporary));
        match verdict(&s, 2, t()) {
            Verdict::Failed(f) => {
                assert_eq!(f.class, FailureClass::Temporary);
                assert_eq!(f.code.as_deref(), Some("451 4.3.0"));
                assert!(f.error.starts_with("gave up after 3 attempts: end of DATA: 451"), "{}", f.error);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(verdict(&s, 0, Ok(())), Verdict::Sent);
    }

    #[test]
    fn refusals_are_final_with_their_class() {
        let s = Settings::from_toml_str("").unwrap();
        let class = |stage, code, text| match verdict(&s, 0, Err(SendError::reply(stage, code, text))) {
            Verdict::Failed(f) => (f.class, f.stage),
            other => panic!("{other:?}"),
        };
        assert_eq!(class(SmtpStage::Rcpt, 550, "5.1.1 no such user"), (FailureClass::Recipient, SmtpStage::Rcpt));
        assert_eq!(class(SmtpStage::EndOfData, 554, "Message rejected"), (FailureClass::Message, SmtpStage::EndOfData));
    }
}

//! Background senders: claim work from the store, render, send, record.
//! Retry policy lives here and nowhere else.

mod digest;
mod outbox;
mod rate;

pub use digest::DigestSender;
pub use outbox::OutboxSender;
pub use rate::RateLimiter;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::config::Settings;
use crate::mail::{Mailer, Messages, SendError};
use crate::store::Store;

/// What every sender works with: where the work is, how to write and send
/// it, and the one send rate all senders of a process share.
#[derive(Clone)]
pub struct SendContext {
    pub store: Store,
    pub mailer: Arc<Mailer>,
    pub messages: Arc<Messages>,
    pub settings: Arc<Settings>,
    pub rate: Arc<RateLimiter>,
}

/// What to record after a send attempt, given how many attempts came before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    RetryAfter(Duration, String),
    Failed(String),
}

pub fn verdict(settings: &Settings, attempts_before: u32, result: Result<(), SendError>) -> Verdict {
    match result {
        Ok(()) => Verdict::Sent,
        Err(SendError::Permanent(e)) => Verdict::Failed(e),
        Err(SendError::Transient(e)) if attempts_before + 1 >= settings.send_max_attempts => {
            Verdict::Failed(format!("gave up after {} attempts: {e}", attempts_before + 1))
        }
        Err(SendError::Transient(e)) => Verdict::RetryAfter(settings.retry_delay(attempts_before + 1), e),
    }
}

/// `now + delay` in the store's clock.
pub fn after(delay: Duration) -> chrono::NaiveDateTime {
    Utc::now().naive_utc() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_transient_until_the_cap() {
        let s = Settings::from_toml_str("send_max_attempts = 3\nretry_base_ms = 10").unwrap();
        let t = || Err(SendError::Transient("451".into()));
        assert_eq!(verdict(&s, 0, t()), Verdict::RetryAfter(Duration::from_millis(10), "451".into()));
        assert_eq!(verdict(&s, 1, t()), Verdict::RetryAfter(Duration::from_millis(20), "451".into()));
        assert!(matches!(verdict(&s, 2, t()), Verdict::Failed(_)));
        assert!(matches!(verdict(&s, 0, Err(SendError::Permanent("550".into()))), Verdict::Failed(_)));
        assert_eq!(verdict(&s, 0, Ok(())), Verdict::Sent);
    }
}

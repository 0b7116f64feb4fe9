//! Pure types with no I/O. Each one parses untrusted input or refuses it, so the
//! rest of the program never holds an invalid value.

mod api_key;
mod author;
mod delivery;
mod email;
mod name;
mod post;
mod schedule;
mod slug;
mod suppression;
mod text;
mod token;

pub use api_key::{ApiKeySecret, sha256_hex};
pub use author::{MIN_PASSWORD_CHARS, Password, PasswordError, SessionSecret, decoy_hash, password_matches};
pub use delivery::{DeliveryStatus, DigestState, FailureClass, SmtpStage};
pub use email::{EmailAddress, EmailError, is_dns_label};
pub use name::{NameError, SubscriberName};
pub use post::{
    MAX_SUMMARY, NewPost, PostError, PostTitle, PostUrl, digest_subject, parse_published_at, plain_text, truncate,
};
pub use schedule::Schedule;
pub use slug::{ListSlug, SlugError};
pub use suppression::{BounceKind, SuppressionReason, address_hash};
pub use text::{is_shown, shown_only};
pub use token::{Signer, TokenError, TokenKind, redact as redact_token};

/// Whether a reader is waiting to confirm, confirmed, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    Pending,
    Confirmed,
    Unsubscribed,
}

impl SubscriptionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "unsubscribed" => Some(Self::Unsubscribed),
            _ => None,
        }
    }
}

/// Where a signup came from, kept as consent evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupSource {
    Form,
    Api,
}

impl SignupSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Api => "api",
        }
    }
}

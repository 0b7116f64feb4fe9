//! The states a digest and its deliveries move through, and why a send
//! failed. Each is stored as a short text column; these enums are the only
//! place that spells those texts.

/// An enum stored as text: `as_str` for writing, `parse` for reading back,
/// and serialised as the same text in API answers.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        // By hand: the derive does not see the texts through the macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),*]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Whose fault a failed send was, which decides what happens next.
    pub enum FailureClass {
        /// The address is bad (5.1.x, 5.2.1, or a bare 5xx at RCPT): a hard
        /// bounce. The only class that suppresses the address.
        Recipient = "recipient",
        /// The message or the sender was refused (policy, content, size,
        /// authentication, a blocklisted IP): the reader is not at fault and
        /// stays subscribed. Not retried; resuming the digest sends it again.
        Message = "message",
        /// 4xx, connection trouble, timeouts: retried with backoff; counts as
        /// failed only once the attempts run out.
        Temporary = "temporary",
    }
}

text_enum! {
    /// Where in the SMTP session a send failed.
    pub enum SmtpStage {
        Connect = "connect",
        Greeting = "greeting",
        Ehlo = "ehlo",
        StartTls = "starttls",
        Auth = "auth",
        Mail = "mail",
        Rcpt = "rcpt",
        Data = "data",
        /// The message itself and the reply to its final dot.
        EndOfData = "end_of_data",
        /// Not SMTP at all: the message could not be written (file transport).
        Local = "local",
    }
}

impl SmtpStage {
    /// Stages of setting up the session, before any transaction: a failure
    /// here says something about the relay or our configuration, nothing
    /// about one message.
    pub const fn is_session(self) -> bool {
        matches!(self, Self::Connect | Self::Greeting | Self::Ehlo | Self::StartTls | Self::Auth)
    }

    /// How the stage reads in an error message.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Greeting => "greeting",
            Self::Ehlo => "EHLO",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::Data => "DATA",
            Self::EndOfData => "end of DATA",
            Self::Local => "writing the message",
        }
    }
}

text_enum! {
    /// One recipient's message of a digest.
    pub enum DeliveryStatus {
        /// Not sent yet: waiting, claimed by a sender, or waiting for a retry.
        Pending = "pending",
        Sent = "sent",
        /// Not the recipient's fault (see [`FailureClass`]); resuming the
        /// digest sends it again.
        Failed = "failed",
        /// The recipient's address bounced; it is suppressed.
        Bounced = "bounced",
        /// The reader left (or was suppressed) before their message went out.
        Skipped = "skipped",
        /// The author cancelled the digest before this message went out.
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// A digest as a whole.
    pub enum DigestState {
        Queued = "queued",
        Sending = "sending",
        /// Stopped, by the author or by the digest's own circuit breaker:
        /// nothing is claimed until it is resumed. Survives restarts.
        Paused = "paused",
        Sent = "sent",
        /// Finished with every delivery failed.
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl DigestState {
    /// Still to be worked on by the senders.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Sending)
    }

    /// Nothing more will happen unless the author resumes it.
    pub const fn is_finished(self) -> bool {
        matches!(self, Self::Sent | Self::Failed | Self::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_parses_back() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(*s));
        }
        for s in DigestState::ALL {
            assert_eq!(DigestState::parse(s.as_str()), Some(*s));
        }
        for s in FailureClass::ALL {
            assert_eq!(FailureClass::parse(s.as_str()), Some(*s));
        }
        for s in SmtpStage::ALL {
            assert_eq!(SmtpStage::parse(s.as_str()), Some(*s));
        }
        assert_eq!(DigestState::parse("Paused"), None);
        assert_eq!(serde_json::to_string(&SmtpStage::EndOfData).unwrap(), "\"end_of_data\"");
    }
}

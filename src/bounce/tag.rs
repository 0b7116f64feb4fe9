//! VERP tags: which delivery (or outbox mail) a bounce is about, under a MAC
//! so that a forged report names nobody. `d123-<20 hex>` for delivery 123,
//! `o45-…` for outbox mail 45: lowercase, because a mail system may fold
//! the case of a local part.

use lettre::Address;
use lettre::address::Envelope;

use crate::domain::{Signer, TokenKind};
use crate::mail::Outgoing;

/// The header that carries the tag inside the message, for reports that
/// return the original (ARF complaints are not sent to the envelope sender).
pub const TAG_HEADER: &str = "X-Tidings-Tag";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Delivery(i64),
    Outbox(i64),
}

impl Target {
    fn id(self) -> String {
        match self {
            Self::Delivery(n) => format!("d{n}"),
            Self::Outbox(n) => format!("o{n}"),
        }
    }

    fn parse(id: &str) -> Option<Self> {
        let (kind, number) = id.split_at_checked(1)?;
        if number.is_empty() || number.len() > 19 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = number.parse().ok()?;
        match kind {
            "d" => Some(Self::Delivery(n)),
            "o" => Some(Self::Outbox(n)),
            _ => None,
        }
    }
}

/// Makes tags, stamps them on outgoing mail, and finds valid ones in reports.
#[derive(Clone)]
pub struct Tagger {
    signer: Signer,
    bounce_address: Option<Address>,
}

impl Tagger {
    pub fn new(signer: Signer, bounce_address: Option<Address>) -> Self {
        Self { signer, bounce_address }
    }

    /// Whether envelope senders carry tags; then a report without a valid
    /// tag is not believed (anyone can mail the bounce address).
    pub fn verp(&self) -> bool {
        self.bounce_address.is_some()
    }

    pub fn tag(&self, target: Target) -> String {
        let id = target.id();
        let mac = self.signer.short_mac(TokenKind::BounceTag, &id);
        format!("{id}-{mac}")
    }

    /// The target a tag names, if its MAC is right.
    pub fn verify(&self, tag: &str) -> Option<Target> {
        let tag = tag.to_ascii_lowercase();
        let (id, mac) = tag.split_once('-')?;
        let target = Target::parse(id)?;
        self.signer.verify_short(TokenKind::BounceTag, id, mac).then_some(target)
    }

    /// The first valid tag anywhere in `text` (an address, a header value).
    pub fn find(&self, text: &str) -> Option<Target> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|word| word.len() > 20 && word.contains('-'))
            .find_map(|word| self.verify(word))
    }

    /// Marks a message as `target`'s: the tag in a header, and with a bounce
    /// address, in the envelope sender (`bounces+TAG@domain`).
    pub fn stamp(&self, message: &mut Outgoing, target: Target) {
        let tag = self.tag(target);
        let header = format!("{TAG_HEADER}: {tag}\r\n");
        message.bytes.splice(0..0, header.into_bytes());
        let Some(bounce) = &self.bounce_address else { return };
        let sender = format!("{}+{tag}@{}", bounce.user(), bounce.domain());
        // The bounce address parsed, and a tag adds only [a-z0-9-].
        if let Ok(sender) = sender.parse::<Address>() {
            if let Ok(envelope) = Envelope::new(Some(sender), message.envelope.to().to_vec()) {
                message.envelope = envelope;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagger(verp: bool) -> Tagger {
        let address = verp.then(|| "bounces@news.example.org".parse().unwrap());
        Tagger::new(Signer::new(b"0123456789abcdef0123456789abcdef"), address)
    }

    #[test]
    fn tags_round_trip_and_refuse_forgery() {
        let t = tagger(true);
        let tag = t.tag(Target::Delivery(123));
        assert!(tag.starts_with("d123-"), "{tag}");
        assert_eq!(t.verify(&tag), Some(Target::Delivery(123)));
        assert_eq!(t.verify(&tag.to_uppercase()), Some(Target::Delivery(123)));
        assert_eq!(t.verify(&tag.replace("d123", "d124")), None);
        assert_eq!(t.verify(&tag.replace('d', "o")), None);
        let other = Tagger::new(Signer::new(b"another key entirely, 32 bytes!!"), None);
        assert_eq!(other.verify(&tag), None);
        assert_eq!(t.find(&format!("To: <bounces+{tag}@news.example.org>")), Some(Target::Delivery(123)));
        assert_eq!(t.find("bounces+d123-00000000000000000000@news.example.org"), None);
        assert_eq!(t.find(""), None);
    }

    #[test]
    fn stamps_header_and_envelope() {
        let composer = crate::mail::Composer::new("News <news@example.org>".parse().unwrap(), "example.org".into());
        let rendered = crate::mail::Rendered { subject: "s".into(), html: "<p>h</p>".into(), text: "h".into() };
        let mut message = composer.compose("zoe@example.com", None, &rendered, None).unwrap();
        tagger(true).stamp(&mut message, Target::Outbox(7));
        let from = message.envelope.from().unwrap().to_string();
        assert!(from.starts_with("bounces+o7-") && from.ends_with("@news.example.org"), "{from}");
        assert_eq!(message.envelope.to().len(), 1);
        let text = String::from_utf8(message.bytes).unwrap();
        assert!(text.starts_with("X-Tidings-Tag: o7-"), "{text}");

        let mut plain = composer.compose("zoe@example.com", None, &rendered, None).unwrap();
        tagger(false).stamp(&mut plain, Target::Delivery(1));
        assert_eq!(plain.envelope.from().unwrap().to_string(), "news@example.org");
    }
}

//! The suppression list's words: why an address is never mailed, what a
//! bounce report said, and the key an address is known by once erased.

use serde::Serialize;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    HardBounce,
    /// `soft_bounce_limit` soft bounces within `soft_bounce_days`.
    SoftBounces,
    Complaint,
    /// Added by the author.
    Manual,
}

impl SuppressionReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::SoftBounces => "soft_bounces",
            Self::Complaint => "complaint",
            Self::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hard_bounce" => Some(Self::HardBounce),
            "soft_bounces" => Some(Self::SoftBounces),
            "complaint" => Some(Self::Complaint),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }

    /// A bounce says the mailbox did not work; signing up again (and
    /// confirming) shows it works now. A complaint or the author's own
    /// entry is lifted only by the author.
    pub const fn lifted_by_confirming(self) -> bool {
        matches!(self, Self::HardBounce | Self::SoftBounces)
    }

    /// A complaint or the author's word outranks a bounce: it is never
    /// replaced by a weaker reason.
    pub const fn outranks(self, other: Self) -> bool {
        !self.lifted_by_confirming() && other.lifted_by_confirming()
    }
}

/// What one bounce or complaint report says about one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceKind {
    /// The address does not work (5.1.x, 5.2.1, or an unqualified 5.x.x).
    Hard,
    /// A temporary failure reported after the fact (4.x.x, mailbox full).
    Soft,
    /// The reader marked the mail as spam (ARF, a provider's complaint).
    Complaint,
    /// Refused for the message's or the sender's sake (5.7.x policy, 5.3.4
    /// too big, 5.6.x content): recorded, the reader is not suppressed.
    Policy,
}

impl BounceKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
            Self::Complaint => "complaint",
            Self::Policy => "policy",
        }
    }

    /// The kind of a permanent or temporary RFC 3463 status `class.subject.detail`
    /// (`5.1.1`), by the same rule as a refusal at send time: only codes
    /// that name the recipient's mailbox or domain make a hard bounce.
    pub fn of_status(status: &str) -> Option<Self> {
        let mut parts = status.trim().splitn(3, '.');
        let class = parts.next()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
        match class {
            "4" => Some(Self::Soft),
            "5" => Some(match (subject, detail) {
                // 5.0.0: permanent with nothing more said; as at RCPT TO
                // without an enhanced code, the address is taken as bad.
                (0, _) | (1, _) => Self::Hard,
                (2, 1) => Self::Hard,
                // Mailbox full, or over a size limit: it may work later.
                (2, _) => Self::Soft,
                _ => Self::Policy,
            }),
            _ => None,
        }
    }
}

/// How an address is known in the suppression list: SHA-256 of the
/// lowercased address, hex. The address itself is kept beside it until the
/// reader is erased.
pub fn address_hash(email: &str) -> String {
    super::api_key::sha256_hex(email.trim().to_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_like_send_time_refusals() {
        assert_eq!(BounceKind::of_status("5.1.1"), Some(BounceKind::Hard));
        assert_eq!(BounceKind::of_status("5.1.10"), Some(BounceKind::Hard));
        assert_eq!(BounceKind::of_status("5.2.1"), Some(BounceKind::Hard));
        assert_eq!(BounceKind::of_status("5.0.0"), Some(BounceKind::Hard));
        assert_eq!(BounceKind::of_status("5.2.2"), Some(BounceKind::Soft));
        assert_eq!(BounceKind::of_status("4.4.7"), Some(BounceKind::Soft));
        assert_eq!(BounceKind::of_status("5.7.1"), Some(BounceKind::Policy));
        assert_eq!(BounceKind::of_status("5.3.4"), Some(BounceKind::Policy));
        assert_eq!(BounceKind::of_status("2.0.0"), None);
        assert_eq!(BounceKind::of_status("five"), None);
        assert_eq!(BounceKind::of_status("5.1"), None);
    }

    #[test]
    fn hashes_ignore_case() {
        assert_eq!(address_hash("Zoe@Example.org"), address_hash("zoe@example.org"));
        assert_eq!(address_hash("a@b.c").len(), 64);
    }

    #[test]
    fn complaints_outrank_bounces() {
        use SuppressionReason::*;
        assert!(Complaint.outranks(HardBounce));
        assert!(Manual.outranks(SoftBounces));
        assert!(!HardBounce.outranks(Complaint));
        assert!(!Complaint.outranks(Manual));
    }
}

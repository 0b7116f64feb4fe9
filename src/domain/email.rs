use std::fmt;

use validator::ValidateEmail;

/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
const MAX_LEN: usize = 254;

/// A deliverable address in canonical form: trimmed, domain lowercased and
/// punycoded, and the local part lowercased so `Alice@Example.COM` and
/// `alice@example.com` are one reader.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("enter an email address")]
    Empty,
    #[error("an email address can be at most 254 characters long")]
    TooLong,
    #[error("that does not look like a valid email address")]
    Invalid,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::Invalid)?;
        let domain = idna::domain_to_ascii(domain).map_err(|_| EmailError::Invalid)?;
        // A dotless domain is valid in HTML forms but never reaches a real
        // inbox; an address literal (`a@[127.0.0.1]`) or a numeric top-level
        // domain is no host name a relay delivers to.
        if !is_host_name(&domain) {
            return Err(EmailError::Invalid);
        }
        let canonical = format!("{}@{}", local.to_lowercase(), domain);
        if canonical.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        // validator follows the WHATWG rule, lettre the RFC one: each catches
        // what the other lets through (dots, quoting, control characters).
        if !canonical.validate_email() || canonical.parse::<lettre::Address>().is_err() {
            return Err(EmailError::Invalid);
        }
        Ok(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: enough to tell readers apart while debugging, not enough to
    /// identify one.
    pub fn redacted(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or(("", &self.0));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// Two or more labels of letters, digits and inner hyphens (after
/// punycoding), at most 63 characters each, the last one not all digits.
fn is_host_name(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| is_dns_label(l))
        && labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// One DNS label: 1–63 letters, digits and inner hyphens.
pub fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_case_and_whitespace() {
        let a = EmailAddress::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "alice@example.com");
    }

    #[test]
    fn punycodes_international_domains() {
        let a = EmailAddress::parse("reader@bücher.de").unwrap();
        assert_eq!(a.as_str(), "reader@xn--bcher-kva.de");
    }

    #[test]
    fn refuses_what_either_checker_refuses() {
        for bad in [
            "",
            "plain",
            "a@b",
            "john..doe@example.com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "@example.com",
            "a@",
            "a@@example.com",
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
            "a@127.0.0.1",
            "a@example.com.",
            "a@-example.com",
            "a@exa_mple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn caps_length_at_254() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::TooLong));
        let local = "a".repeat(64);
        let domain = format!("{}.{}.{}.com", "b".repeat(60), "c".repeat(60), "d".repeat(60));
        let ok = format!("{local}@{domain}");
        assert!(ok.len() <= 254);
        assert!(EmailAddress::parse(&ok).is_ok());
    }

    #[test]
    fn redacts_for_logs() {
        let a = EmailAddress::parse("alice@example.com").unwrap();
        assert_eq!(a.redacted(), "a***@example.com");
    }
}

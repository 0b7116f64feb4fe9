//! Property tests for the parsers that guard every input.

use proptest::prelude::*;
use tidings::domain::{EmailAddress, ListSlug, Signer, SubscriberName, TokenKind};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn email_parse_never_panics_and_accepts_only_sane_addresses(input in any::<String>()) {
        if let Ok(email) = EmailAddress::parse(&input) {
            let s = email.as_str();
            prop_assert!(s.len() <= 254);
            prop_assert!(!s.chars().any(|c| c.is_control() || c.is_whitespace()));
            prop_assert_eq!(s.matches('@').count(), 1);
            prop_assert!(s.parse::<lettre::Address>().is_ok());
            // Canonical: parsing again changes nothing.
            prop_assert_eq!(EmailAddress::parse(s).unwrap(), email.clone());
        }
    }

    #[test]
    fn generated_addresses_round_trip(
        local in "[a-zA-Z0-9_%+-]{1,20}(\\.[a-zA-Z0-9_%+-]{1,10}){0,2}",
        domain in "[a-zA-Z0-9]([a-zA-Z0-9-]{0,28}[a-zA-Z0-9])?",
        tld in "[a-zA-Z]{2,10}",
    ) {
        // Every one of these is a valid address: each must be accepted.
        let raw = format!("{local}@{domain}.{tld}");
        let email = EmailAddress::parse(&raw);
        prop_assert!(email.is_ok(), "{raw:?} refused: {email:?}");
        let email = email.unwrap();
        prop_assert_eq!(email.as_str(), raw.to_lowercase());
    }

    #[test]
    fn names_are_short_and_have_no_control_characters(input in any::<String>()) {
        if let Ok(Some(name)) = SubscriberName::parse_optional(Some(&input)) {
            prop_assert!(name.as_str().chars().count() <= 100);
            prop_assert!(!name.as_str().chars().any(char::is_control));
            prop_assert!(!name.as_str().is_empty());
        }
    }

    #[test]
    fn slugs_are_url_safe(input in any::<String>()) {
        if let Ok(slug) = ListSlug::parse(&input) {
            prop_assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert!((1..=64).contains(&slug.as_str().len()));
        }
    }

    #[test]
    fn only_signed_tokens_verify(input in any::<String>(), flip in 0usize..45) {
        let signer = Signer::new(b"property-test-key-0123456789abcdef");
        prop_assert!(signer.verify(TokenKind::Confirm, &input).is_err());
        let id = Signer::new_id();
        let token = signer.sign(TokenKind::Confirm, &id);
        prop_assert_eq!(signer.verify(TokenKind::Confirm, &token), Ok(id));
        let mut bytes = token.clone().into_bytes();
        let at = flip % bytes.len();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        if altered != token {
            prop_assert!(signer.verify(TokenKind::Confirm, &altered).is_err());
        }
    }
}

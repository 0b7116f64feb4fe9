use std::fmt;

const MAX_CHARS: usize = 100;

/// A reader's optional display name: at most 100 characters, no control
/// characters (so it can never smuggle a header line or break a template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name can be at most 100 characters long")]
    TooLong,
    #[error("a name cannot contain line breaks or control characters")]
    ControlCharacters,
    #[error("a name cannot contain invisible or text-direction characters")]
    Invisible,
}

impl SubscriberName {
    /// `Ok(None)` for an absent or blank name: the name is optional.
    pub fn parse_optional(input: Option<&str>) -> Result<Option<Self>, NameError> {
        let Some(trimmed) = input.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if trimmed.chars().count() > MAX_CHARS {
            return Err(NameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacters);
        }
        if !trimmed.chars().all(super::text::is_shown) {
            return Err(NameError::Invisible);
        }
        Ok(Some(Self(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_invisible_and_direction_characters() {
        for spoof in ["Bob\u{202E}", "A\u{200B}lice", "\u{FEFF}Eve", "Mal\u{E000}lory"] {
            assert_eq!(SubscriberName::parse_optional(Some(spoof)), Err(NameError::Invisible), "{spoof:?}");
        }
    }

    #[test]
    fn blank_is_absent() {
        assert_eq!(SubscriberName::parse_optional(None), Ok(None));
        assert_eq!(SubscriberName::parse_optional(Some("   ")), Ok(None));
    }

    #[test]
    fn keeps_unicode_and_trims() {
        let n = SubscriberName::parse_optional(Some("  Zoë Łukasz ")).unwrap();
        assert_eq!(n.unwrap().as_str(), "Zoë Łukasz");
    }

    #[test]
    fn refuses_long_and_control() {
        let long = "é".repeat(101);
        assert_eq!(SubscriberName::parse_optional(Some(&long)), Err(NameError::TooLong));
        assert!(SubscriberName::parse_optional(Some(&"é".repeat(100))).is_ok());
        for bad in ["a\r\nb", "a\nb", "a\u{0}b", "a\u{7f}b", "tab\there"] {
            assert_eq!(SubscriberName::parse_optional(Some(bad)), Err(NameError::ControlCharacters));
        }
    }
}

//! How secrets in the configuration are shown: never. `Settings` serializes
//! (for `tidings config` and its `Debug`) through these, so a token, a key or
//! a password in a URL comes out as `***`.

use serde::Serializer;
use url::Url;

pub const HIDDEN: &str = "***";

/// A secret that may be unset: `***` when set.
pub fn secret<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str(HIDDEN),
        None => s.serialize_none(),
    }
}

/// A URL with its password (if any) replaced by `***`.
pub fn url_text(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only URLs that cannot have a password refuse one: not these.
    let _ = shown.set_password(Some(HIDDEN));
    shown.to_string()
}

pub fn url<S: Serializer>(value: &Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url_text(value))
}

pub fn url_opt<S: Serializer>(value: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(u) => s.serialize_str(&url_text(u)),
        None => s.serialize_none(),
    }
}

/// Anything shown by its `Display` (addresses, mailboxes).
pub fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

pub fn display_opt<T: std::fmt::Display, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        let url = Url::parse("smtp://news:hunter2@relay.example:587?tls=required").unwrap();
        assert_eq!(url_text(&url), "smtp://news:***@relay.example:587?tls=required");
        let plain = Url::parse("smtp://relay.example:25").unwrap();
        assert_eq!(url_text(&plain), "smtp://relay.example:25");
    }
}

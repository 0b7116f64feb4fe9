use std::fmt;

/// A list's identifier in URLs, forms and configuration: 1–64 characters of
/// lowercase ASCII letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListSlug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a list slug is 1-64 lowercase letters, digits or inner hyphens")]
pub struct SlugError;

impl ListSlug {
    pub fn parse(input: &str) -> Result<Self, SlugError> {
        let ok = (1..=64).contains(&input.len())
            && input.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !input.starts_with('-')
            && !input.ends_with('-');
        if ok { Ok(Self(input.to_owned())) } else { Err(SlugError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ListSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ListSlug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// In the API document: a string of the slug's shape; the served document
/// names the configured lists (see `http::openapi`).
impl utoipa::PartialSchema for ListSlug {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"))
            .description(Some("A list's slug"))
            .into()
    }
}

impl utoipa::ToSchema for ListSlug {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(ListSlug::parse("social-media").is_ok());
        assert!(ListSlug::parse("orthopedic2").is_ok());
        for bad in ["", "-a", "a-", "Social", "a_b", "a b", "ä", &"a".repeat(65)] {
            assert!(ListSlug::parse(bad).is_err(), "{bad:?}");
        }
    }
}

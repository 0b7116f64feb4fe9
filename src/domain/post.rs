use std::fmt;

use chrono::{DateTime, Utc};
use url::Url;

use super::ListSlug;

const MAX_TITLE: usize = 300;
const MAX_URL: usize = 2048;
/// Summaries are cut to this many characters of plain text.
pub const MAX_SUMMARY: usize = 600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("a post needs a title")]
    EmptyTitle,
    #[error("a title can be at most 300 characters long")]
    TitleTooLong,
    #[error("the url must be an absolute http:// or https:// address of at most 2048 characters")]
    BadUrl,
    #[error("published_at must be an RFC 3339 date and time, e.g. 2026-11-25T09:30:00Z")]
    BadDate,
}

/// A post's title as one line of text, shown literally (a title that
/// mentions `<b>` shows `<b>`), whitespace folded, 1–300 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostTitle(String);

impl PostTitle {
    pub fn parse(input: &str) -> Result<Self, PostError> {
        let text: String = input.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = super::text::shown_only(&text);
        if text.is_empty() {
            return Err(PostError::EmptyTitle);
        }
        if text.chars().count() > MAX_TITLE {
            return Err(PostError::TitleTooLong);
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL: what identifies a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostUrl(String);

impl PostUrl {
    pub fn parse(input: &str) -> Result<Self, PostError> {
        let url = Url::parse(input.trim()).map_err(|_| PostError::BadUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.as_str().len() > MAX_URL {
            return Err(PostError::BadUrl);
        }
        Ok(Self(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn parse_published_at(input: &str) -> Result<DateTime<Utc>, PostError> {
    DateTime::parse_from_rfc3339(input.trim()).map(|d| d.with_timezone(&Utc)).map_err(|_| PostError::BadDate)
}

/// A post as the author submits it, every field checked.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub title: PostTitle,
    pub url: PostUrl,
    /// Plain text, at most `MAX_SUMMARY` characters.
    pub summary: String,
    /// `None` for a feed entry without a date: now when first seen, and
    /// unchanged after that.
    pub published_at: Option<DateTime<Utc>>,
    pub lists: Vec<ListSlug>,
}

/// The default subject of a digest: the list's name and its newest post.
pub fn digest_subject(list_name: &str, newest_title: &str, count: usize) -> String {
    let title = truncate(newest_title, 120);
    match count {
        0 | 1 => format!("{list_name}: {title}"),
        2 => format!("{list_name}: {title} and 1 more post"),
        n => format!("{list_name}: {title} and {} more posts", n - 1),
    }
}

/// Reduces an HTML fragment (a feed's description, say) to plain text:
/// tags dropped, script and style content dropped, entities decoded,
/// whitespace folded. The result is safe to put anywhere a template escapes.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..lt]));
        let tag = &rest[lt..];
        let lower: String = tag.chars().take(8).collect::<String>().to_ascii_lowercase();
        let skip_until = if lower.starts_with("<script") {
            Some("</script")
        } else if lower.starts_with("<style") {
            Some("</style")
        } else if tag.starts_with("<!--") {
            Some("-->")
        } else {
            None
        };
        rest = match skip_until {
            Some(end) => match find_ascii_ci(tag, end) {
                Some(i) => tag[i..].find('>').map_or("", |j| &tag[i + j + 1..]),
                None => "",
            },
            None => match tag.find('>') {
                Some(gt) => {
                    // Block elements separate words.
                    out.push(' ');
                    &tag[gt + 1..]
                }
                None => "",
            },
        };
    }
    out.push_str(&decode_entities(rest));
    let folded: Vec<&str> = out.split_whitespace().collect();
    super::text::shown_only(&folded.join(" "))
}

/// Cuts `text` to at most `max` characters, at a word boundary, with "…".
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let at_word = cut.rfind(' ').filter(|&i| i > max / 2).map_or(cut.as_str(), |i| &cut[..i]);
    format!("{}…", at_word.trim_end())
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&i| i <= 10).and_then(|semi| {
            let name = &after[..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                "hellip" => Some('…'),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "rsquo" => Some('’'),
                "lsquo" => Some('‘'),
                "rdquo" => Some('”'),
                "ldquo" => Some('“'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_strips_markup_and_decodes() {
        assert_eq!(
            plain_text("<p>Knee <b>pain</b> &amp; you</p><script>alert(1)</script><p>Next&#8230; &#x2014; done</p>"),
            "Knee pain & you Next… — done"
        );
        assert_eq!(plain_text("a <!-- hidden --> b <style>p{}</style>c"), "a b c");
        assert_eq!(plain_text("5 &lt; 6 &unknown; & 7"), "5 < 6 &unknown; & 7");
        assert_eq!(plain_text("Knee <b>pain</b> & you"), "Knee pain & you");
        assert_eq!(plain_text("broken <a href='x"), "broken");
    }

    #[test]
    fn titles_urls_and_dates() {
        assert!(PostTitle::parse("  ").is_err());
        assert_eq!(PostTitle::parse("Knee <b>pain</b>\n & you").unwrap().as_str(), "Knee <b>pain</b> & you");
        assert!(PostTitle::parse(&"x".repeat(301)).is_err());
        assert!(PostUrl::parse("https://blog.example.org/p/1").is_ok());
        for bad in ["ftp://x/y", "/relative", "javascript:alert(1)", "https://"] {
            assert!(PostUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_published_at("2026-11-25T09:30:00+01:00").is_ok());
        assert!(parse_published_at("25/11/2026").is_err());
    }

    #[test]
    fn truncates_at_words() {
        assert_eq!(truncate("one two three four", 12), "one two…");
        assert_eq!(truncate("short", 12), "short");
    }
}

//! A list message composed once and stamped per reader. Building a MIME
//! message through lettre for each of 100,000 readers (header maps,
//! encoders, a fresh boundary, formatting every part) cost more CPU than
//! anything else Tidings does per message; a stencil is the formatted
//! message cut where the per-reader values go, so a reader's copy is a few
//! copies into one buffer.

use std::fmt::Write as _;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{Date, Headers, MessageId, To};
use lettre::message::{Mailbox, Mailboxes};

use super::compose::{ComposeError, Outgoing, header_safe};

/// Text cut at the places where per-reader values go.
#[derive(Debug, Clone)]
pub(super) struct Pieces<S>(Vec<Piece<S>>);

#[derive(Debug, Clone)]
enum Piece<S> {
    Text(String),
    Slot(S),
}

impl<S: Copy> Pieces<S> {
    /// Cuts `text` at every occurrence of each marker.
    pub fn cut(text: &str, markers: &[(&str, S)]) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        loop {
            let next = markers
                .iter()
                .filter_map(|&(marker, slot)| rest.find(marker).map(|at| (at, marker.len(), slot)))
                .min_by_key(|&(at, ..)| at);
            let Some((at, len, slot)) = next else { break };
            pieces.push(Piece::Text(rest[..at].to_owned()));
            pieces.push(Piece::Slot(slot));
            rest = &rest[at + len..];
        }
        pieces.push(Piece::Text(rest.to_owned()));
        Self(pieces)
    }

    /// Appends the text with each slot written by `slot`.
    pub fn fill_into(&self, out: &mut String, mut slot: impl FnMut(S, &mut String)) {
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(s) => slot(*s, out),
            }
        }
    }

    /// The length of the fixed text, to size a buffer.
    pub fn text_len(&self) -> usize {
        self.0.iter().map(|p| if let Piece::Text(t) = p { t.len() } else { 0 }).sum()
    }
}

/// A reader's values, raw (text part, headers) and HTML-escaped.
#[derive(Debug, Clone, Copy)]
pub struct Personal<'a> {
    pub name: Option<&'a str>,
    pub name_html: &'a str,
    pub unsubscribe_url: &'a str,
    pub unsubscribe_html: &'a str,
    pub preferences_url: &'a str,
    pub preferences_html: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// `To`, `Date` and `Message-ID`: written by lettre per reader, so a
    /// name is quoted or encoded exactly as the full builder would.
    Headers,
    Name,
    NameHtml,
    Unsubscribe,
    UnsubscribeHtml,
    Preferences,
    PreferencesHtml,
}

/// Stand-ins written into the message where the reader's values go: ASCII
/// (so no encoder touches them) and random per stencil (so no post can hold
/// one).
#[derive(Debug, Clone)]
pub struct Markers {
    pub name: String,
    pub name_html: String,
    pub unsubscribe: String,
    pub unsubscribe_html: String,
    pub preferences: String,
    pub preferences_html: String,
    headers: String,
}

impl Markers {
    pub fn random() -> Self {
        let id = uuid::Uuid::new_v4().simple();
        let marker = |what: &str| format!("tidings{id}{what}");
        Self {
            name: marker("name"),
            name_html: marker("namehtml"),
            unsubscribe: marker("unsubscribe"),
            unsubscribe_html: marker("unsubscribehtml"),
            preferences: marker("preferences"),
            preferences_html: marker("preferenceshtml"),
            headers: marker("headers"),
        }
    }
}

/// Lines of the body that hold slots: SMTP limits a line to 998 octets, so
/// a reader whose values would push one past that gets the full builder
/// (which falls back to quoted-printable) instead.
#[derive(Debug, Clone)]
struct SlotLine {
    fixed: usize,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
pub struct Stencil {
    pieces: Pieces<Slot>,
    lines: Vec<SlotLine>,
    /// A part goes as 7bit, so every value filled in must be ASCII too.
    ascii_only: bool,
    from: Address,
    domain: String,
}

impl Stencil {
    /// `formatted` is a whole message whose bodies carry `markers` and went
    /// unencoded; its `To`, `Date` and `Message-ID` fields are dropped and
    /// written per reader.
    pub(super) fn cut(formatted: &str, markers: &Markers, ascii_only: bool, from: Address, domain: String) -> Self {
        let (head, body) = formatted.split_at(formatted.find("\r\n\r\n").map_or(formatted.len(), |at| at + 2));
        let mut text = String::with_capacity(formatted.len());
        text.push_str(&markers.headers);
        for field in header_fields(head) {
            let name = field.split(':').next().unwrap_or_default();
            if !["To", "Date", "Message-ID"].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                text.push_str(field);
            }
        }
        text.push_str(body);
        let pieces = Pieces::cut(
            &text,
            &[
                (&markers.headers, Slot::Headers),
                (&markers.name_html, Slot::NameHtml),
                (&markers.name, Slot::Name),
                (&markers.unsubscribe_html, Slot::UnsubscribeHtml),
                (&markers.unsubscribe, Slot::Unsubscribe),
                (&markers.preferences_html, Slot::PreferencesHtml),
                (&markers.preferences, Slot::Preferences),
            ],
        );
        let lines = slot_lines(&pieces);
        Self { pieces, lines, ascii_only, from, domain }
    }

    /// This reader's copy, or `None` when their values cannot go into this
    /// stencil as they are (a line would grow past 998 octets, or non-ASCII
    /// into a 7bit part): the caller then builds the message in full.
    pub fn stamp(&self, to: &str, reader: Personal<'_>) -> Result<Option<Outgoing>, ComposeError> {
        let name = reader.name.filter(|n| !n.is_empty());
        if let Some(name) = name {
            header_safe(name, "recipient name")?;
        }
        header_safe(reader.unsubscribe_url, "unsubscribe URL")?;
        let value = |slot: Slot| match slot {
            Slot::Headers => "",
            Slot::Name => name.unwrap_or(""),
            Slot::NameHtml => reader.name_html,
            Slot::Unsubscribe => reader.unsubscribe_url,
            Slot::UnsubscribeHtml => reader.unsubscribe_html,
            Slot::Preferences => reader.preferences_url,
            Slot::PreferencesHtml => reader.preferences_html,
        };
        if self.ascii_only
            && ![Slot::Name, Slot::NameHtml, Slot::Unsubscribe, Slot::Preferences].iter().all(|&s| value(s).is_ascii())
        {
            return Ok(None);
        }
        if self.lines.iter().any(|line| line.fixed + line.slots.iter().map(|&s| value(s).len()).sum::<usize>() > 998) {
            return Ok(None);
        }
        let address: Address = to.parse()?;
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), self.domain);
        let mut headers = Headers::new();
        headers.set(To::from(Mailboxes::from(Mailbox::new(name.map(str::to_owned), address.clone()))));
        headers.set(Date::now());
        headers.set(MessageId::from(message_id.clone()));
        let mut bytes = String::with_capacity(self.pieces.text_len() + 512);
        self.pieces.fill_into(&mut bytes, |slot, out| match slot {
            // Writing into a String cannot fail.
            Slot::Headers => drop(write!(out, "{headers}")),
            other => out.push_str(value(other)),
        });
        let envelope = Envelope::new(Some(self.from.clone()), vec![address])?;
        Ok(Some(Outgoing { envelope, bytes: bytes.into_bytes(), message_id }))
    }
}

/// A header section's fields, each with its folded continuation lines and
/// its CRLF.
fn header_fields(head: &str) -> impl Iterator<Item = &str> {
    let mut rest = head;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        loop {
            end += rest[end..].find("\r\n").map_or(rest.len() - end, |at| at + 2);
            if end >= rest.len() || !rest[end..].starts_with([' ', '\t']) {
                break;
            }
        }
        let (field, tail) = rest.split_at(end);
        rest = tail;
        Some(field)
    })
}

/// The lines that hold body slots, with the length of their fixed text.
fn slot_lines(pieces: &Pieces<Slot>) -> Vec<SlotLine> {
    let mut lines = Vec::new();
    let mut current = SlotLine { fixed: 0, slots: Vec::new() };
    for piece in &pieces.0 {
        match piece {
            Piece::Slot(Slot::Headers) => {}
            Piece::Slot(slot) => current.slots.push(*slot),
            Piece::Text(text) => match text.rfind("\r\n") {
                None => current.fixed += text.len(),
                Some(last) => {
                    let first = text.find("\r\n").unwrap_or(last);
                    current.fixed += first;
                    if !current.slots.is_empty() {
                        lines.push(std::mem::replace(&mut current, SlotLine { fixed: 0, slots: Vec::new() }));
                    }
                    current.fixed = text.len() - last - 2;
                }
            },
        }
    }
    if !current.slots.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::compose::{Composer, ListHeaders};
    use crate::mail::render::Rendered;

    const URL: &str = "https://news.example.org/unsubscribe/abc.def?x=1&y=2";

    fn composer() -> Composer {
        Composer::new("Dr. Luks <news@example.org>".parse().unwrap(), "lists.example.org".into())
    }

    fn list(unsubscribe_url: &str) -> ListHeaders<'_> {
        ListHeaders { name: "Orthopedic", slug: "orthopedic", unsubscribe_url }
    }

    /// Bodies with the reader's values, or with markers in their place;
    /// `extra` goes on the greeting's line.
    fn bodies(extra: &str, values: (&str, &str, &str, &str)) -> Rendered {
        let (name, name_html, url, url_html) = values;
        Rendered {
            subject: "New posts: knees".into(),
            html: format!("<p>Dear {name_html}, {extra}</p>\n<a href=\"{url_html}\">Unsubscribe</a>\n"),
            text: format!("Dear {name}, {extra}\nUnsubscribe: {url}\n"),
        }
    }

    fn stencil(extra: &str) -> Stencil {
        let m = Markers::random();
        let rendered = bodies(extra, (&m.name, &m.name_html, &m.unsubscribe, &m.unsubscribe_html));
        composer().stencil(&rendered, list(&m.unsubscribe), &m).unwrap().expect("bodies go unencoded")
    }

    fn personal<'a>(name: Option<&'a str>, name_html: &'a str, url_html: &'a str) -> Personal<'a> {
        Personal {
            name,
            name_html,
            unsubscribe_url: URL,
            unsubscribe_html: url_html,
            preferences_url: URL,
            preferences_html: url_html,
        }
    }

    /// Header fields sorted, `Date` and `Message-ID` dropped, the MIME
    /// boundary named: what must match between a stamped and a built copy.
    fn normalised(bytes: &[u8]) -> (Vec<String>, String) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let boundary = text.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let text = text.replace(&boundary, "BOUNDARY");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut fields: Vec<String> = header_fields(&format!("{head}\r\n"))
            .filter(|f| !f.starts_with("Date:") && !f.starts_with("Message-ID:"))
            .map(str::to_owned)
            .collect();
        fields.sort();
        (fields, body.to_owned())
    }

    #[test]
    fn a_stamped_copy_is_the_message_the_builder_makes() {
        let stencil = stencil("Zoë's knees & hips");
        let url_html = handlebars::html_escape(URL);
        for name in [None, Some("Ann"), Some("Zoë Łukasz"), Some("Dr. \"Bones\" O'Neil <x@y>"), Some(&*"é".repeat(100))]
        {
            let name_html = handlebars::html_escape(name.unwrap_or(""));
            let stamped = stencil.stamp("reader@example.com", personal(name, &name_html, &url_html)).unwrap().unwrap();
            let rendered = bodies("Zoë's knees & hips", (name.unwrap_or(""), &name_html, URL, &url_html));
            let built = composer().compose("reader@example.com", name, &rendered, Some(list(URL))).unwrap();
            assert_eq!(normalised(&stamped.bytes), normalised(&built.bytes), "name {name:?}");
            assert_eq!(stamped.envelope, built.envelope);
            let text = String::from_utf8(stamped.bytes).unwrap();
            assert!(text.contains(&format!("Message-ID: {}\r\n", stamped.message_id)), "{text}");
            assert_eq!(text.matches("\r\nDate: ").count(), 1, "{text}");
        }
    }

    #[test]
    fn readers_whose_values_do_not_fit_get_the_full_builder() {
        let ascii = stencil("plain ascii");
        let (url_html, name_html) = (handlebars::html_escape(URL), "Zoë");
        assert!(ascii.stamp("r@example.com", personal(Some("Zoë"), name_html, &url_html)).unwrap().is_none());
        assert!(ascii.stamp("r@example.com", personal(Some("Zoe"), "Zoe", &url_html)).unwrap().is_some());

        let crowded = stencil(&"y".repeat(900));
        assert!(crowded.lines.iter().any(|l| l.fixed > 900 && l.slots == [Slot::NameHtml]));
        let name = "z".repeat(100);
        assert!(crowded.stamp("r@example.com", personal(Some(&name), &name, &url_html)).unwrap().is_none());
        assert!(crowded.stamp("r@example.com", personal(Some("Al"), "Al", &url_html)).unwrap().is_some());
    }

    #[test]
    fn refuses_header_injection_in_a_name() {
        let stencil = stencil("x");
        let err = stencil.stamp("r@example.com", personal(Some("Eve\r\nBcc: x@y.z"), "Eve", URL));
        assert!(matches!(err, Err(ComposeError::HeaderInjection("recipient name"))));
    }

    #[test]
    fn cuts_at_every_marker() {
        let pieces = Pieces::cut("a[x]b[y]c[x]", &[("[x]", 1), ("[y]", 2)]);
        let mut out = String::new();
        pieces.fill_into(&mut out, |slot, out| out.push_str(&slot.to_string()));
        assert_eq!(out, "a1b2c1");
        assert_eq!(pieces.text_len(), 3);
    }

    #[test]
    fn header_fields_keep_their_folded_lines() {
        let fields: Vec<_> = header_fields("A: 1\r\nB: 2\r\n 3\r\n\tfour\r\nC: 5\r\n").collect();
        assert_eq!(fields, ["A: 1\r\n", "B: 2\r\n 3\r\n\tfour\r\n", "C: 5\r\n"]);
    }

    #[test]
    fn slot_lines_measure_the_text_around_slots() {
        let pieces = Pieces::cut(
            "head\r\nDear NAME, see URL!\r\nplain\r\nURL\r\n",
            &[("NAME", Slot::Name), ("URL", Slot::Unsubscribe)],
        );
        let lines = slot_lines(&pieces);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].fixed, lines[0].slots.as_slice()), (12, &[Slot::Name, Slot::Unsubscribe][..]));
        assert_eq!((lines[1].fixed, lines[1].slots.as_slice()), (0, &[Slot::Unsubscribe][..]));
    }
}

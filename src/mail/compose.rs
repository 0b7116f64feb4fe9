use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::Rendered;
use super::stencil::{Markers, Stencil};

/// A message ready for the wire: the SMTP envelope and the RFC 5322 bytes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
    pub message_id: String,
}

/// The list a message belongs to, for `List-Id` and unsubscribe headers.
#[derive(Debug, Clone, Copy)]
pub struct ListHeaders<'a> {
    pub name: &'a str,
    pub slug: &'a str,
    pub unsubscribe_url: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("refusing a header value with a line break ({0})")]
    HeaderInjection(&'static str),
    #[error("invalid recipient address")]
    Address(#[from] lettre::address::AddressError),
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Builds every message Tidings sends, with the headers bulk-mail receivers
/// require: `Message-ID`, `Date`, and for list mail `List-Id`,
/// `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 2369, 2919, 8058).
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
    domain: String,
}

/// CR or LF in a header value would start a new header: refuse it outright
/// rather than trust any encoder downstream.
pub(super) fn header_safe(value: &str, what: &'static str) -> Result<(), ComposeError> {
    if value.contains(['\r', '\n']) { Err(ComposeError::HeaderInjection(what)) } else { Ok(()) }
}

/// A body part sent as it is (7bit, or 8bit when it holds UTF-8) whenever
/// its lines fit SMTP's 998-octet limit, which every current mail server
/// takes (8BITMIME). lettre would pick quoted-printable for any line over 76
/// characters, and that encoding cost more CPU than any other step of
/// sending a digest.
fn part(content_type: ContentType, body: String) -> SinglePart {
    let body = match on_the_wire(&body) {
        Some(crlf) => {
            let encoding =
                if crlf.is_ascii() { ContentTransferEncoding::SevenBit } else { ContentTransferEncoding::EightBit };
            Body::dangerous_pre_encoded(crlf, encoding)
        }
        None => Body::new(body),
    };
    SinglePart::builder().header(content_type).body(body)
}

/// The body with every line ending as CRLF, or `None` when it cannot go as
/// it is: a line over 998 octets, a NUL, or a CR that ends no line. One
/// pass, line by line.
fn on_the_wire(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if memchr::memchr(0, bytes).is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
        let line = &bytes[start..end];
        let line = if end < bytes.len() { line.strip_suffix(b"\r").unwrap_or(line) } else { line };
        if line.len() > 998 || memchr::memchr(b'\r', line).is_some() {
            return None;
        }
        out.extend_from_slice(line);
        if end < bytes.len() {
            out.extend_from_slice(b"\r\n");
        }
        start = end + 1;
    }
    Some(out)
}

impl Composer {
    pub fn new(from: Mailbox, domain: String) -> Self {
        Self { from, domain }
    }

    pub fn compose(
        &self,
        to: &str,
        to_name: Option<&str>,
        rendered: &Rendered,
        list: Option<ListHeaders<'_>>,
    ) -> Result<Outgoing, ComposeError> {
        if let Some(name) = to_name {
            header_safe(name, "recipient name")?;
        }
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), self.domain);
        let to = Mailbox::new(to_name.map(str::to_owned), to.parse()?);
        let message = self.message(to, message_id.clone(), rendered, list)?;
        Ok(Outgoing { envelope: message.envelope().clone(), bytes: message.formatted(), message_id })
    }

    /// The list message composed once with `markers` where each reader's
    /// values go, or `None` when a body cannot go unencoded (its markers
    /// would not survive quoted-printable): each reader's copy is then
    /// composed in full.
    pub fn stencil(
        &self,
        rendered: &Rendered,
        list: ListHeaders<'_>,
        markers: &Markers,
    ) -> Result<Option<Stencil>, ComposeError> {
        let (Some(html), Some(text)) = (on_the_wire(&rendered.html), on_the_wire(&rendered.text)) else {
            return Ok(None);
        };
        let ascii_only = html.is_ascii() || text.is_ascii();
        let placeholder = Mailbox::new(None, "reader@stencil.invalid".parse()?);
        let message = self.message(placeholder, format!("<stencil@{}>", self.domain), rendered, Some(list))?;
        let Ok(formatted) = String::from_utf8(message.formatted()) else { return Ok(None) };
        Ok(Some(Stencil::cut(&formatted, markers, ascii_only, self.from.email.clone(), self.domain.clone())))
    }

    fn message(
        &self,
        to: Mailbox,
        message_id: String,
        rendered: &Rendered,
        list: Option<ListHeaders<'_>>,
    ) -> Result<Message, ComposeError> {
        header_safe(&rendered.subject, "subject")?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&rendered.subject)
            .message_id(Some(message_id))
            .date_now();
        if let Some(list) = list {
            header_safe(list.unsubscribe_url, "unsubscribe URL")?;
            header_safe(list.name, "list name")?;
            let raw = |name: &'static str, value: String| HeaderValue::new(HeaderName::new_from_ascii_str(name), value);
            let label: String =
                list.name.chars().filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '.')).collect();
            builder = builder
                .raw_header(raw("List-Id", format!("{label} <{}.{}>", list.slug, self.domain)))
                .raw_header(raw("List-Unsubscribe", format!("<{}>", list.unsubscribe_url)))
                .raw_header(raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()));
        }
        Ok(builder.multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, rendered.text.clone()))
                .singlepart(part(ContentType::TEXT_HTML, rendered.html.clone())),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(subject: &str) -> Rendered {
        Rendered { subject: subject.into(), html: "<p>hi</p>".into(), text: "hi".into() }
    }

    fn composer() -> Composer {
        Composer::new("Dr. Luks <news@example.org>".parse().unwrap(), "lists.example.org".into())
    }

    #[test]
    fn list_mail_carries_rfc8058_headers() {
        let list =
            ListHeaders { name: "Orthopedic", slug: "orthopedic", unsubscribe_url: "https://x/unsubscribe/abc.def" };
        let out = composer().compose("a@example.com", None, &rendered("Hi"), Some(list)).unwrap();
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(text.contains("List-Unsubscribe: <https://x/unsubscribe/abc.def>\r\n"), "{text}");
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        assert!(text.contains("List-Id: Orthopedic <orthopedic.lists.example.org>\r\n"));
        assert!(text.contains(&format!("Message-ID: {}\r\n", out.message_id)));
        assert!(text.contains("multipart/alternative"));
    }

    #[test]
    fn line_endings_become_crlf() {
        let wire = |s: &str| on_the_wire(s).map(|b| String::from_utf8(b).unwrap());
        assert_eq!(wire("a\nb\r\nc\n").as_deref(), Some("a\r\nb\r\nc\r\n"));
        assert_eq!(wire("\n").as_deref(), Some("\r\n"));
        assert_eq!(wire("none").as_deref(), Some("none"));
        assert_eq!(wire("é\n").as_deref(), Some("é\r\n"));
        assert_eq!(wire("bare\rcr"), None);
        assert_eq!(wire("ends in cr\r"), None);
        assert_eq!(wire("nul\0"), None);
        assert!(wire(&"x".repeat(998)).is_some());
        assert_eq!(wire(&format!("ok\n{}\nok", "x".repeat(999))), None);
    }

    #[test]
    fn bodies_go_unencoded_when_lines_fit() {
        let long_line = "x".repeat(500);
        let rendered =
            Rendered { subject: "s".into(), html: format!("<p>{long_line}</p>\nZoë"), text: "plain\nascii".into() };
        let out = composer().compose("a@example.com", None, &rendered, None).unwrap();
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: 7bit\r\n\r\nplain\r\nascii"), "{text}");
        assert!(text.contains(&format!("Content-Transfer-Encoding: 8bit\r\n\r\n<p>{long_line}</p>\r\nZoë")), "{text}");
        let too_long = Rendered { html: "y".repeat(1200), ..rendered };
        let out = composer().compose("a@example.com", None, &too_long, None).unwrap();
        assert!(String::from_utf8(out.bytes).unwrap().contains("quoted-printable"));
    }

    #[test]
    fn refuses_header_injection() {
        let err = composer().compose("a@example.com", None, &rendered("Hi\r\nBcc: x@y.z"), None);
        assert!(matches!(err, Err(ComposeError::HeaderInjection("subject"))));
        let err = composer().compose("a@example.com", Some("Eve\nBcc: x@y.z"), &rendered("Hi"), None);
        assert!(matches!(err, Err(ComposeError::HeaderInjection(_))));
    }
}

//! Reads a returned mail: an RFC 3464 delivery status notification or an
//! RFC 5965 feedback (complaint) report, into what it says about whom. MIME
//! is parsed by `mail-parser`; the status fields inside (`Action`, `Status`,
//! groups separated by blank lines) have no parser there, and are read here.
//! Every report is hostile until read: anything that does not parse is
//! unrecognised and changes nothing.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::tag::{TAG_HEADER, Tagger, Target};
use crate::domain::{BounceKind, EmailAddress};

/// Larger reports are not read (a report is a few kilobytes; the original
/// it returns may carry attachments, which are never needed).
pub const MAX_REPORT_BYTES: usize = 40 * 1024 * 1024;

/// Whom a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Named by a tag whose MAC checked out.
    Tagged(Target),
    /// Named by the report's own fields (only without VERP).
    Address(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub who: Who,
    pub kind: BounceKind,
    /// The status and diagnostic, or the feedback type, as the report said.
    pub reason: String,
    /// Names this report and this recipient, so a second import is a no-op.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Findings(Vec<Finding>),
    /// A well-formed report that asks for nothing: a delay warning, a
    /// success notice, a "not spam" report.
    Ignored(String),
    Unrecognised(String),
}

/// What `raw` says, checking tags with `tagger`.
pub fn read(raw: &[u8], tagger: &Tagger) -> Reading {
    if raw.len() > MAX_REPORT_BYTES {
        return Reading::Unrecognised(format!("larger than {} MB", MAX_REPORT_BYTES / 1024 / 1024));
    }
    let Some(message) = MessageParser::default().parse(raw) else {
        return Reading::Unrecognised("not a mail message".into());
    };
    let key = message.message_id().map_or_else(|| hex_sha256(raw), |id| format!("<{id}>"));
    let mut report = None;
    let mut original_headers = String::new();
    for part in &message.parts {
        let Some(ct) = part.content_type() else { continue };
        let ctype = ct.ctype().to_ascii_lowercase();
        let subtype = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if report.is_none() => {
                report = Some(Kind::Dsn(String::from_utf8_lossy(part.contents()).into_owned()));
            }
            ("message", "feedback-report") if report.is_none() => {
                report = Some(Kind::Arf(String::from_utf8_lossy(part.contents()).into_owned()));
            }
            ("message", "rfc822" | "global") => {
                if let PartType::Message(original) = &part.body {
                    original_headers.push_str(&headers_of(original));
                }
            }
            ("text", "rfc822-headers") => original_headers.push_str(&String::from_utf8_lossy(part.contents())),
            _ => {}
        }
    }
    let Some(report) = report else {
        return Reading::Unrecognised("not a delivery status notification or a feedback report".into());
    };
    let tagged = find_tag(&message, &original_headers, tagger);
    let context = Context { key, tagged, verp: tagger.verp(), original_headers };
    match report {
        Kind::Dsn(fields) => read_dsn(&fields, &context),
        Kind::Arf(fields) => read_arf(&fields, &context),
    }
}

enum Kind {
    Dsn(String),
    Arf(String),
}

struct Context {
    key: String,
    tagged: Option<Target>,
    verp: bool,
    original_headers: String,
}

impl Context {
    /// The report's subject: its tag; without VERP, else the address the
    /// report names. With VERP a report without a valid tag names nobody.
    fn who(&self, named: Option<&str>) -> Result<Who, String> {
        if let Some(target) = self.tagged {
            return Ok(Who::Tagged(target));
        }
        if self.verp {
            return Err("no valid bounce tag (with a bounce address set, reports must carry one)".into());
        }
        named.and_then(address_in).map(Who::Address).ok_or_else(|| "names no recipient we could read".into())
    }
}

fn read_dsn(text: &str, context: &Context) -> Reading {
    let groups = field_groups(text);
    let recipients: Vec<&Fields> = groups
        .iter()
        .filter(|g| get(g, "final-recipient").or_else(|| get(g, "original-recipient")).is_some())
        .collect();
    if recipients.is_empty() {
        return Reading::Unrecognised("the delivery status names no recipient".into());
    }
    let mut findings = Vec::new();
    let mut ignored = Vec::new();
    let mut unreadable = Vec::new();
    for group in recipients {
        let action = get(group, "action").unwrap_or_default().to_ascii_lowercase();
        if matches!(action.as_str(), "delayed" | "delivered" | "relayed" | "expanded") {
            ignored.push(format!("action {action}"));
            continue;
        }
        let status = get(group, "status").map(str::trim).filter(|s| !s.is_empty());
        let diagnostic = get(group, "diagnostic-code").map(str::trim);
        let kind = match status {
            Some(s) => BounceKind::of_status(s),
            None => diagnostic.and_then(kind_in_diagnostic),
        };
        let Some(kind) = kind else {
            unreadable.push("no status we could read".to_owned());
            continue;
        };
        let named = get(group, "final-recipient").or_else(|| get(group, "original-recipient"));
        let who = match context.who(named) {
            Ok(who) => who,
            Err(why) => return Reading::Unrecognised(why),
        };
        let reason = [status.map(|s| format!("status {s}")), diagnostic.map(str::to_owned)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        let key = format!("{}/{}", context.key, who_key(&who));
        findings.push(Finding { who, kind, reason, key });
    }
    if !findings.is_empty() {
        return Reading::Findings(findings);
    }
    match (ignored.is_empty(), unreadable.first()) {
        (false, _) => Reading::Ignored(ignored.join(", ")),
        (true, Some(why)) => Reading::Unrecognised(why.clone()),
        (true, None) => Reading::Unrecognised("the delivery status names no recipient".into()),
    }
}

fn read_arf(text: &str, context: &Context) -> Reading {
    let fields: Fields = field_groups(text).into_iter().flatten().collect();
    let Some(feedback) = get(&fields, "feedback-type").map(|t| t.trim().to_ascii_lowercase()) else {
        return Reading::Unrecognised("a feedback report without Feedback-Type".into());
    };
    if feedback == "not-spam" {
        return Reading::Ignored("feedback type not-spam".into());
    }
    let original_to = field_groups(&context.original_headers).into_iter().flatten().find(|(n, _)| n == "to");
    let named = get(&fields, "original-rcpt-to").or(original_to.as_ref().map(|(_, v)| v.as_str()));
    let who = match context.who(named) {
        Ok(who) => who,
        Err(why) => return Reading::Unrecognised(why),
    };
    let key = format!("{}/{}", context.key, who_key(&who));
    Reading::Findings(vec![Finding {
        who,
        kind: BounceKind::Complaint,
        reason: format!("feedback type {feedback}"),
        key,
    }])
}

/// A valid tag in the places a report carries one: its own recipient
/// headers (VERP: reports go to the envelope sender), then the returned
/// original's tag header and Return-Path.
fn find_tag(message: &Message<'_>, original_headers: &str, tagger: &Tagger) -> Option<Target> {
    let own = ["To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"];
    own.iter().filter_map(|name| message.header_raw(*name)).find_map(|value| tagger.find(value)).or_else(|| {
        field_groups(original_headers)
            .into_iter()
            .flatten()
            .filter(|(name, _)| name == &TAG_HEADER.to_ascii_lowercase() || name == "return-path")
            .find_map(|(_, value)| tagger.find(&value))
    })
}

type Fields = Vec<(String, String)>;

fn get<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `Name: value` fields (names lowercased, folded lines joined), in groups
/// separated by blank lines.
fn field_groups(text: &str) -> Vec<Fields> {
    let mut groups = vec![Fields::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if groups.last().is_some_and(|g| !g.is_empty()) {
                groups.push(Fields::new());
            }
            continue;
        }
        let Some(group) = groups.last_mut() else { continue };
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// The headers of a returned original, as text.
fn headers_of(original: &Message<'_>) -> String {
    let raw = original.raw_message();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| raw.windows(2).position(|w| w == b"\n\n"));
    String::from_utf8_lossy(&raw[..end.unwrap_or(raw.len()).min(64 * 1024)]).into_owned()
}

/// `rfc822; Zoe@Example.org` or `<zoe@example.org>` → the address, parsed.
fn address_in(value: &str) -> Option<String> {
    let value = value.rsplit(';').next().unwrap_or(value);
    let value = value.rsplit('<').next().unwrap_or(value);
    let value = value.trim().trim_end_matches('>').trim();
    EmailAddress::parse(value).ok().map(|a| a.as_str().to_owned())
}

/// Only when no `Status` is given: an enhanced code in the diagnostic
/// (`smtp; 550 5.1.1 …`), else its reply code's class.
fn kind_in_diagnostic(diagnostic: &str) -> Option<BounceKind> {
    let words: Vec<&str> = diagnostic.split(|c: char| c.is_whitespace() || c == ';').collect();
    if let Some(kind) = words.iter().filter(|w| w.matches('.').count() == 2).find_map(|w| BounceKind::of_status(w)) {
        return Some(kind);
    }
    words.iter().find_map(|w| match w.as_bytes() {
        [b'5', b'0'..=b'9', b'0'..=b'9'] => Some(BounceKind::Hard),
        [b'4', b'0'..=b'9', b'0'..=b'9'] => Some(BounceKind::Soft),
        _ => None,
    })
}

fn who_key(who: &Who) -> String {
    match who {
        Who::Tagged(Target::Delivery(n)) => format!("d{n}"),
        Who::Tagged(Target::Outbox(n)) => format!("o{n}"),
        Who::Address(a) => a.to_ascii_lowercase(),
    }
}

fn hex_sha256(raw: &[u8]) -> String {
    Sha256::digest(raw).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Signer;

    const RCPT: &str = "zoe@example.com";

    fn tagger(verp: bool) -> Tagger {
        Tagger::new(
            Signer::new(b"0123456789abcdef0123456789abcdef"),
            verp.then(|| "bounces@news.example.org".parse().unwrap()),
        )
    }

    fn fixture(name: &str, tag: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/bounces/{name}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read(&path).unwrap();
        let text =
            String::from_utf8_lossy(&raw).replace("{{TAG}}", tag).replace("{{RCPT}}", RCPT).replace("{{N}}", "1");
        // Keep bytes that are not UTF-8 (the wrong-charset fixture) as they are.
        if std::str::from_utf8(&raw).is_ok() { text.into_bytes() } else { raw }
    }

    fn kinds(reading: &Reading) -> Vec<(Who, BounceKind)> {
        match reading {
            Reading::Findings(f) => f.iter().map(|f| (f.who.clone(), f.kind)).collect(),
            other => panic!("expected findings, got {other:?}"),
        }
    }

    #[test]
    fn providers_dsns_and_complaints_classify() {
        let t = tagger(true);
        let tag = t.tag(Target::Delivery(7));
        let me = Who::Tagged(Target::Delivery(7));
        for (name, kind) in [
            ("postfix_hard.eml", BounceKind::Hard),
            ("exim_hard.eml", BounceKind::Hard),
            ("gmail_hard.eml", BounceKind::Hard),
            ("microsoft_hard.eml", BounceKind::Hard),
            ("yahoo_hard.eml", BounceKind::Hard),
            ("postfix_mailbox_full.eml", BounceKind::Soft),
            ("gmail_policy.eml", BounceKind::Policy),
            ("yahoo_arf.eml", BounceKind::Complaint),
            ("microsoft_arf.eml", BounceKind::Complaint),
        ] {
            assert_eq!(kinds(&read(&fixture(name, &tag), &t)), vec![(me.clone(), kind)], "{name}");
        }
        assert!(matches!(read(&fixture("postfix_delayed.eml", &tag), &t), Reading::Ignored(_)));
    }

    #[test]
    fn malformed_reports_are_unrecognised() {
        let t = tagger(true);
        let tag = t.tag(Target::Delivery(7));
        for name in ["malformed_no_status.eml", "malformed_charset.eml", "malformed_truncated.eml"] {
            assert!(matches!(read(&fixture(name, &tag), &t), Reading::Unrecognised(_)), "{name}");
        }
        for junk in [&b""[..], b"\0\0\0", b"Subject: hi\r\n\r\nbody", &[0xff; 4096]] {
            assert!(matches!(read(junk, &t), Reading::Unrecognised(_)));
        }
        // A 20 MB attachment where the status should be.
        let mut big = b"From: MAILER-DAEMON@x.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; \
            report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\n\
            Content-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
        let line = [b'A'; 76];
        for _ in 0..(20 * 1024 * 1024 / 78) {
            big.extend_from_slice(&line);
            big.extend_from_slice(b"\r\n");
        }
        big.extend_from_slice(b"--b--\r\n");
        assert!(matches!(read(&big, &t), Reading::Unrecognised(_)));
    }

    #[test]
    fn forged_or_missing_tags_name_nobody_with_verp() {
        let t = tagger(true);
        let forged = "d7-00000000000000000000";
        assert!(matches!(read(&fixture("postfix_hard.eml", forged), &t), Reading::Unrecognised(_)));
        // Without VERP the report's Final-Recipient names the reader.
        let plain = tagger(false);
        assert_eq!(
            kinds(&read(&fixture("postfix_hard.eml", forged), &plain)),
            vec![(Who::Address(RCPT.into()), BounceKind::Hard)]
        );
        assert_eq!(
            kinds(&read(&fixture("yahoo_arf.eml", forged), &plain)),
            vec![(Who::Address(RCPT.into()), BounceKind::Complaint)]
        );
    }

    #[test]
    fn diagnostic_codes_count_only_without_status() {
        assert_eq!(kind_in_diagnostic("smtp; 550 5.1.1 no such user"), Some(BounceKind::Hard));
        assert_eq!(kind_in_diagnostic("smtp; 550 5.7.1 spam"), Some(BounceKind::Policy));
        assert_eq!(kind_in_diagnostic("smtp; 452 mailbox full"), Some(BounceKind::Soft));
        assert_eq!(kind_in_diagnostic("smtp; 550 no such user"), Some(BounceKind::Hard));
        assert_eq!(kind_in_diagnostic("X-Postfix; gone"), None);
    }

    #[test]
    fn the_same_report_has_the_same_key() {
        let t = tagger(true);
        let tag = t.tag(Target::Delivery(7));
        let key = |raw: &[u8]| match read(raw, &t) {
            Reading::Findings(f) => f[0].key.clone(),
            other => panic!("{other:?}"),
        };
        let raw = fixture("postfix_hard.eml", &tag);
        assert_eq!(key(&raw), key(&raw));
        assert_ne!(key(&raw), key(&fixture("exim_hard.eml", &tag)));
    }
}

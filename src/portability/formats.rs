//! The header rows of other tools' exports, and what each row says about a
//! reader: Tidings' own export, Mailchimp (subscribed, unsubscribed and
//! cleaned files), listmonk (export and import shapes), Substack, Ghost.

use chrono::NaiveDateTime;

use crate::domain::{EmailAddress, SubscriberName, SuppressionReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tidings,
    Mailchimp(MailchimpFile),
    Listmonk,
    /// listmonk's import shape: `email,name,attributes`.
    ListmonkImport,
    Substack,
    Ghost,
}

/// Mailchimp exports each audience as three files, told apart by columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailchimpFile {
    Subscribed,
    Unsubscribed,
    Cleaned,
}

impl Format {
    pub const NAMES: [&'static str; 6] = ["auto", "tidings", "mailchimp", "listmonk", "substack", "ghost"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tidings => "tidings",
            Self::Mailchimp(_) => "mailchimp",
            Self::Listmonk | Self::ListmonkImport => "listmonk",
            Self::Substack => "substack",
            Self::Ghost => "ghost",
        }
    }

    /// The format of a file with this header row; `wanted` is what the
    /// author named (`auto` to detect). An error says what is missing.
    pub fn of_header(header: &Header, wanted: &str) -> Result<Self, String> {
        let has = |name: &str| header.index(name).is_some();
        let mailchimp = || {
            Self::Mailchimp(if has("clean_time") {
                MailchimpFile::Cleaned
            } else if has("unsub_time") {
                MailchimpFile::Unsubscribed
            } else {
                MailchimpFile::Subscribed
            })
        };
        let detected = if has("email address") {
            Some(mailchimp())
        } else if has("email") && has("uuid") && has("status") && has("attributes") {
            Some(Self::Listmonk)
        } else if has("email") && has("attributes") {
            Some(Self::ListmonkImport)
        } else if has("email") && (has("email_disabled") || has("active_subscription")) {
            Some(Self::Substack)
        } else if has("email") && has("subscribed_to_emails") {
            Some(Self::Ghost)
        } else if has("email") && has("list") && has("status") {
            Some(Self::Tidings)
        } else {
            None
        };
        let email_column = if wanted == "mailchimp" { "Email Address" } else { "email" };
        match (wanted, detected) {
            ("auto", Some(format)) => Ok(format),
            ("auto", None) if !has("email") && !has("email address") => {
                Err("no email column: the header row needs `email` (or Mailchimp's `Email Address`)".into())
            }
            ("auto", None) => {
                Err("the header row matches no known export (tidings, mailchimp, listmonk, substack, ghost): \
                 choose its format (`--format`, the API's `format`, the dashboard's Format)"
                    .into())
            }
            (name, Some(format)) if format.name() == name => Ok(format),
            (name, _) if !has(&email_column.to_ascii_lowercase()) => {
                Err(format!("no `{email_column}` column, which a {name} export has"))
            }
            ("mailchimp", _) => Ok(mailchimp()),
            ("listmonk", _) => Ok(Self::ListmonkImport),
            ("substack", _) => Ok(Self::Substack),
            ("ghost", _) => Ok(Self::Ghost),
            ("tidings", _) => Ok(Self::Tidings),
            (other, _) => Err(format!("unknown format {other:?}: use one of {}", Self::NAMES.join(", "))),
        }
    }
}

/// A header row, by lowercased and trimmed name.
#[derive(Debug, Clone)]
pub struct Header(Vec<String>);

impl Header {
    pub fn new<'a>(fields: impl IntoIterator<Item = &'a str>) -> Self {
        Self(fields.into_iter().map(|f| f.trim_start_matches('\u{feff}').trim().to_lowercase()).collect())
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|h| h == name)
    }
}

/// What an import does with a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    Confirmed,
    Pending,
    Unsubscribed,
    Suppressed(SuppressionReason),
}

/// One valid row.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub status: ImportStatus,
    /// When and from where the reader opted in, as the old tool kept it.
    pub opted_in_at: Option<NaiveDateTime>,
    pub opt_in_ip: Option<String>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub unsubscribed_at: Option<NaiveDateTime>,
}

/// A row we cannot import, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct InvalidRow {
    pub line: u64,
    pub reason: String,
}

/// A row of `format` (read with `header`) into what it says; `Ok(None)`: a
/// row for another list (Tidings' export carries a list column).
pub fn read_row(
    format: Format,
    header: &Header,
    record: &csv::StringRecord,
    line: u64,
    list: &str,
) -> Result<Option<ImportRow>, InvalidRow> {
    let field = |name: &str| header.index(name).and_then(|i| record.get(i)).map(str::trim).filter(|v| !v.is_empty());
    let invalid = |reason: String| InvalidRow { line, reason };
    let email_column = if matches!(format, Format::Mailchimp(_)) { "email address" } else { "email" };
    let raw_email = field(email_column).ok_or_else(|| invalid("email: empty".into()))?;
    let email = EmailAddress::parse(raw_email).map_err(|e| invalid(format!("email: {e}")))?;
    let raw_name = match format {
        Format::Mailchimp(_) => {
            let full = [field("first name"), field("last name")].into_iter().flatten().collect::<Vec<_>>().join(" ");
            Some(full).filter(|n| !n.is_empty())
        }
        _ => field("name").map(str::to_owned),
    };
    let name = SubscriberName::parse_optional(raw_name.as_deref()).map_err(|e| invalid(format!("name: {e}")))?;
    let yes = |name: &str| field(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "1"));
    let time = |name: &str| field(name).and_then(parse_time);
    let mut row = ImportRow {
        line,
        email,
        name,
        status: ImportStatus::Confirmed,
        opted_in_at: None,
        opt_in_ip: None,
        confirmed_at: None,
        unsubscribed_at: None,
    };
    match format {
        Format::Tidings => {
            if field("list").is_some_and(|l| l != list) {
                return Ok(None);
            }
            row.status = match field("status").map(str::to_ascii_lowercase).as_deref() {
                Some("confirmed") => ImportStatus::Confirmed,
                Some("pending") => ImportStatus::Pending,
                Some("unsubscribed") => ImportStatus::Unsubscribed,
                Some("suppressed") => ImportStatus::Suppressed(SuppressionReason::Manual),
                other => {
                    return Err(invalid(format!(
                        "status: {other:?} is not confirmed, pending, unsubscribed or suppressed"
                    )));
                }
            };
            row.opted_in_at = time("subscribed_at");
            row.confirmed_at = time("confirmed_at");
            row.unsubscribed_at = time("unsubscribed_at");
        }
        Format::Mailchimp(file) => {
            row.status = match file {
                MailchimpFile::Subscribed => ImportStatus::Confirmed,
                MailchimpFile::Unsubscribed => ImportStatus::Unsubscribed,
                MailchimpFile::Cleaned => ImportStatus::Suppressed(SuppressionReason::HardBounce),
            };
            row.opted_in_at = time("optin_time");
            row.opt_in_ip = field("confirm_ip").or(field("optin_ip")).map(str::to_owned);
            row.confirmed_at = time("confirm_time");
            row.unsubscribed_at = time("unsub_time");
        }
        Format::Listmonk => {
            row.status = match field("status").map(str::to_ascii_lowercase).as_deref() {
                Some("enabled") => ImportStatus::Confirmed,
                Some("disabled") => ImportStatus::Unsubscribed,
                Some("blocklisted") => ImportStatus::Suppressed(SuppressionReason::Manual),
                other => return Err(invalid(format!("status: {other:?} is not enabled, disabled or blocklisted"))),
            };
            row.opted_in_at = time("created_at");
        }
        Format::ListmonkImport => {}
        Format::Substack => {
            if yes("email_disabled") {
                row.status = ImportStatus::Suppressed(SuppressionReason::HardBounce);
            }
            row.opted_in_at = time("created_at");
        }
        Format::Ghost => {
            row.status = match field("subscribed_to_emails").map(str::to_ascii_lowercase).as_deref() {
                Some("true" | "yes" | "1") | None => ImportStatus::Confirmed,
                Some(_) => ImportStatus::Unsubscribed,
            };
            row.opted_in_at = time("created_at");
        }
    }
    if let Some(ip) = &row.opt_in_ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            row.opt_in_ip = None;
        }
    }
    Ok(Some(row))
}

/// The time formats exports use: RFC 3339, `2024-01-05 10:11:12` (UTC, as
/// Mailchimp and listmonk write it), or a bare date.
pub fn parse_time(value: &str) -> Option<NaiveDateTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Some(t.naive_utc());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(t);
        }
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(line: &str) -> Header {
        Header::new(line.split(','))
    }

    #[test]
    fn formats_are_told_apart_by_their_header_rows() {
        let detect = |line: &str| Format::of_header(&header(line), "auto");
        assert_eq!(
            detect("Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP"),
            Ok(Format::Mailchimp(MailchimpFile::Subscribed))
        );
        assert_eq!(
            detect("Email Address,First Name,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE"),
            Ok(Format::Mailchimp(MailchimpFile::Unsubscribed))
        );
        assert_eq!(
            detect("Email Address,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE"),
            Ok(Format::Mailchimp(MailchimpFile::Cleaned))
        );
        assert_eq!(detect("uuid,email,name,attributes,status,created_at,updated_at"), Ok(Format::Listmonk));
        assert_eq!(detect("email,name,attributes"), Ok(Format::ListmonkImport));
        assert_eq!(detect("email,active_subscription,expiry,email_disabled,created_at"), Ok(Format::Substack));
        assert_eq!(
            detect("email,name,note,subscribed_to_emails,stripe_customer_id,labels,created_at"),
            Ok(Format::Ghost)
        );
        assert_eq!(
            detect("\u{feff}email,name,list,status,subscribed_at,confirmed_at,unsubscribed_at,consent_source"),
            Ok(Format::Tidings)
        );
        assert!(detect("name,phone").unwrap_err().contains("no email column"));
        assert!(detect("email,phone").unwrap_err().contains("--format"));
        assert_eq!(Format::of_header(&header("email,phone"), "listmonk"), Ok(Format::ListmonkImport));
        assert!(Format::of_header(&header("name"), "ghost").unwrap_err().contains("`email`"));
        assert!(Format::of_header(&header("email"), "excel").unwrap_err().contains("unknown format"));
    }

    #[test]
    fn times_in_the_shapes_exports_use() {
        let t = |s: &str| parse_time(s).map(|t| t.to_string());
        assert_eq!(t("2024-01-05 10:11:12").as_deref(), Some("2024-01-05 10:11:12"));
        assert_eq!(t("2024-01-05T10:11:12+01:00").as_deref(), Some("2024-01-05 09:11:12"));
        assert_eq!(t("2024-01-05T10:11:12.345Z").as_deref(), Some("2024-01-05 10:11:12.345"));
        assert_eq!(t("2024-01-05").as_deref(), Some("2024-01-05 00:00:00"));
        assert_eq!(t("yesterday"), None);
    }
}

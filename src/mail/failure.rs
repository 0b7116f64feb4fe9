//! Why a send failed: the SMTP stage, the reply code and its enhanced status
//! code (RFC 3463), and from those whose fault it was.

use std::fmt;

use crate::domain::{FailureClass, SmtpStage};

/// An enhanced status code, `class.subject.detail` (RFC 3463), e.g. `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    /// The code at the start of a reply's text (`5.7.1 Message rejected`),
    /// if it has one.
    pub fn at_start_of(text: &str) -> Option<Self> {
        let word = text.trim_start().split(|c: char| c.is_whitespace()).next()?;
        let mut parts = word.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() || class.len() != 1 || subject.len() > 3 || detail.len() > 3 {
            return None;
        }
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(class) && digits(subject) && digits(detail)) {
            return None;
        }
        let class: u8 = class.parse().ok()?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Self { class, subject: subject.parse().ok()?, detail: detail.parse().ok()? })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A failed send, as the dispatcher records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub stage: SmtpStage,
    /// The SMTP reply code, when the server answered.
    pub code: Option<u16>,
    pub enhanced: Option<EnhancedCode>,
    /// No answer came within the deadline.
    pub timed_out: bool,
    /// What the server said, or what went wrong on our side.
    pub detail: String,
}

impl SendError {
    /// A failure with no reply: connection trouble on our side or theirs.
    pub fn without_reply(stage: SmtpStage, detail: impl Into<String>) -> Self {
        Self { stage, code: None, enhanced: None, timed_out: false, detail: detail.into() }
    }

    pub fn timeout(stage: SmtpStage, limit: std::time::Duration) -> Self {
        Self { timed_out: true, ..Self::without_reply(stage, format!("no answer within {limit:?}")) }
    }

    /// A refusal we decided on ourselves, for good (a configuration that
    /// cannot work): it is the sender's fault, like a 5xx from the server.
    pub fn refused_here(stage: SmtpStage, detail: impl Into<String>) -> Self {
        Self { code: Some(554), ..Self::without_reply(stage, detail) }
    }

    /// A reply the server sent: its code and text.
    pub fn reply(stage: SmtpStage, code: u16, text: &str) -> Self {
        let text = text.trim();
        let enhanced = EnhancedCode::at_start_of(text);
        Self { stage, code: Some(code), enhanced, timed_out: false, detail: text.to_owned() }
    }

    /// Whose fault it was (see [`FailureClass`]).
    pub fn class(&self) -> FailureClass {
        let Some(code) = self.code else { return FailureClass::Temporary };
        if code < 500 {
            return FailureClass::Temporary;
        }
        match self.enhanced {
            Some(EnhancedCode { class: 5, subject: 1, .. })
            | Some(EnhancedCode { class: 5, subject: 2, detail: 1 }) => FailureClass::Recipient,
            // A bare 5xx at RCPT names the recipient; with any other
            // enhanced code (a blocklisted IP: 5.7.1) it does not.
            None if self.stage == SmtpStage::Rcpt => FailureClass::Recipient,
            _ => FailureClass::Message,
        }
    }

    /// `code enhanced`, e.g. `550 5.1.1`, for the record.
    pub fn code_text(&self) -> Option<String> {
        let code = self.code?;
        Some(match self.enhanced {
            Some(e) => format!("{code} {e}"),
            None => code.to_string(),
        })
    }

    /// A failure at the first command of a transaction that says the
    /// session is over: no answer at all, or 421 ("closing the channel",
    /// which servers send unasked when they drop an idle connection). On a
    /// reused connection that says nothing about the message, so it may be
    /// tried again at once on a new one.
    pub fn is_stale_connection(&self) -> bool {
        self.stage == SmtpStage::Mail && matches!(self.code, None | Some(421)) && !self.timed_out
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timed_out {
            write!(f, "timeout at {}: {}", self.stage.label(), self.detail)
        } else {
            match self.code {
                // The reply text already starts with its enhanced code.
                Some(code) => write!(f, "{}: {code} {}", self.stage.label(), self.detail),
                None => write!(f, "{}: {}", self.stage.label(), self.detail),
            }
        }
    }
}

impl std::error::Error for SendError {}

/// Reads a lettre error as a failure at `stage`.
pub fn from_lettre(stage: SmtpStage, e: &lettre::transport::smtp::Error) -> SendError {
    use std::error::Error as _;
    let text = e.source().map(ToString::to_string).unwrap_or_default();
    match e.status() {
        Some(code) => {
            let code: u16 = code.to_string().parse().unwrap_or(if e.is_permanent() { 550 } else { 451 });
            SendError::reply(stage, code, &text)
        }
        None if e.is_client() => SendError::refused_here(stage, text),
        None if e.is_timeout() => SendError { timed_out: true, ..SendError::without_reply(stage, e.to_string()) },
        None => SendError::without_reply(stage, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(stage: SmtpStage, code: u16, text: &str) -> FailureClass {
        SendError::reply(stage, code, text).class()
    }

    #[test]
    fn enhanced_codes_are_read_from_the_reply_text() {
        assert_eq!(
            EnhancedCode::at_start_of("5.1.1 No such user"),
            Some(EnhancedCode { class: 5, subject: 1, detail: 1 })
        );
        assert_eq!(EnhancedCode::at_start_of("  4.7.0 greylisted").map(|e| e.to_string()), Some("4.7.0".into()));
        assert_eq!(EnhancedCode::at_start_of("5.7.515 Access denied").map(|e| e.detail), Some(515));
        for not in ["Message rejected", "5.1 short", "5.1.1.1 long", "6.1.1 class", "x.1.1", "", "5.1.1000 wide"] {
            assert_eq!(EnhancedCode::at_start_of(not), None, "{not}");
        }
    }

    #[test]
    fn only_the_recipients_fault_is_a_bounce() {
        use FailureClass::*;
        use SmtpStage::*;
        assert_eq!(class(Rcpt, 550, "5.1.1 No such user here"), Recipient);
        assert_eq!(class(EndOfData, 550, "5.1.1 Mailbox unavailable"), Recipient);
        assert_eq!(class(Rcpt, 550, "5.2.1 Mailbox disabled"), Recipient);
        assert_eq!(class(Rcpt, 550, "No such user"), Recipient, "a bare 5xx at RCPT");
        assert_eq!(class(Rcpt, 554, "5.7.1 Service unavailable; client host blocked"), Message, "a blocklist");
        assert_eq!(class(EndOfData, 554, "Message rejected: Email address is not verified"), Message, "SES");
        assert_eq!(class(EndOfData, 554, "5.7.1 URL in message is blocklisted"), Message);
        assert_eq!(class(Mail, 550, "5.7.1 Sender not accepted"), Message);
        assert_eq!(class(Mail, 550, "Sender rejected"), Message, "a bare 5xx at MAIL");
        assert_eq!(class(EndOfData, 552, "5.3.4 Message too big"), Message);
        assert_eq!(class(EndOfData, 550, "5.6.0 Bad content"), Message);
        assert_eq!(class(Rcpt, 550, "5.2.2 Mailbox full"), Message, "5.2.2 is not 5.2.1");
        assert_eq!(class(Auth, 535, "5.7.8 Authentication credentials invalid"), Message);
        assert_eq!(class(Rcpt, 450, "4.1.1 Try later"), Temporary, "a 4xx is temporary whatever its text");
        assert_eq!(class(EndOfData, 451, "4.3.0 Try again later"), Temporary);
        assert_eq!(SendError::without_reply(Connect, "refused").class(), Temporary);
        assert_eq!(SendError::timeout(EndOfData, std::time::Duration::from_secs(5)).class(), Temporary);
        assert_eq!(SendError::refused_here(StartTls, "no TLS").class(), Message);
    }

    #[test]
    fn the_record_says_stage_code_and_text() {
        let e = SendError::reply(SmtpStage::EndOfData, 554, "5.7.1 Message rejected\r\n");
        assert_eq!(e.to_string(), "end of DATA: 554 5.7.1 Message rejected");
        assert_eq!(e.code_text().as_deref(), Some("554 5.7.1"));
        let t = SendError::timeout(SmtpStage::Greeting, std::time::Duration::from_secs(2));
        assert_eq!(t.to_string(), "timeout at greeting: no answer within 2s");
        assert!(SendError::without_reply(SmtpStage::Mail, "connection reset").is_stale_connection());
        assert!(SendError::reply(SmtpStage::Mail, 421, "4.4.2 timeout exceeded").is_stale_connection());
        assert!(!SendError::reply(SmtpStage::Mail, 451, "4.3.0 try later").is_stale_connection());
        assert!(!SendError::reply(SmtpStage::Rcpt, 421, "4.4.2 closing").is_stale_connection());
    }
}

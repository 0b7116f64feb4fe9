use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use url::Url;

use super::Outgoing;
use super::corked::{CorkedStream, Outbound};
use crate::config::{MailTransportKind, Settings};

/// Where mail goes: an SMTP server, or `.eml` files for development.
pub enum Mailer {
    Smtp(SmtpMailer),
    File(FileMailer),
}

/// Why a send failed, as the retry policy needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: connection trouble, timeouts, 4xx replies.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The server refused for good (5xx): do not retry.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl Mailer {
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        Ok(match s.mail_transport {
            MailTransportKind::File => Self::File(FileMailer { dir: s.mail_dir.clone() }),
            MailTransportKind::Smtp => Self::Smtp(SmtpMailer::new(&s.smtp_url, s.smtp_timeout(), s.smtp_concurrency)?),
        })
    }

    pub async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp.send(message).await,
            Self::File(file) => file.send(message).await,
        }
    }

    /// Politely closes idle connections (QUIT) at shutdown.
    pub async fn close(&self) {
        if let Self::Smtp(smtp) = self {
            smtp.close().await;
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self, Self::File(_))
    }
}

/// Writes each message as `<dir>/<message-id>.eml`.
pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let io = |e: std::io::Error| SendError::Transient(format!("mail directory: {e}"));
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let stem: String = message.message_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let path = self.dir.join(format!("{stem}.eml"));
        let partial = self.dir.join(format!(".{stem}.eml.partial"));
        // Write then rename, so a reader of the directory never sees half a file.
        tokio::fs::write(&partial, &message.bytes).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        tracing::info!(file = %path.display(), "mail written to file");
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://`: STARTTLS when the server offers it.
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS or no delivery.
    Required,
    /// `smtp://…?tls=none`: never, e.g. a relay on loopback.
    Never,
}

/// SMTP over connections Tidings opens itself with `TCP_NODELAY`: lettre's
/// pool writes the final `.` of DATA separately and, without NODELAY, the
/// kernel holds it for the peer's delayed ACK, capping a connection at ~22
/// messages/s. Writes are corked until a reply is read, and where the server
/// offers PIPELINING over plain TCP the envelope goes in one write. Idle
/// connections are reused; a semaphore caps how many are in use at once
/// (lettre's pool does not).
pub struct SmtpMailer {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl SmtpMailer {
    pub fn new(url: &Url, timeout: Duration, concurrency: usize) -> Result<Self, String> {
        let host = url.host_str().ok_or("smtp_url has no host")?.to_owned();
        let implicit = url.scheme() == "smtps";
        let port = url.port().unwrap_or(if implicit { 465 } else { 25 });
        let tls = match (implicit, url.query_pairs().find(|(k, _)| k == "tls").as_ref().map(|(_, v)| v.as_ref())) {
            (true, _) => Tls::Implicit,
            (false, None | Some("opportunistic")) => Tls::Opportunistic,
            (false, Some("required")) => Tls::Required,
            (false, Some("none")) => Tls::Never,
            (false, Some(other)) => return Err(format!("smtp_url: unknown tls={other}")),
        };
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = (!url.username().is_empty())
            .then(|| Credentials::new(decode(url.username()), decode(url.password().unwrap_or(""))));
        Ok(Self {
            host,
            port,
            tls,
            credentials,
            timeout,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(concurrency),
        })
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let _permit =
            self.permits.acquire().await.map_err(|_| SendError::Transient("mailer is shutting down".into()))?;
        let reused = self.idle.lock().await.pop();
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match self.send_on(&mut conn, message).await {
            Ok(()) => {
                self.idle.lock().await.push(conn);
                Ok(())
            }
            // An idle connection may have been closed by the server meanwhile:
            // that says nothing about this message, so try once on a new one.
            Err(SendError::Transient(_)) if was_reused && conn.smtp.has_broken() => {
                let mut fresh = self.connect().await?;
                self.send_on(&mut fresh, message).await?;
                self.idle.lock().await.push(fresh);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn send_on(&self, conn: &mut Connection, message: &Outgoing) -> Result<(), SendError> {
        match tokio::time::timeout(self.timeout, conn.send(&message.envelope, &message.bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
            Err(_) => {
                conn.smtp.abort().await;
                Err(SendError::Transient(format!("no answer within {:?}", self.timeout)))
            }
        }
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Transient(format!("{what} {}:{}: {e}", self.host, self.port))
        };
        let connected = tokio::time::timeout(self.timeout, async {
            if self.tls == Tls::Implicit {
                let tls = TlsParameters::new(self.host.clone()).map_err(|e| fail("TLS set-up for", &e))?;
                return AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    Some(tls),
                    None,
                )
                .await
                .map(|smtp| Connection { smtp, pipeline: None })
                .map_err(|e| fail("connecting to", &e));
            }
            let stream =
                TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| fail("connecting to", &e))?;
            stream.set_nodelay(true).map_err(|e| fail("configuring", &e))?;
            let (stream, outbound) = CorkedStream::new(stream);
            let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                .await
                .map_err(|e| fail("greeting from", &e))?;
            let offered = conn.can_starttls();
            if self.tls == Tls::Required && !offered {
                return Err(SendError::Transient(format!(
                    "{}:{} does not offer STARTTLS and tls=required",
                    self.host, self.port
                )));
            }
            if offered && self.tls != Tls::Never {
                let tls = TlsParameters::new(self.host.clone()).map_err(|e| fail("TLS set-up for", &e))?;
                conn.starttls(tls, &self.hello).await.map_err(|e| fail("STARTTLS with", &e))?;
                // Under TLS the outbound bytes are ciphertext: no pipelining.
                return Ok(Connection { smtp: conn, pipeline: None });
            }
            // lettre keeps only the EHLO keywords it knows; ask again to see
            // whether PIPELINING is among them.
            let ehlo = conn.command(Ehlo::new(self.hello.clone())).await.map_err(|e| fail("EHLO to", &e))?;
            let pipelining = ehlo.message().any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
            Ok(Connection { smtp: conn, pipeline: pipelining.then_some(outbound) })
        })
        .await
        .map_err(|_| SendError::Transient(format!("connecting to {}:{} timed out", self.host, self.port)))??;
        let mut conn = connected;
        if let Some(credentials) = &self.credentials {
            // A refused login is our configuration, not the reader's address:
            // always transient, so nobody is suppressed for it.
            conn.smtp
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| fail("login to", &e))?;
        }
        Ok(conn)
    }

    async fn close(&self) {
        let idle: Vec<_> = self.idle.lock().await.drain(..).collect();
        for mut conn in idle {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.smtp.quit()).await;
        }
    }
}

/// One SMTP session, with the handle to pipeline commands when the server
/// offers it and the bytes go out in the clear.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipeline: Option<Outbound>,
}

impl Connection {
    async fn send(&mut self, envelope: &Envelope, body: &[u8]) -> Result<(), lettre::transport::smtp::Error> {
        let ascii_addresses =
            envelope.from().into_iter().chain(envelope.to()).all(|a| AsRef::<str>::as_ref(a).is_ascii());
        let eight_bit_ok = body.is_ascii() || self.smtp.server_info().supports_feature(Extension::EightBitMime);
        match &self.pipeline {
            // lettre's own send explains what the server lacks.
            Some(outbound) if ascii_addresses && eight_bit_ok => {
                let outbound = outbound.clone();
                self.send_pipelined(&outbound, envelope, body).await
            }
            _ => self.smtp.send(envelope, body).await.map(drop),
        }
    }

    /// MAIL, RCPT and DATA in one write, then their replies (RFC 2920), then
    /// the body once DATA is accepted. Any refusal ends the session, as
    /// lettre's own send does, so no half-done transaction is reused.
    async fn send_pipelined(
        &mut self,
        outbound: &Outbound,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<(), lettre::transport::smtp::Error> {
        let body_type =
            if body.is_ascii() { vec![] } else { vec![MailParameter::Body(MailBodyParameter::EightBitMime)] };
        let mut commands = Mail::new(envelope.from().cloned(), body_type).to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        commands.push_str(&Data.to_string());
        outbound.push(commands.as_bytes());
        // Every reply is read, refusals too, to stay in step with the server.
        let replies = envelope.to().len() + 2;
        let mut refused = None;
        let mut data_open = false;
        for i in 1..=replies {
            match self.smtp.read_response().await {
                Ok(_) => data_open = i == replies,
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        let sent = match refused {
            // A server that opened DATA anyway would take QUIT as text: the
            // connection is dropped unanswered, which discards the message.
            Some(e) if data_open => return Err(e),
            Some(e) => Err(e),
            // Stuffed and queued here in one pass: lettre's own encoder goes
            // byte by byte, and was the costliest step of a send.
            None => {
                outbound.push_data(body);
                self.smtp.read_response().await.map(drop)
            }
        };
        if sent.is_err() {
            self.smtp.abort().await;
        }
        sent
    }
}

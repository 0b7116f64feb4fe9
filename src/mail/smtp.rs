//! SMTP over connections Tidings opens itself with `TCP_NODELAY`: lettre's
//! pool writes the final `.` of DATA separately and, without NODELAY, the
//! kernel holds it for the peer's delayed ACK, capping a connection at ~22
//! messages/s. Writes are corked until a reply is read, and where the server
//! offers PIPELINING over plain TCP the envelope goes in one write. Idle
//! connections are reused; a semaphore caps how many are in use at once
//! (lettre's pool does not).
//!
//! Every wait has its own deadline (connect, greeting, STARTTLS, EHLO, AUTH,
//! each command, the reply to the final dot, QUIT), and every failure says
//! the stage it happened at (see [`SendError`]).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::Outgoing;
use super::corked::{CorkedStream, Outbound};
use super::dkim::{Dkim, sign_for_sending};
use super::eightbit::to_seven_bit;
use super::failure::{SendError, from_lettre};
use crate::config::Settings;
use crate::domain::SmtpStage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://`: STARTTLS when the server offers it.
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS or no delivery.
    Required,
    /// `smtp://…?tls=none`: never, e.g. a relay on loopback. Also the only
    /// way to send credentials over a connection without TLS.
    Never,
}

pub struct SmtpMailer {
    host: String,
    port: u16,
    tls: Tls,
    tls_parameters: TlsParameters,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    dkim: Option<Arc<Dkim>>,
}

/// Runs one step of the session under the deadline.
async fn step<T>(
    stage: SmtpStage,
    limit: Duration,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SendError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(from_lettre(stage, &e)),
        Err(_) => Err(SendError::timeout(stage, limit)),
    }
}

impl SmtpMailer {
    pub fn new(settings: &Settings, dkim: Option<Arc<Dkim>>) -> Result<Self, String> {
        let url = &settings.smtp_url;
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
        let mut builder = TlsParameters::builder(host.clone());
        if let Some(path) = &settings.smtp_ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("smtp_ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| format!("smtp_ca_file {}: {e}", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let tls_parameters = builder.build().map_err(|e| format!("smtp_url: TLS set-up: {e}"))?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = (!url.username().is_empty())
            .then(|| Credentials::new(decode(url.username()), decode(url.password().unwrap_or(""))));
        Ok(Self {
            host,
            port,
            tls,
            tls_parameters,
            credentials,
            timeout: settings.smtp_timeout(),
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(settings.smtp_concurrency),
            dkim,
        })
    }

    pub async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SendError::without_reply(SmtpStage::Connect, "the mailer is shutting down"))?;
        let reused = self.idle.lock().await.pop();
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match conn.send(&message.envelope, &message.bytes, self.timeout, self.dkim.as_ref()).await {
            Ok(()) => {
                self.idle.lock().await.push(conn);
                Ok(())
            }
            // An idle connection the server closed meanwhile fails at MAIL
            // with no answer or a 421: that says nothing about the message,
            // so it goes once more at once on a new connection. Anything
            // else (any other 4xx too) waits for its backoff.
            Err(e) if was_reused && e.is_stale_connection() => {
                drop(conn);
                let mut fresh = self.connect().await?;
                fresh.send(&message.envelope, &message.bytes, self.timeout, self.dkim.as_ref()).await?;
                self.idle.lock().await.push(fresh);
                Ok(())
            }
            // The connection is dropped unanswered: after a refusal the
            // session may be half-way through a transaction.
            Err(e) => Err(e),
        }
    }

    fn at(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let limit = self.timeout;
        let mut conn = if self.tls == Tls::Implicit {
            let smtp = step(
                SmtpStage::Connect,
                limit,
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(limit),
                    &self.hello,
                    Some(self.tls_parameters.clone()),
                    None,
                ),
            )
            .await?;
            Connection { smtp, pipeline: None }
        } else {
            self.connect_plain().await?
        };
        if let Some(credentials) = &self.credentials {
            if !conn.smtp.is_encrypted() && self.tls != Tls::Never {
                return Err(SendError::refused_here(
                    SmtpStage::StartTls,
                    format!(
                        "{} offers no STARTTLS, and the password is never sent without TLS: \
                         use a relay with TLS (smtps:// or STARTTLS), or add ?tls=none to smtp_url \
                         to allow it on a trusted network",
                        self.at()
                    ),
                ));
            }
            step(SmtpStage::Auth, limit, conn.smtp.auth(&[Mechanism::Plain, Mechanism::Login], credentials)).await?;
        }
        Ok(conn)
    }

    async fn connect_plain(&self) -> Result<Connection, SendError> {
        let limit = self.timeout;
        let stream = match tokio::time::timeout(limit, TcpStream::connect((self.host.as_str(), self.port))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(SendError::without_reply(SmtpStage::Connect, format!("{}: {e}", self.at()))),
            Err(_) => return Err(SendError::timeout(SmtpStage::Connect, limit)),
        };
        stream.set_nodelay(true).map_err(|e| SendError::without_reply(SmtpStage::Connect, e.to_string()))?;
        let (stream, outbound) = CorkedStream::new(stream);
        // lettre reads the greeting and sends EHLO here.
        let mut smtp = step(
            SmtpStage::Greeting,
            limit,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await?;
        let offered = smtp.can_starttls();
        if self.tls == Tls::Required && !offered {
            return Err(SendError::refused_here(
                SmtpStage::StartTls,
                format!("{} does not offer STARTTLS and smtp_url says tls=required", self.at()),
            ));
        }
        if offered && self.tls != Tls::Never {
            step(SmtpStage::StartTls, limit, smtp.starttls(self.tls_parameters.clone(), &self.hello)).await?;
            // Under TLS the outbound bytes are ciphertext: no pipelining.
            return Ok(Connection { smtp, pipeline: None });
        }
        // lettre keeps only the EHLO keywords it knows; ask again to see
        // whether PIPELINING is among them.
        let ehlo = step(SmtpStage::Ehlo, limit, smtp.command(Ehlo::new(self.hello.clone()))).await?;
        let pipelining = ehlo.message().any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        Ok(Connection { smtp, pipeline: pipelining.then_some(outbound) })
    }

    /// Politely closes idle connections (QUIT) at shutdown.
    pub async fn close(&self) {
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
    async fn send(
        &mut self,
        envelope: &Envelope,
        body: &[u8],
        limit: Duration,
        dkim: Option<&Arc<Dkim>>,
    ) -> Result<(), SendError> {
        let info = self.smtp.server_info();
        let ascii_addresses =
            envelope.from().into_iter().chain(envelope.to()).all(|a| AsRef::<str>::as_ref(a).is_ascii());
        if !ascii_addresses && !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::refused_here(
                SmtpStage::Mail,
                "an address is not ASCII and the server does not offer SMTPUTF8",
            ));
        }
        // A server without 8BITMIME gets the same message with its 8bit
        // parts in quoted-printable.
        let body: Cow<'_, [u8]> = if body.is_ascii() || info.supports_feature(Extension::EightBitMime) {
            Cow::Borrowed(body)
        } else {
            Cow::Owned(to_seven_bit(body))
        };
        // Signed last, over the bytes as they go out.
        let body = match sign_for_sending(dkim, &body).await? {
            Some(signed) => Cow::Owned(signed),
            None => body,
        };
        let mut params = Vec::new();
        if !body.is_ascii() {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if !ascii_addresses {
            params.push(MailParameter::SmtpUtfEight);
        }
        let mail = Mail::new(envelope.from().cloned(), params);
        match self.pipeline.clone() {
            Some(outbound) => self.send_pipelined(&outbound, mail, envelope, &body, limit).await,
            None => self.send_stepwise(mail, envelope, &body, limit).await,
        }
    }

    /// One command at a time, each answered before the next.
    async fn send_stepwise(
        &mut self,
        mail: Mail,
        envelope: &Envelope,
        body: &[u8],
        limit: Duration,
    ) -> Result<(), SendError> {
        step(SmtpStage::Mail, limit, self.smtp.command(mail)).await?;
        for to in envelope.to() {
            step(SmtpStage::Rcpt, limit, self.smtp.command(Rcpt::new(to.clone(), vec![]))).await?;
        }
        step(SmtpStage::Data, limit, self.smtp.command(Data)).await?;
        step(SmtpStage::EndOfData, limit, self.smtp.message(body)).await.map(drop)
    }

    /// MAIL, RCPT and DATA in one write, then their replies (RFC 2920), then
    /// the body once DATA is accepted. Any refusal ends the session (the
    /// caller drops the connection), so no half-done transaction is reused.
    async fn send_pipelined(
        &mut self,
        outbound: &Outbound,
        mail: Mail,
        envelope: &Envelope,
        body: &[u8],
        limit: Duration,
    ) -> Result<(), SendError> {
        let mut commands = mail.to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        commands.push_str(&Data.to_string());
        outbound.push(commands.as_bytes());
        // Every reply is read, refusals too, to stay in step with the server;
        // the first refusal is the one reported.
        let replies = envelope.to().len() + 2;
        let mut refused = None;
        for i in 1..=replies {
            let stage = match i {
                1 => SmtpStage::Mail,
                i if i == replies => SmtpStage::Data,
                _ => SmtpStage::Rcpt,
            };
            if let Err(e) = step(stage, limit, self.smtp.read_response()).await {
                // Without an answer the session is lost: nothing more to read.
                let lost = e.code.is_none();
                refused.get_or_insert(e);
                if lost {
                    break;
                }
            }
        }
        if let Some(e) = refused {
            // A server that opened DATA anyway would take anything more as
            // text: the connection is dropped unanswered, discarding it.
            return Err(e);
        }
        // Stuffed and queued here in one pass: lettre's own encoder goes
        // byte by byte, and was the costliest step of a send.
        outbound.push_data(body);
        step(SmtpStage::EndOfData, limit, self.smtp.read_response()).await.map(drop)
    }
}

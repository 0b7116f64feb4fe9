//! The bounce mailbox poller: every `bounce_poll_secs`, reads the messages
//! of `TIDINGS_BOUNCE_IMAP_URL`'s folder not yet processed, applies them,
//! and flags each (`TidingsProcessed`, `\Seen`) once what it says is stored;
//! a message whose store step failed stays unflagged and is read again.

use std::sync::Arc;
use std::time::Duration;

use async_imap::Client;
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::{Bounces, Tally};
use crate::config::Settings;

/// The keyword a processed message gets.
const PROCESSED: &str = "TidingsProcessed";
/// Messages fetched per command.
const BATCH: usize = 50;
/// A poll that takes longer than this (a server that stopped answering) is
/// abandoned and tried again at the next interval.
const POLL_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `imaps://`: TLS from the first byte.
    Implicit,
    /// `imap://`: STARTTLS, required.
    StartTls,
    /// `imap://…?tls=none`: plain text, for a server on loopback only.
    None,
}

#[derive(Clone)]
pub struct MailboxPoller {
    host: String,
    port: u16,
    user: String,
    password: String,
    folder: String,
    security: Security,
    tls: TlsConnector,
    every: Duration,
    bounces: Bounces,
}

impl std::fmt::Debug for MailboxPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MailboxPoller {{ {}:{}/{} }}", self.host, self.port, self.folder)
    }
}

impl MailboxPoller {
    /// The poller for the configured mailbox, or `None` when there is none;
    /// an error names what is wrong with the URL or the CA file.
    pub fn from_settings(settings: &Settings, bounces: Bounces) -> Result<Option<Self>, String> {
        let Some(url) = &settings.bounce_imap_url else { return Ok(None) };
        let what = "bounce_imap_url (TIDINGS_BOUNCE_IMAP_URL)";
        let host = url.host_str().ok_or_else(|| format!("{what}: no host"))?.to_owned();
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let tls_none = url.query_pairs().any(|(k, v)| k == "tls" && v == "none");
        let security = match (url.scheme(), tls_none) {
            ("imaps", _) => Security::Implicit,
            ("imap", false) => Security::StartTls,
            ("imap", true) if is_loopback(&host) => Security::None,
            ("imap", true) => return Err(format!("{what}: ?tls=none is only allowed for a loopback server")),
            _ => return Err(format!("{what}: must be imaps:// or imap://")),
        };
        let port = url.port().unwrap_or(if security == Security::Implicit { 993 } else { 143 });
        let folder = decode(url.path().trim_start_matches('/'));
        let tls = connector(settings).map_err(|e| format!("bounce_imap_ca_file (TIDINGS_BOUNCE_IMAP_CA_FILE): {e}"))?;
        Ok(Some(Self {
            host,
            port,
            user: decode(url.username()),
            password: decode(url.password().unwrap_or_default()),
            folder: if folder.is_empty() { "INBOX".into() } else { folder },
            security,
            tls,
            every: Duration::from_secs(settings.bounce_poll_secs),
            bounces,
        }))
    }

    /// Polls until `stop` says so; a failed poll is logged with its cause
    /// and tried again at the next interval.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(host = %self.host, folder = %self.folder, "reading bounces from the mailbox");
        loop {
            match tokio::time::timeout(POLL_DEADLINE, self.poll_once()).await {
                Ok(Ok(tally)) if tally == Tally::default() => {}
                Ok(Ok(tally)) => tracing::info!(%tally, "bounce mailbox read"),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not read the bounce mailbox; will try again"),
                Err(_) => tracing::warn!("reading the bounce mailbox took too long; will try again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One pass over the folder's unprocessed messages.
    pub async fn poll_once(&self) -> Result<Tally, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect to {}:{}: {e}", self.host, self.port))?;
        match self.security {
            Security::Implicit => {
                let tls = self.handshake(tcp).await?;
                let mut client = Client::new(tls);
                greeting(&mut client).await?;
                self.read_folder(client).await
            }
            Security::StartTls => {
                let mut client = Client::new(tcp);
                greeting(&mut client).await?;
                client.run_command_and_check_ok("STARTTLS", None).await.map_err(|e| format!("STARTTLS: {e}"))?;
                let tls = self.handshake(client.into_inner()).await?;
                self.read_folder(Client::new(tls)).await
            }
            Security::None => {
                let mut client = Client::new(tcp);
                greeting(&mut client).await?;
                self.read_folder(client).await
            }
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(self.host.clone()).map_err(|e| format!("{}: {e}", self.host))?;
        self.tls.connect(name, tcp).await.map_err(|e| format!("TLS with {}: {e}", self.host))
    }

    async fn read_folder<T>(&self, client: Client<T>) -> Result<Tally, String>
    where
        T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        let mut session = client.login(&self.user, &self.password).await.map_err(|(e, _)| format!("LOGIN: {e}"))?;
        session.select(&self.folder).await.map_err(|e| format!("SELECT {}: {e}", self.folder))?;
        let mut uids: Vec<u32> = session
            .uid_search(format!("UNKEYWORD {PROCESSED}"))
            .await
            .map_err(|e| format!("SEARCH: {e}"))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        let mut tally = Tally::default();
        for batch in uids.chunks(BATCH) {
            let set = batch.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let mut messages = Vec::with_capacity(batch.len());
            {
                let mut fetches = session.uid_fetch(&set, "BODY.PEEK[]").await.map_err(|e| format!("FETCH: {e}"))?;
                while let Some(fetch) = fetches.next().await {
                    let fetch = fetch.map_err(|e| format!("FETCH: {e}"))?;
                    if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
                        messages.push((uid, body.to_vec()));
                    }
                }
            }
            for (uid, raw) in messages {
                let found = self.bounces.read_report(&raw, "imap").await.map_err(|e| format!("storing: {e}"))?;
                tally.add(found);
                let flags = format!("+FLAGS.SILENT ({PROCESSED} \\Seen)");
                let stored = session.uid_store(uid.to_string(), flags).await.map_err(|e| format!("STORE: {e}"))?;
                stored.collect::<Vec<_>>().await;
            }
        }
        let _ = session.logout().await;
        Ok(tally)
    }
}

async fn greeting<T>(client: &mut Client<T>) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the server closed the connection before its greeting".into()),
        Err(e) => Err(format!("greeting: {e}")),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS that trusts the public roots and, when given, the certificates of
/// `bounce_imap_ca_file`.
fn connector(settings: &Settings) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = &settings.bounce_imap_ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in the file", path.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

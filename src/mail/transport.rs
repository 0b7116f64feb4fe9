use std::path::PathBuf;
use std::sync::Arc;

use super::Outgoing;
use super::dkim::{Dkim, sign_for_sending};
use super::failure::SendError;
use super::smtp::SmtpMailer;
use crate::config::{MailTransportKind, Settings};
use crate::domain::SmtpStage;

/// Where mail goes: an SMTP server, or `.eml` files for development.
pub enum Mailer {
    Smtp(Box<SmtpMailer>),
    File(FileMailer),
}

impl Mailer {
    /// The configured transport, with the configured DKIM keys (an error
    /// names a key that does not load, or is not aligned with From).
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        let dkim = Dkim::from_settings(s)?.map(Arc::new);
        Ok(match s.mail_transport {
            MailTransportKind::File => Self::File(FileMailer { dir: s.mail_dir.clone(), dkim }),
            MailTransportKind::Smtp => Self::Smtp(Box::new(SmtpMailer::new(s, dkim)?)),
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
    dkim: Option<Arc<Dkim>>,
}

impl FileMailer {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let io = |e: std::io::Error| SendError::without_reply(SmtpStage::Local, format!("mail directory: {e}"));
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let stem: String = message.message_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let path = self.dir.join(format!("{stem}.eml"));
        let partial = self.dir.join(format!(".{stem}.eml.partial"));
        // Write then rename, so a reader of the directory never sees half a file.
        let signed = sign_for_sending(self.dkim.as_ref(), &message.bytes).await?;
        tokio::fs::write(&partial, signed.as_deref().unwrap_or(&message.bytes)).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        tracing::info!(file = %path.display(), "mail written to file");
        Ok(())
    }
}

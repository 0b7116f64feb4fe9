//! The emails Tidings sends, from store rows to ready-to-send messages.

use serde::Serialize;

use super::compose::ListHeaders;
use super::{ComposeError, Composer, Outgoing, RenderError, Renderer};
use crate::domain::{Signer, TokenKind};
use crate::store::outbox::ConfirmationJob;

/// Builds the public links inside emails. Tokens are signed here and only
/// here: the database never holds a usable token.
#[derive(Debug, Clone)]
pub struct Links {
    base_url: String,
    signer: Signer,
}

impl Links {
    pub fn new(base_url: &str, signer: Signer) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            signer,
        }
    }

    pub fn confirm_url(&self, token_id: &str) -> String {
        format!(
            "{}/subscriptions/confirm?token={}",
            self.base_url,
            self.signer.sign(TokenKind::Confirm, token_id)
        )
    }

    pub fn unsubscribe_url(&self, unsubscribe_id: &str) -> String {
        format!(
            "{}/unsubscribe/{}",
            self.base_url,
            self.signer.sign(TokenKind::Unsubscribe, unsubscribe_id)
        )
    }

    pub fn home(&self) -> &str {
        &self.base_url
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("nothing to confirm: the signup's lists are gone")]
    NoLists,
}

/// Everything needed to turn store rows into messages.
pub struct Messages {
    pub renderer: Renderer,
    pub composer: Composer,
    pub links: Links,
    pub confirm_ttl_hours: u32,
}

impl Messages {
    /// The double opt-in email. It greets generically and never repeats text
    /// from the signup request, so the form cannot be used to mail a message
    /// of the sender's choosing to a victim.
    pub fn confirmation(&self, to: &str, job: &ConfirmationJob) -> Result<Outgoing, MessageError> {
        #[derive(Serialize)]
        struct Data<'a> {
            subject: &'static str,
            lists: Vec<&'a str>,
            confirm_url: String,
            ttl_hours: u32,
            footer_reason: String,
            unsubscribe_url: String,
        }
        let first = job.lists.first().ok_or(MessageError::NoLists)?;
        let unsubscribe_url = self.links.unsubscribe_url(&first.unsubscribe_id);
        let data = Data {
            subject: "Please confirm your subscription",
            lists: job.lists.iter().map(|l| l.name.as_str()).collect(),
            confirm_url: self.links.confirm_url(&job.token_public_id),
            ttl_hours: self.confirm_ttl_hours,
            footer_reason: format!(
                "You get this email because this address was entered in the signup form at {}.",
                self.links.home()
            ),
            unsubscribe_url: unsubscribe_url.clone(),
        };
        let rendered = self.renderer.render("confirmation", &data)?;
        let headers = ListHeaders {
            name: &first.name,
            slug: &first.slug,
            unsubscribe_url: &unsubscribe_url,
        };
        Ok(self.composer.compose(to, None, &rendered, Some(headers))?)
    }
}

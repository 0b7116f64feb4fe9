//! The emails Tidings sends, from store rows to ready-to-send messages.

use serde::Serialize;

use super::compose::ListHeaders;
use super::{ComposeError, Composer, Outgoing, RenderError, Rendered, Renderer};
use crate::domain::{Signer, TokenKind};
use crate::store::digests::DigestContent;
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
        Self { base_url: base_url.trim_end_matches('/').to_owned(), signer }
    }

    pub fn confirm_url(&self, token_id: &str) -> String {
        format!("{}/subscriptions/confirm?token={}", self.base_url, self.signer.sign(TokenKind::Confirm, token_id))
    }

    pub fn unsubscribe_url(&self, unsubscribe_id: &str) -> String {
        format!("{}/unsubscribe/{}", self.base_url, self.signer.sign(TokenKind::Unsubscribe, unsubscribe_id))
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
        let headers = ListHeaders { name: &first.name, slug: &first.slug, unsubscribe_url: &unsubscribe_url };
        Ok(self.composer.compose(to, None, &rendered, Some(headers))?)
    }
}

/// Stand-ins for the per-reader values, rendered once per digest and replaced
/// per reader: rendering a 5 KB template for every recipient would cost more
/// than sending the message. Private-use characters pass through both
/// registries untouched and never occur in real values.
const NAME_SLOT: &str = "\u{E000}name\u{E000}";
const UNSUBSCRIBE_SLOT: &str = "\u{E000}unsubscribe\u{E000}";

/// A digest rendered once, personalised per reader by `Messages::digest_for`.
#[derive(Debug, Clone)]
pub struct PreparedDigest {
    list_name: String,
    list_slug: String,
    subject: String,
    /// With a greeting by name, and without: (HTML, text).
    named: (Pieces, Pieces),
    anonymous: (Pieces, Pieces),
}

/// A rendered body cut at its per-reader slots, so a reader's copy is a
/// few copies, never a search through 5 KB.
#[derive(Debug, Clone)]
struct Pieces(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Name,
    Unsubscribe,
}

impl Pieces {
    fn cut(rendered: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = rendered;
        loop {
            let name = rest.find(NAME_SLOT).map(|i| (i, Piece::Name, NAME_SLOT.len()));
            let unsubscribe = rest.find(UNSUBSCRIBE_SLOT).map(|i| (i, Piece::Unsubscribe, UNSUBSCRIBE_SLOT.len()));
            let next = match (name, unsubscribe) {
                (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
                (a, b) => a.or(b),
            };
            let Some((at, piece, len)) = next else { break };
            pieces.push(Piece::Text(rest[..at].to_owned()));
            pieces.push(piece);
            rest = &rest[at + len..];
        }
        pieces.push(Piece::Text(rest.to_owned()));
        Self(pieces)
    }

    fn fill(&self, name: &str, unsubscribe_url: &str) -> String {
        let size: usize = self.0.iter().map(|p| if let Piece::Text(t) = p { t.len() } else { 64 }).sum();
        let mut out = String::with_capacity(size);
        for piece in &self.0 {
            out.push_str(match piece {
                Piece::Text(t) => t,
                Piece::Name => name,
                Piece::Unsubscribe => unsubscribe_url,
            });
        }
        out
    }
}

impl Messages {
    pub fn prepare_digest(&self, content: &DigestContent) -> Result<PreparedDigest, MessageError> {
        let render =
            |name: Option<&str>| self.renderer.render("digest", &self.digest_data(content, name, UNSUBSCRIBE_SLOT));
        let (named, anonymous) = (render(Some(NAME_SLOT))?, render(None)?);
        Ok(PreparedDigest {
            list_name: content.list.name.clone(),
            list_slug: content.list.slug.clone(),
            subject: named.subject.clone(),
            named: (Pieces::cut(&named.html), Pieces::cut(&named.text)),
            anonymous: (Pieces::cut(&anonymous.html), Pieces::cut(&anonymous.text)),
        })
    }

    /// The HTML a reader gets, for previews (no name, a sample unsubscribe link).
    pub fn preview_digest(&self, content: &DigestContent) -> Result<String, MessageError> {
        let sample = format!("{}/unsubscribe/preview", self.links.home());
        Ok(self.renderer.render("digest", &self.digest_data(content, None, &sample))?.html)
    }

    fn digest_data(&self, content: &DigestContent, name: Option<&str>, unsubscribe_url: &str) -> serde_json::Value {
        let posts: Vec<_> = content
            .posts
            .iter()
            .map(|p| {
                serde_json::json!({
                    "title": p.title,
                    "url": p.url,
                    "summary": p.summary,
                    "published": p.published_at.format("%-d %B %Y").to_string(),
                })
            })
            .collect();
        serde_json::json!({
            "subject": content.subject,
            "list_name": content.list.name,
            "name": name,
            "one_post": content.posts.len() == 1,
            "posts": posts,
            "footer_reason": format!(
                "You get this email because you subscribed to {} at {}.",
                content.list.name,
                self.links.home()
            ),
            "unsubscribe_url": unsubscribe_url,
        })
    }

    /// One reader's copy of a prepared digest.
    pub fn digest_for(
        &self,
        digest: &PreparedDigest,
        to: &str,
        name: Option<&str>,
        unsubscribe_id: &str,
    ) -> Result<Outgoing, MessageError> {
        let unsubscribe_url = self.links.unsubscribe_url(unsubscribe_id);
        let (html, text) = if name.is_some() { &digest.named } else { &digest.anonymous };
        let name = name.unwrap_or("");
        let personal = Rendered {
            subject: digest.subject.clone(),
            html: html.fill(&handlebars::html_escape(name), &handlebars::html_escape(&unsubscribe_url)),
            text: text.fill(name, &unsubscribe_url),
        };
        let headers =
            ListHeaders { name: &digest.list_name, slug: &digest.list_slug, unsubscribe_url: &unsubscribe_url };
        Ok(self.composer.compose(to, Some(name).filter(|n| !n.is_empty()), &personal, Some(headers))?)
    }
}

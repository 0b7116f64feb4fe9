//! The emails Tidings sends, from store rows to ready-to-send messages.

use serde::Serialize;

use super::compose::ListHeaders;
use super::stencil::{Markers, Personal, Pieces, Stencil};
use super::{ComposeError, Composer, Outgoing, RenderError, Rendered, Renderer};
use crate::domain::{Signer, TokenKind};
use crate::store::digests::DigestContent;
use crate::store::outbox::{ConfirmationJob, ManageJob, WelcomeJob};
use crate::store::posts::PostRow;

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
        self.reader_links(unsubscribe_id).0
    }

    /// The reader's preference page: the same token as their unsubscribe
    /// link (one subscription of theirs, signed) under another path.
    pub fn preferences_url(&self, unsubscribe_id: &str) -> String {
        self.reader_links(unsubscribe_id).1
    }

    /// Both of a reader's links, signed once.
    pub fn reader_links(&self, unsubscribe_id: &str) -> (String, String) {
        let token = self.signer.sign(TokenKind::Unsubscribe, unsubscribe_id);
        (format!("{}/unsubscribe/{token}", self.base_url), format!("{}/preferences/{token}", self.base_url))
    }

    /// A digest's public page, for "view in browser".
    pub fn archive_url(&self, slug: &str, digest: i64) -> String {
        format!("{}/archive/{slug}/{digest}", self.base_url)
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
    /// Slugs of the lists whose digests are public (a "view in browser" link).
    pub archived_lists: Vec<String>,
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
            preferences_url: String,
        }
        let first = job.lists.first().ok_or(MessageError::NoLists)?;
        let (unsubscribe_url, preferences_url) = self.links.reader_links(&first.unsubscribe_id);
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
            preferences_url,
        };
        let rendered = self.renderer.render("confirmation", &data)?;
        let headers = ListHeaders { name: &first.name, slug: &first.slug, unsubscribe_url: &unsubscribe_url };
        Ok(self.composer.compose(to, None, &rendered, Some(headers))?)
    }

    /// The welcome to one list, sent once when a reader confirms it.
    pub fn welcome(&self, to: &str, job: &WelcomeJob) -> Result<Outgoing, MessageError> {
        let (unsubscribe_url, preferences_url) = self.links.reader_links(&job.list.unsubscribe_id);
        let data = serde_json::json!({
            "subject": format!("Welcome to {}", job.list.name),
            "list_name": job.list.name,
            "name": job.name,
            "one_post": job.posts.len() == 1,
            "posts": post_data(&job.posts),
            "footer_reason": format!(
                "You get this email because you subscribed to {} at {}.",
                job.list.name,
                self.links.home()
            ),
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
        });
        let rendered = self.renderer.render("welcome", &data)?;
        let headers = ListHeaders { name: &job.list.name, slug: &job.list.slug, unsubscribe_url: &unsubscribe_url };
        Ok(self.composer.compose(to, job.name.as_deref(), &rendered, Some(headers))?)
    }

    /// The link to a reader's preference page, asked for at `/manage`. Like
    /// the confirmation, it repeats nothing from the request.
    pub fn manage(&self, to: &str, job: &ManageJob) -> Result<Outgoing, MessageError> {
        let (unsubscribe_url, preferences_url) = self.links.reader_links(&job.unsubscribe_id);
        let data = serde_json::json!({
            "subject": "Your newsletter preferences",
            "lists": job.lists,
            "footer_reason": format!(
                "You get this email because a link to manage this address's newsletters was asked for at {}.",
                self.links.home()
            ),
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
        });
        let rendered = self.renderer.render("manage", &data)?;
        Ok(self.composer.compose(to, None, &rendered, None)?)
    }
}

/// Posts as the email templates show them.
fn post_data(posts: &[PostRow]) -> Vec<serde_json::Value> {
    posts
        .iter()
        .map(|p| {
            serde_json::json!({
                "title": p.title,
                "url": p.url,
                "summary": p.summary,
                "published": p.published_at.format("%-d %B %Y").to_string(),
            })
        })
        .collect()
}

/// A reader's two links in a digest (or the stand-ins for them).
#[derive(Debug, Clone, Copy)]
struct ReaderLinks<'a> {
    unsubscribe: &'a str,
    preferences: &'a str,
}

/// A digest rendered once, personalised per reader by `Messages::digest_for`.
#[derive(Debug, Clone)]
pub struct PreparedDigest {
    list_name: String,
    list_slug: String,
    subject: String,
    named: Variant,
    anonymous: Variant,
}

/// The digest with a greeting by name, or without one.
#[derive(Debug, Clone)]
struct Variant {
    html: Pieces<BodySlot>,
    text: Pieces<BodySlot>,
    /// The whole message, ready to stamp; `None` when its bodies must be
    /// encoded, and then each copy is composed in full from the pieces.
    stencil: Option<Stencil>,
}

#[derive(Debug, Clone, Copy)]
enum BodySlot {
    Name,
    Unsubscribe,
    Preferences,
}

/// A reader's values for the body slots, raw or HTML-escaped as the part needs.
struct SlotValues<'a> {
    name: &'a str,
    unsubscribe: &'a str,
    preferences: &'a str,
}

fn fill(pieces: &Pieces<BodySlot>, values: &SlotValues<'_>) -> String {
    let mut out = String::with_capacity(pieces.text_len() + 192);
    pieces.fill_into(&mut out, |slot, out| {
        out.push_str(match slot {
            BodySlot::Name => values.name,
            BodySlot::Unsubscribe => values.unsubscribe,
            BodySlot::Preferences => values.preferences,
        })
    });
    out
}

impl Messages {
    pub fn prepare_digest(&self, content: &DigestContent) -> Result<PreparedDigest, MessageError> {
        // Stand-ins for the per-reader values, rendered once per digest and
        // replaced per reader: rendering a 5 KB template for every recipient
        // would cost more than sending the message. They are random per
        // digest (ASCII letters and digits, which escaping leaves alone), so
        // no post, feed or name can hold one.
        let stand_in = Markers::random();
        let slots = [
            (stand_in.name.as_str(), BodySlot::Name),
            (stand_in.unsubscribe.as_str(), BodySlot::Unsubscribe),
            (stand_in.preferences.as_str(), BodySlot::Preferences),
        ];
        let (list_name, list_slug) = (content.list.name.clone(), content.list.slug.clone());
        let links = ReaderLinks { unsubscribe: &stand_in.unsubscribe, preferences: &stand_in.preferences };
        let variant = |name: Option<&str>| -> Result<(Variant, String), MessageError> {
            let rendered = self.renderer.render("digest", &self.digest_data(content, name, links))?;
            let (html, text) = (Pieces::cut(&rendered.html, &slots), Pieces::cut(&rendered.text, &slots));
            let markers = Markers::random();
            let marked = Rendered {
                subject: rendered.subject.clone(),
                html: fill(
                    &html,
                    &SlotValues {
                        name: &markers.name_html,
                        unsubscribe: &markers.unsubscribe_html,
                        preferences: &markers.preferences_html,
                    },
                ),
                text: fill(
                    &text,
                    &SlotValues {
                        name: &markers.name,
                        unsubscribe: &markers.unsubscribe,
                        preferences: &markers.preferences,
                    },
                ),
            };
            let headers = ListHeaders { name: &list_name, slug: &list_slug, unsubscribe_url: &markers.unsubscribe };
            let stencil = self.composer.stencil(&marked, headers, &markers)?;
            Ok((Variant { html, text, stencil }, rendered.subject))
        };
        let (named, subject) = variant(Some(&stand_in.name))?;
        let (anonymous, _) = variant(None)?;
        Ok(PreparedDigest { list_name, list_slug, subject, named, anonymous })
    }

    /// The HTML a reader gets, for previews (no name, a sample unsubscribe link).
    pub fn preview_digest(&self, content: &DigestContent) -> Result<String, MessageError> {
        let (unsubscribe, preferences) = (
            format!("{}/unsubscribe/preview", self.links.home()),
            format!("{}/preferences/preview", self.links.home()),
        );
        let links = ReaderLinks { unsubscribe: &unsubscribe, preferences: &preferences };
        Ok(self.renderer.render("digest", &self.digest_data(content, None, links))?.html)
    }

    fn digest_data(&self, content: &DigestContent, name: Option<&str>, links: ReaderLinks<'_>) -> serde_json::Value {
        let posts = post_data(&content.posts);
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
            "unsubscribe_url": links.unsubscribe,
            "preferences_url": links.preferences,
            "archive_url": (content.id > 0 && self.archived_lists.contains(&content.list.slug))
                .then(|| self.links.archive_url(&content.list.slug, content.id)),
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
        let (unsubscribe_url, preferences_url) = self.links.reader_links(unsubscribe_id);
        let name = name.filter(|n| !n.is_empty());
        let variant = if name.is_some() { &digest.named } else { &digest.anonymous };
        let (name_html, unsubscribe_html, preferences_html) = (
            handlebars::html_escape(name.unwrap_or("")),
            handlebars::html_escape(&unsubscribe_url),
            handlebars::html_escape(&preferences_url),
        );
        let reader = Personal {
            name,
            name_html: &name_html,
            unsubscribe_url: &unsubscribe_url,
            unsubscribe_html: &unsubscribe_html,
            preferences_url: &preferences_url,
            preferences_html: &preferences_html,
        };
        if let Some(stencil) = &variant.stencil {
            if let Some(message) = stencil.stamp(to, reader)? {
                return Ok(message);
            }
        }
        let personal = Rendered {
            subject: digest.subject.clone(),
            html: fill(
                &variant.html,
                &SlotValues { name: &name_html, unsubscribe: &unsubscribe_html, preferences: &preferences_html },
            ),
            text: fill(
                &variant.text,
                &SlotValues { name: name.unwrap_or(""), unsubscribe: &unsubscribe_url, preferences: &preferences_url },
            ),
        };
        let headers =
            ListHeaders { name: &digest.list_name, slug: &digest.list_slug, unsubscribe_url: &unsubscribe_url };
        Ok(self.composer.compose(to, name, &personal, Some(headers))?)
    }
}

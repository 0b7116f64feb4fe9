//! HTML pages, rendered with an escaping handlebars registry from templates
//! embedded in the binary.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use chrono::NaiveDateTime;
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::json;

use crate::config::ListSettings;
use crate::domain::SubscriptionStatus;
use crate::http::error::ApiError;
use crate::store::archive::ArchivedDigest;
use crate::store::digests::DigestContent;
use crate::store::preferences::Preferences;

pub struct Pages {
    registry: Handlebars<'static>,
}

/// What a preference page shows: the reader's lists, and what the last
/// change did.
pub struct PreferencesView<'a> {
    pub status: StatusCode,
    pub action: &'a str,
    pub prefs: &'a Preferences,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// A date as the pages write it: "3 December 2026".
pub fn long_date(at: NaiveDateTime) -> String {
    at.format("%-d %B %Y").to_string()
}

/// What the signup form shows: the lists, and on a retry the values and the
/// message about what to fix.
#[derive(Debug, Default, Serialize)]
pub struct SignupForm {
    pub email: String,
    pub name: String,
    pub checked: Vec<String>,
    pub error: Option<String>,
    pub error_email: bool,
    /// The signed time the form was served (see `abuse::form_token`).
    pub form_token: String,
}

impl Pages {
    pub fn new() -> Result<Self, Box<handlebars::TemplateError>> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        for (name, src) in [
            ("layout", include_str!("pages/layout.hbs")),
            ("signup", include_str!("pages/signup.hbs")),
            ("one_more_step", include_str!("pages/one_more_step.hbs")),
            ("message", include_str!("pages/message.hbs")),
            ("confirm", include_str!("pages/confirm.hbs")),
            ("unsubscribe", include_str!("pages/unsubscribe.hbs")),
            ("erase", include_str!("pages/erase.hbs")),
            ("preferences", include_str!("pages/preferences.hbs")),
            ("manage", include_str!("pages/manage.hbs")),
            ("privacy", include_str!("pages/privacy.hbs")),
            ("archive_index", include_str!("pages/archive_index.hbs")),
            ("archive_list", include_str!("pages/archive_list.hbs")),
            ("archive_digest", include_str!("pages/archive_digest.hbs")),
            ("embed", include_str!("pages/embed.hbs")),
            ("dash_layout", include_str!("pages/dashboard/layout.hbs")),
            ("dash_login", include_str!("pages/dashboard/login.hbs")),
            ("dash_overview", include_str!("pages/dashboard/overview.hbs")),
            ("dash_posts", include_str!("pages/dashboard/posts.hbs")),
            ("dash_digests", include_str!("pages/dashboard/digests.hbs")),
            ("dash_send", include_str!("pages/dashboard/send.hbs")),
            ("dash_digest", include_str!("pages/dashboard/digest.hbs")),
            ("dash_readers", include_str!("pages/dashboard/readers.hbs")),
            ("dash_reader", include_str!("pages/dashboard/reader.hbs")),
            ("dash_suppressions", include_str!("pages/dashboard/suppressions.hbs")),
        ] {
            registry.register_template_string(name, src).map_err(Box::new)?;
        }
        Ok(Self { registry })
    }

    fn render(&self, status: StatusCode, template: &str, data: &serde_json::Value) -> HttpResponse {
        match self.registry.render(template, data) {
            Ok(body) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body),
            Err(e) => {
                tracing::error!(error = %e, template, "page rendering failed");
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("Something went wrong on our side. Please try again later.")
            }
        }
    }

    /// Renders `template` with `data` (which must hold every value the
    /// template names: the registry is strict) and the layout's own values.
    fn page(&self, status: StatusCode, template: &str, data: &serde_json::Value) -> HttpResponse {
        let mut data = data.clone();
        if let Some(map) = data.as_object_mut() {
            map.entry("feed").or_insert(serde_json::Value::Null);
        }
        self.render(status, template, &data)
    }

    /// A dashboard page for a signed-in author: the section bar, the sign
    /// out form with the session's CSRF token, and `data`.
    pub fn dashboard(
        &self,
        status: StatusCode,
        template: &str,
        author: &str,
        csrf: &str,
        section: &str,
        data: &serde_json::Value,
    ) -> HttpResponse {
        let mut data = data.clone();
        if let Some(map) = data.as_object_mut() {
            map.insert("author".into(), json!(author));
            map.insert("csrf".into(), json!(csrf));
            map.insert("section".into(), json!(section));
        }
        self.render(status, template, &data)
    }

    /// A dashboard page before signing in (no section bar).
    pub fn dashboard_public(&self, status: StatusCode, template: &str, data: &serde_json::Value) -> HttpResponse {
        let mut data = data.clone();
        if let Some(map) = data.as_object_mut() {
            map.insert("author".into(), serde_json::Value::Null);
        }
        self.render(status, template, &data)
    }

    pub fn signup(&self, status: StatusCode, lists: &[ListSettings], form: &SignupForm) -> HttpResponse {
        let lists: Vec<_> = lists
            .iter()
            .map(|l| {
                json!({
                    "slug": l.slug.as_str(),
                    "name": l.name,
                    "description": l.description,
                    "checked": form.checked.iter().any(|c| c == l.slug.as_str()),
                })
            })
            .collect();
        let data = json!({
            "title": "Subscribe",
            "lists": lists,
            "email": form.email,
            "name": form.name,
            "error": form.error,
            "error_email": form.error_email,
            "form_token": form.form_token,
        });
        self.page(status, "signup", &data)
    }

    /// For a form post whose token did not pass (missing, too fast, too
    /// old, used): the reader's choices, kept in hidden fields with a fresh
    /// token, and one button that completes the signup.
    pub fn one_more_step(&self, lists: &[ListSettings], form: &SignupForm) -> HttpResponse {
        let chosen: Vec<_> = lists
            .iter()
            .filter(|l| form.checked.iter().any(|c| c == l.slug.as_str()))
            .map(|l| json!({ "slug": l.slug.as_str(), "name": l.name }))
            .collect();
        let data = json!({
            "title": "One more step",
            "email": form.email,
            "name": form.name,
            "lists": chosen,
            "form_token": form.form_token,
        });
        self.page(StatusCode::OK, "one_more_step", &data)
    }

    /// A page with a title, a few paragraphs and an optional link.
    pub fn message(
        &self,
        status: StatusCode,
        title: &str,
        paragraphs: &[&str],
        link: Option<(&str, &str)>,
    ) -> HttpResponse {
        let data = json!({
            "title": title,
            "paragraphs": paragraphs,
            "link_href": link.map(|l| l.0),
            "link_text": link.map(|l| l.1),
        });
        self.page(status, "message", &data)
    }

    pub fn confirm(&self, token: &str) -> HttpResponse {
        self.page(StatusCode::OK, "confirm", &json!({ "title": "Confirm your subscription", "token": token }))
    }

    /// Asks the reader to confirm erasing their data.
    pub fn erase(&self, action: &str) -> HttpResponse {
        self.page(StatusCode::OK, "erase", &json!({ "title": "Erase your data", "action": action }))
    }

    /// The signup form as a snippet for the blog's own pages: a plain form
    /// posting here (a "one more step" page catches it without JavaScript),
    /// its own scoped style, and a few lines that fetch a fill-time token.
    pub fn embed(&self, base: &str, site: &str, lists: &[&ListSettings]) -> Result<String, ApiError> {
        let shown: Vec<_> = lists.iter().map(|l| json!({ "slug": l.slug.as_str(), "name": l.name })).collect();
        let one = if shown.len() == 1 { shown[0].clone() } else { serde_json::Value::Null };
        let data = json!({ "base": base.trim_end_matches('/'), "site": site, "lists": shown, "one": one });
        // A snippet that failed to render is a 500, never an empty 200 a
        // blog would paste and show as a missing form.
        self.registry.render("embed", &data).map_err(|e| {
            tracing::error!(error = %e, "embed rendering failed");
            ApiError::Internal
        })
    }

    /// The preference page: every list with its state, and what changed.
    pub fn preferences(&self, view: &PreferencesView<'_>) -> HttpResponse {
        let lists: Vec<_> = view
            .prefs
            .lists
            .iter()
            .map(|l| {
                let state_text = match l.status {
                    Some(SubscriptionStatus::Confirmed) => "you receive it",
                    Some(SubscriptionStatus::Pending) => "waiting for your confirmation",
                    Some(SubscriptionStatus::Unsubscribed) => "you left it",
                    None => "not subscribed",
                };
                json!({
                    "slug": l.slug,
                    "name": l.name,
                    "description": l.description,
                    "state_text": state_text,
                    "subscribed": matches!(l.status, Some(SubscriptionStatus::Confirmed | SubscriptionStatus::Pending)),
                })
            })
            .collect();
        let any_subscribed = lists.iter().any(|l| l["subscribed"] == json!(true));
        let data = json!({
            "title": "Your newsletters",
            "action": view.action,
            "lists": lists,
            "any_subscribed": any_subscribed,
            "name": view.prefs.name.as_deref().unwrap_or(""),
            "notice": view.notice,
            "error": view.error,
        });
        self.page(view.status, "preferences", &data)
    }

    /// "Manage by email": the address form.
    pub fn manage(&self, status: StatusCode, email: &str, error: Option<&str>) -> HttpResponse {
        self.page(status, "manage", &json!({ "title": "Manage your subscriptions", "email": email, "error": error }))
    }

    pub fn privacy(&self, confirm_hours: u32) -> HttpResponse {
        self.page(StatusCode::OK, "privacy", &json!({ "title": "Privacy", "confirm_hours": confirm_hours }))
    }

    /// The lists whose archives are public.
    pub fn archive_index(&self, lists: &[&ListSettings]) -> HttpResponse {
        let lists: Vec<_> = lists
            .iter()
            .map(|l| json!({ "slug": l.slug.as_str(), "name": l.name, "description": l.description }))
            .collect();
        self.page(StatusCode::OK, "archive_index", &json!({ "title": "Newsletter archive", "lists": lists }))
    }

    pub fn archive_list(&self, list: &ListSettings, digests: &[ArchivedDigest]) -> HttpResponse {
        let digests: Vec<_> =
            digests.iter().map(|d| json!({ "id": d.id, "subject": d.subject, "sent": long_date(d.sent_at) })).collect();
        let slug = list.slug.as_str();
        let data = json!({
            "title": format!("{}: archive", list.name),
            "list_name": list.name,
            "slug": slug,
            "digests": digests,
            "feed": format!("/archive/{slug}/feed.xml"),
        });
        self.page(StatusCode::OK, "archive_list", &data)
    }

    /// A sent digest's web view: its posts, nothing of any reader.
    pub fn archive_digest(&self, content: &DigestContent, sent_at: NaiveDateTime) -> HttpResponse {
        let posts: Vec<_> = content
            .posts
            .iter()
            .map(|p| {
                json!({ "title": p.title, "url": p.url, "summary": p.summary, "published": long_date(p.published_at) })
            })
            .collect();
        let data = json!({
            "title": content.subject,
            "subject": content.subject,
            "list_name": content.list.name,
            "slug": content.list.slug,
            "sent": long_date(sent_at),
            "posts": posts,
        });
        self.page(StatusCode::OK, "archive_digest", &data)
    }

    pub fn unsubscribe(&self, action: &str, list_name: &str, already: bool, other_lists: &[String]) -> HttpResponse {
        let data = json!({
            "title": format!("Unsubscribe from {list_name}"),
            "action": action,
            "list_name": list_name,
            "already": already,
            "other_lists": other_lists,
        });
        self.page(StatusCode::OK, "unsubscribe", &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders() {
        let pages = Pages::new().unwrap();
        let lists = crate::config::Settings::default().lists;
        let form = SignupForm { email: "<x>".into(), error: Some("bad".into()), ..Default::default() };
        let now = chrono::Utc::now().naive_utc();
        let prefs = Preferences {
            subscriber_id: 1,
            name: None,
            address_confirmed: true,
            lists: vec![crate::store::preferences::ListChoice {
                slug: "a".into(),
                name: "A".into(),
                description: String::new(),
                status: Some(SubscriptionStatus::Confirmed),
            }],
        };
        for r in [
            pages.signup(StatusCode::OK, &lists, &form),
            pages.message(StatusCode::OK, "t", &["p"], Some(("/", "home"))),
            pages.message(StatusCode::OK, "t", &[], None),
            pages.confirm("tok"),
            pages.one_more_step(&lists, &SignupForm { checked: vec!["orthopedic".into()], ..Default::default() }),
            pages.unsubscribe("/unsubscribe/x", "Orthopedic", false, &["A".into(), "B".into()]),
            pages.unsubscribe("/unsubscribe/x", "Orthopedic", true, &[]),
            pages.erase("/preferences/x/erase"),
            pages.manage(StatusCode::OK, "", None),
            pages.manage(StatusCode::OK, "x", Some("bad")),
            pages.privacy(48),
            pages.message(
                StatusCode::OK,
                "embed",
                &[&pages.embed("http://x", "blog", &lists.iter().collect::<Vec<_>>()).unwrap()],
                None,
            ),
            pages.archive_index(&lists.iter().collect::<Vec<_>>()),
            pages.archive_list(&lists[0], &[ArchivedDigest { id: 1, subject: "s".into(), sent_at: now }]),
            pages.preferences(&PreferencesView {
                status: StatusCode::OK,
                action: "/preferences/x",
                prefs: &prefs,
                notice: Some("done".into()),
                error: None,
            }),
        ] {
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
}

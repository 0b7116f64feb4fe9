//! HTML pages, rendered with an escaping handlebars registry from templates
//! embedded in the binary.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::json;

use crate::config::ListSettings;

pub struct Pages {
    registry: Handlebars<'static>,
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
        ] {
            registry.register_template_string(name, src).map_err(Box::new)?;
        }
        Ok(Self { registry })
    }

    fn page(&self, status: StatusCode, template: &str, data: &serde_json::Value) -> HttpResponse {
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
        for r in [
            pages.signup(StatusCode::OK, &lists, &form),
            pages.message(StatusCode::OK, "t", &["p"], Some(("/", "home"))),
            pages.message(StatusCode::OK, "t", &[], None),
            pages.confirm("tok"),
            pages.one_more_step(&lists, &SignupForm { checked: vec!["orthopedic".into()], ..Default::default() }),
            pages.unsubscribe("/unsubscribe/x", "Orthopedic", false, &["A".into(), "B".into()]),
            pages.unsubscribe("/unsubscribe/x", "Orthopedic", true, &[]),
            pages.erase("/preferences/x/erase"),
        ] {
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
}

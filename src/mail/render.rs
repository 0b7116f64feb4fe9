use handlebars::{Handlebars, no_escape};
use serde::Serialize;

/// Every email template, embedded at build time so the binary is whole.
/// (name, HTML body, text body, subject line)
const TEMPLATES: &[(&str, &str, &str, &str)] = &[
    (
        "confirmation",
        include_str!("../../email_templates/confirmation.html.hbs"),
        include_str!("../../email_templates/confirmation.txt.hbs"),
        include_str!("../../email_templates/confirmation.subject.hbs"),
    ),
    (
        "digest",
        include_str!("../../email_templates/digest.html.hbs"),
        include_str!("../../email_templates/digest.txt.hbs"),
        include_str!("../../email_templates/digest.subject.hbs"),
    ),
    (
        "welcome",
        include_str!("../../email_templates/welcome.html.hbs"),
        include_str!("../../email_templates/welcome.txt.hbs"),
        include_str!("../../email_templates/welcome.subject.hbs"),
    ),
    (
        "manage",
        include_str!("../../email_templates/manage.html.hbs"),
        include_str!("../../email_templates/manage.txt.hbs"),
        include_str!("../../email_templates/manage.subject.hbs"),
    ),
];

/// Two registries: HTML escapes every `{{value}}`; text and subject lines do
/// not, so a URL with `&` stays a working URL in the plain-text part. Both are
/// strict (a missing value is an error, not an empty string) and have no
/// helpers that reach files, environment or network.
pub struct Renderer {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("email template error: {0}")]
    Template(#[from] Box<handlebars::TemplateError>),
    #[error("email rendering failed: {0}")]
    Render(#[from] Box<handlebars::RenderError>),
}

impl Renderer {
    pub fn new() -> Result<Self, RenderError> {
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        html.set_prevent_indent(true);
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.set_prevent_indent(true);
        text.register_escape_fn(no_escape);
        let tpl = |r: &mut Handlebars<'static>, name: &str, src: &str| {
            r.register_template_string(name, src).map_err(Box::new)
        };
        tpl(&mut html, "layout_html", include_str!("../../email_templates/layout.html.hbs"))?;
        tpl(&mut text, "layout_txt", include_str!("../../email_templates/layout.txt.hbs"))?;
        for (name, html_src, text_src, subject_src) in TEMPLATES {
            tpl(&mut html, name, html_src)?;
            tpl(&mut text, name, text_src)?;
            tpl(&mut text, &format!("{name}_subject"), subject_src)?;
        }
        Ok(Self { html, text })
    }

    pub fn render<T: Serialize>(&self, template: &str, data: &T) -> Result<Rendered, RenderError> {
        let subject = self.text.render(&format!("{template}_subject"), data).map_err(Box::new)?;
        Ok(Rendered {
            // One line, whatever the template or the values in it hold.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            html: self.html.render(template, data).map_err(Box::new)?,
            text: self.text.render(template, data).map_err(Box::new)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_escapes_html_only() {
        let r = Renderer::new().unwrap();
        let data = serde_json::json!({
            "subject": "s",
            "lists": ["Knee <b>pain</b> & you", "Orthopedic"],
            "confirm_url": "http://x/confirm?token=a&b=c",
            "ttl_hours": 48,
            "footer_reason": "Because.",
            "unsubscribe_url": "http://x/unsubscribe/t",
            "preferences_url": "http://x/preferences/t",
        });
        let out = r.render("confirmation", &data).unwrap();
        assert_eq!(out.subject, "Please confirm your subscription");
        assert!(out.html.contains("Knee &lt;b&gt;pain&lt;/b&gt; &amp; you</strong> and <strong>Orthopedic"));
        assert!(out.text.contains("Knee <b>pain</b> & you and Orthopedic"));
        assert!(out.text.contains("http://x/confirm?token=a&b=c"));
        // Entities in href are decoded by every mail client back to the URL.
        assert!(out.html.contains("http://x/confirm?token&#x3D;a&amp;b&#x3D;c"), "{}", out.html);
    }

    #[test]
    fn welcome_and_manage_render() {
        let r = Renderer::new().unwrap();
        let common = |extra: serde_json::Value| {
            let mut data = serde_json::json!({
                "subject": "s",
                "footer_reason": "Because.",
                "unsubscribe_url": "http://x/unsubscribe/t",
                "preferences_url": "http://x/preferences/t",
            });
            data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            data
        };
        let welcome = common(serde_json::json!({
            "list_name": "Orthopedic", "name": null, "one_post": true,
            "posts": [{"title": "Knees", "url": "http://b/k", "summary": "", "published": "1 May 2026"}],
        }));
        let out = r.render("welcome", &welcome).unwrap();
        assert_eq!(out.subject, "Welcome to Orthopedic");
        assert!(out.text.contains("Knees") && out.text.contains("http://x/preferences/t"));
        let out = r.render("manage", &common(serde_json::json!({ "lists": ["Orthopedic"] }))).unwrap();
        assert!(out.html.contains("http://x/preferences/t") && out.text.contains("You receive Orthopedic."));
    }

    #[test]
    fn strict_mode_refuses_missing_values() {
        let r = Renderer::new().unwrap();
        assert!(r.render("confirmation", &serde_json::json!({"lists": []})).is_err());
    }
}

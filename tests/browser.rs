//! The reader's pages in a real browser (headless Chromium over WebDriver):
//! sign up from the form and confirm from the email; the embed snippet on
//! another origin with JavaScript off and on; the preference page from a
//! digest; the archive. Every page is checked with axe-core and
//! screenshotted at 1280 and 375 px.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::browser::Browser;
use common::http::{FileServer, Serve};
use common::{Backend, TestApp, free_port, wait_until};

on_both_backends!(a_reader_signs_up_manages_and_reads_in_a_browser);

/// A page of the blog, on another origin, with the snippet pasted in.
fn blog_page(snippet: &str) -> Arc<[u8]> {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>The blog</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body><main><h1>A post about knees</h1><p>Get new posts by email:</p>{snippet}</main></body></html>"
    )
    .into_bytes()
    .into()
}

async fn a_reader_signs_up_manages_and_reads_in_a_browser(backend: Backend) {
    let (port, blog_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let blog = format!("http://127.0.0.1:{blog_port}");
    let app = TestApp::spawn_with(backend, |s| {
        s.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.base_url = url::Url::parse(&base).unwrap();
        s.form_min_fill_ms = 1_000;
        s.allowed_origins = vec![blog.clone()];
        s.site_url = Some(url::Url::parse(&format!("{blog}/")).unwrap());
    })
    .await;
    let Some(browser) = Browser::start(true).await else { return };
    let page = |path: &str| format!("{base}{path}");

    // The form on `/`, filled as a person does.
    browser.goto(&page("/")).await;
    browser.check(&format!("{backend:?}-signup")).await;
    assert!(!browser.overflows_at(320).await, "the form fits 320 px");
    browser.fill("#email", "reader@example.com").await;
    browser.fill("#name", "Rita Reader").await;
    browser.click("input[value=orthopedic]").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    browser.press("Subscribe").await;
    browser.wait_for_text("Check your inbox").await;
    browser.check(&format!("{backend:?}-check-inbox")).await;

    // The confirmation, over SMTP; its link opens a page with a button.
    let mail = wait_until(Duration::from_secs(10), || app.smtp.to("reader@example.com").first().cloned()).await;
    browser.goto(&mail.link(&format!("{base}/subscriptions/confirm?token="))).await;
    browser.wait_for_text("Confirm your subscription").await;
    browser.check(&format!("{backend:?}-confirm")).await;
    browser.press("Confirm my subscription").await;
    browser.wait_for_text("You are subscribed").await;
    browser.check(&format!("{backend:?}-confirmed")).await;
    let confirmed = |email: &str, list: &str| {
        app.db.count(&format!(
            "subscriptions WHERE status = 'confirmed' AND list_id = (SELECT id FROM lists WHERE slug = '{list}') \
             AND subscriber_id = (SELECT id FROM subscribers WHERE email = '{email}')"
        ))
    };
    assert_eq!(confirmed("reader@example.com", "orthopedic"), 1);

    // The embed snippet on the blog's own origin.
    let snippet = app.get("/embed?lists=orthopedic").await.text().await.unwrap();
    let _blog =
        FileServer::start_at(&format!("127.0.0.1:{blog_port}"), blog_page(&snippet), "text/html", Serve::Whole).await;
    // JavaScript off: no token, so Tidings asks for one more step.
    let Some(no_js) = Browser::start(false).await else { return };
    no_js.goto(&format!("{blog}/")).await;
    no_js.fill("#tidings-email", "nojs@example.com").await;
    no_js.press("Subscribe").await;
    no_js.wait_for_text("One more step").await;
    assert!(no_js.client.current_url().await.unwrap().as_str().starts_with(&base));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    no_js.press("Subscribe").await;
    let done = no_js.wait_for_text("Check your inbox").await;
    assert!(done.contains(&format!("href=\"{blog}/\"")), "a link back to the blog");
    no_js.close().await;
    app.smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(app.smtp.to("nojs@example.com").len(), 1);
    // JavaScript on: the snippet fetched a token, so the post goes straight through.
    browser.goto(&format!("{blog}/")).await;
    browser.check(&format!("{backend:?}-embed")).await;
    browser.fill("#tidings-email", "withjs@example.com").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    browser.press("Subscribe").await;
    browser.wait_for_text("Check your inbox").await;
    wait_until(Duration::from_secs(10), || app.smtp.to("withjs@example.com").first().cloned()).await;

    // "One more step" where axe can run: JavaScript on, but posted sooner
    // than a person fills the form.
    browser.goto(&format!("{blog}/")).await;
    browser.fill("#tidings-email", "step@example.com").await;
    browser.press("Subscribe").await;
    browser.wait_for_text("One more step").await;
    browser.check(&format!("{backend:?}-one-more-step")).await;

    // A digest; its footer opens the preference page.
    app.add_post("https://blog.example/knees", "Knees at forty", &["orthopedic"]).await;
    let digest = app.send_digest("orthopedic").await;
    assert_eq!(digest["status"], "sent");
    let mail = wait_until(Duration::from_secs(10), || {
        app.smtp.to("reader@example.com").into_iter().find(|m| m.text().contains("Knees at forty"))
    })
    .await;
    browser.goto(&mail.link(&format!("{base}/unsubscribe/"))).await;
    browser.wait_for_text("Unsubscribe from Orthopedic").await;
    browser.check(&format!("{backend:?}-unsubscribe")).await;
    browser.goto(&mail.link(&format!("{base}/preferences/"))).await;
    browser.wait_for_text("Your newsletters").await;
    browser.check(&format!("{backend:?}-preferences")).await;
    browser.press("Join Medical Social Media").await;
    browser.wait_for_text("You joined Medical Social Media").await;
    assert_eq!(confirmed("reader@example.com", "social-media"), 1);
    browser.press("Leave Orthopedic").await;
    browser.wait_for_text("You left Orthopedic").await;
    browser.check(&format!("{backend:?}-preferences-changed")).await;
    assert_eq!(confirmed("reader@example.com", "orthopedic"), 0);

    // The archive shows the digest, with nothing of the reader.
    browser.goto(&mail.link(&format!("{base}/archive/"))).await;
    let archived = browser.wait_for_text("Knees at forty").await;
    assert!(!archived.contains("reader@example.com") && !archived.contains("Rita"));
    browser.check(&format!("{backend:?}-archive-digest")).await;
    for (path, name) in [
        ("/archive", "archive"),
        ("/archive/orthopedic", "archive-list"),
        ("/privacy", "privacy"),
        ("/manage", "manage"),
    ] {
        browser.goto(&page(path)).await;
        browser.check(&format!("{backend:?}-{name}")).await;
    }

    // Erase, from the preference page.
    browser.goto(&mail.link(&format!("{base}/preferences/"))).await;
    browser.click("a[href$='/erase']").await;
    browser.wait_for_text("It cannot be undone").await;
    browser.check(&format!("{backend:?}-erase")).await;
    browser.press("Erase my data").await;
    browser.wait_for_text("Your data is erased").await;
    assert_eq!(app.db.count("subscribers WHERE email = 'reader@example.com'"), 0);
    browser.close().await;
}

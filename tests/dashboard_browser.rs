//! The author's dashboard in a real browser (headless Chromium over
//! WebDriver): a wrong password first, then signing in; the overview's
//! counts against the database; a post added, the digest previewed, sent
//! and followed to `sent` (JavaScript on) and seen the same on reload
//! (JavaScript off); another paused while it sends and resumed; a reader
//! searched and erased; a CSV imported after a dry run; a cross-site form
//! that tries to act for the author; signing out, after which the old
//! cookie no longer works. Every page is checked with axe-core and
//! screenshotted at 1280 and 375 px.

mod common;

use std::sync::Arc;

use reqwest::header::COOKIE;

use common::authors::{PASSWORD, add_author};
use common::browser::Browser;
use common::http::{FileServer, Serve};
use common::{Backend, TestApp, free_port};

on_both_backends!(the_author_signs_in_sends_a_digest_and_signs_out);

async fn the_author_signs_in_sends_a_digest_and_signs_out(backend: Backend) {
    let (port, other_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(backend, |s| {
        s.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.base_url = url::Url::parse(&base).unwrap();
        // Slow enough that the progress page has something to follow.
        s.send_rate_per_second = 4.0;
    })
    .await;
    assert!(add_author(&app, "doctor@example.com", PASSWORD).status.success());
    app.db.seed_confirmed("orthopedic", "knee-", 12);
    app.db.seed_confirmed("social-media", "post-", 4);
    app.db.execute("UPDATE subscriptions SET confirmed_at = CURRENT_TIMESTAMP WHERE subscriber_id IN (SELECT id FROM subscribers WHERE email LIKE 'knee-%')");
    let Some(browser) = Browser::start(true).await else { return };
    let page = |path: &str| format!("{base}{path}");

    // The dashboard sends a stranger to the sign-in form.
    browser.goto(&page("/admin")).await;
    browser.wait_for_text("Sign in").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/admin/login");
    browser.check(&format!("{backend:?}-dashboard-login")).await;
    browser.fill("#email", "doctor@example.com").await;
    browser.fill("#password", "not my password").await;
    browser.press("Sign in").await;
    browser.wait_for_text("That address and password do not match an author.").await;
    browser.check(&format!("{backend:?}-dashboard-login-failed")).await;
    browser.fill("#password", PASSWORD).await;
    browser.press("Sign in").await;
    let overview = browser.wait_for_text("<h1>Overview</h1>").await;
    browser.check(&format!("{backend:?}-dashboard-overview")).await;
    assert!(!browser.overflows_at(375).await, "the overview fits 375 px");
    let confirmed = app.db.count(
        "subscriptions WHERE status = 'confirmed' AND list_id = (SELECT id FROM lists WHERE slug = 'orthopedic')",
    );
    assert_eq!(confirmed, 12);
    let section = overview.split("id=\"list-orthopedic\"").nth(1).unwrap();
    assert!(section.contains(&format!("data-count=\"confirmed\">{confirmed}<")), "{section}");
    assert!(section.contains("Last 30 days: <strong>12</strong> confirmed"));

    // A post, then the digest: preview, the confirmation step, and the
    // progress page following the sending (JavaScript on).
    browser.goto(&page("/admin/ui/posts")).await;
    browser.fill("#title", "Knees in winter").await;
    browser.fill("#url", "https://blog.example/knees").await;
    browser.click("input[name=lists][value=orthopedic]").await;
    browser.press("Add the post").await;
    browser.wait_for_text("The post was added.").await;
    browser.check(&format!("{backend:?}-dashboard-posts")).await;
    browser.goto(&page("/admin/ui/digests")).await;
    browser.check(&format!("{backend:?}-dashboard-digests")).await;
    browser.click("a[href='/admin/ui/digests/send?list=orthopedic']").await;
    browser.wait_for_text("Send to 12 readers").await;
    browser.check(&format!("{backend:?}-dashboard-send")).await;
    browser.press("Send to 12 readers").await;
    browser.wait_for_text("data-field=\"state\">sending<").await;
    let digest_url = browser.client.current_url().await.unwrap().to_string();
    let sent = browser.wait_for_text("data-field=\"state\">sent<").await;
    assert!(sent.contains("data-field=\"sent\">12<"), "{sent}");
    browser.check(&format!("{backend:?}-dashboard-digest")).await;
    assert_eq!(app.smtp.to("knee-3@example.com").len(), 1);

    // Another digest, paused while it sends and resumed.
    browser.goto(&page("/admin/ui/posts")).await;
    browser.fill("#title", "Hips in spring").await;
    browser.fill("#url", "https://blog.example/hips").await;
    browser.click("input[name=lists][value=orthopedic]").await;
    browser.press("Add the post").await;
    browser.wait_for_text("The post was added.").await;
    browser.goto(&page("/admin/ui/digests/send?list=orthopedic")).await;
    browser.press("Send to 12 readers").await;
    browser.wait_for_text(">Pause</button>").await;
    browser.press("Pause").await;
    let paused = browser.wait_for_text("data-field=\"state\">paused<").await;
    assert!(paused.contains(">Resume</button>"));
    browser.press("Resume").await;
    browser.wait_for_text("data-field=\"state\">sent<").await;
    assert_eq!(app.smtp.to("knee-3@example.com").len(), 2, "each reader got each digest once");

    // A reader found by part of the address, their page, and erasing them.
    browser.goto(&page("/admin/ui/readers")).await;
    browser.fill("#q", "KNEE-7").await;
    browser.press("Search").await;
    browser.wait_for_text(">knee-7@example.com</a>").await;
    browser.check(&format!("{backend:?}-dashboard-readers")).await;
    browser.click("ul.rows a").await;
    let reader = browser.wait_for_text("<h1>knee-7@example.com</h1>").await;
    assert!(reader.contains("Knees in winter"), "the digest is among their deliveries");
    browser.check(&format!("{backend:?}-dashboard-reader")).await;
    browser.click("input[name=confirm]").await;
    browser.press("Erase the reader").await;
    browser.wait_for_text("The reader was erased").await;
    assert_eq!(app.db.count("subscribers WHERE email = 'knee-7@example.com'"), 0);
    // A small CSV: a dry run first (the form's default), then the import.
    let csv = std::env::temp_dir().join(format!("tidings-dashboard-{port}.csv"));
    std::fs::write(&csv, "email,name,attributes\nnew-1@example.com,Ann,{}\nnew-2@example.com,Bob,{}\n").unwrap();
    let choose_file = || async {
        let field = browser.client.find(fantoccini::Locator::Css("#import-file")).await.unwrap();
        field.send_keys(csv.to_str().unwrap()).await.unwrap();
    };
    choose_file().await;
    browser.press("Import").await;
    browser.wait_for_text("Dry run: nothing was written.").await;
    assert_eq!(app.db.count("subscribers WHERE email LIKE 'new-%'"), 0);
    browser.check(&format!("{backend:?}-dashboard-import-dry-run")).await;
    choose_file().await;
    browser.click("input[name=dry_run]").await;
    browser.press("Import").await;
    browser.wait_for_text("<strong>Imported.</strong>").await;
    assert_eq!(app.db.count("subscribers WHERE email LIKE 'new-%'"), 2);
    let _ = std::fs::remove_file(&csv);

    browser.goto(&page("/admin/ui/suppressions")).await;
    browser.wait_for_text("<h1>Suppressions</h1>").await;
    browser.check(&format!("{backend:?}-dashboard-suppressions")).await;

    let cookie = browser.client.get_named_cookie("tidings_session").await.expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    let cookie = format!("tidings_session={}", cookie.value());

    // Another site's page with a form that signs the author out: the
    // browser does not send the cookie with it, and nothing happens.
    let csrf = overview.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let forged: Arc<[u8]> = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><title>Prize</title></head><body><main>\
         <form method=\"post\" action=\"{base}/admin/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Claim</button></form></main></body></html>"
    )
    .into_bytes()
    .into();
    let _other = FileServer::start_at(&format!("127.0.0.1:{other_port}"), forged, "text/html", Serve::Whole).await;
    browser.goto(&format!("http://localhost:{other_port}/")).await;
    browser.press("Claim").await;
    browser.wait_for_text("Sign in").await;
    let still = app.client.get(app.url("/admin")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(still.status(), 200, "the cross-site post did not sign the author out");

    // Signing out ends the session on the server.
    browser.goto(&page("/admin")).await;
    browser.wait_for_text("<h1>Overview</h1>").await;
    browser.press("Sign out").await;
    browser.wait_for_text("Sign in").await;
    let after = app.client.get(app.url("/admin")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(after.status(), 303, "the old session cookie no longer works");
    browser.close().await;

    // JavaScript off: the same pages, right as loaded.
    let Some(no_js) = Browser::start(false).await else { return };
    no_js.goto(&page("/admin/login")).await;
    no_js.fill("#email", "doctor@example.com").await;
    no_js.fill("#password", PASSWORD).await;
    no_js.press("Sign in").await;
    no_js.wait_for_text("<h1>Overview</h1>").await;
    no_js.goto(&digest_url).await;
    let shown = no_js.wait_for_text("data-field=\"state\">sent<").await;
    assert!(shown.contains("data-field=\"sent\">12<"));
    no_js.close().await;
}

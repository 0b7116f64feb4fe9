//! The reader's side over HTTP: privacy page, stylesheet and HEAD, API keys,
//! the preference center, manage by email, welcome emails, the public
//! archive and the embeddable form. (The same pages in a real browser are
//! in `browser.rs`.)

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Backend, Received, TestApp, tidings_cli, wait_until};
use serde_json::json;

on_both_backends!(
    pages_answer_head_and_share_one_stylesheet,
    api_keys_sign_up_without_a_form_token,
    preference_center_joins_leaves_and_renames,
    welcome_email_goes_once_per_reader_and_list,
    manage_by_email_mails_only_known_readers,
    archive_shows_sent_digests_and_nothing_personal,
    embed_snippet_posts_here_and_works_without_javascript,
);

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = tidings_cli(&app.db, app.smtp.port);
    cmd.args(args);
    run(cmd).await
}

async fn text(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// The reader's preference link from an email, on this app.
fn preferences_link(app: &TestApp, mail: &Received) -> String {
    app.local(&mail.link("http://tidings.test/preferences/"))
}

async fn pages_answer_head_and_share_one_stylesheet(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/", "/privacy", "/manage", "/archive", "/archive/orthopedic", "/health", "/style.css", "/embed"] {
        let res = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
        assert!(res.headers().contains_key("content-type"), "HEAD {path}");
        assert!(res.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
    assert_eq!(app.client.head(app.url("/nothing-here")).send().await.unwrap().status(), 404);

    let css = app.get("/style.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let etag = css.headers()["etag"].to_str().unwrap().to_owned();
    assert!(css.text().await.unwrap().contains(":focus-visible"));
    let again = app.client.get(app.url("/style.css")).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);

    for path in ["/", "/privacy", "/manage", "/archive"] {
        let res = app.get(path).await;
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let (status, body) = text(res).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(r#"<html lang="en">"#) && body.contains(r#"href="/style.css""#), "{path}");
        assert!(!body.contains("<style"), "{path}: no inline style");
        assert!(csp.contains("style-src 'self'"), "{csp}");
    }
    // The line under the form says what is really kept, and links the page.
    let (_, form) = text(app.get("/").await).await;
    assert!(form.contains("IP address") && form.contains(r#"href="/privacy""#), "{form}");
    let (_, privacy) = text(app.get("/privacy").await).await;
    for kept in ["email address", "IP address", "browser", "erase", "/manage"] {
        assert!(privacy.contains(kept), "privacy page names {kept}");
    }
}

async fn api_keys_sign_up_without_a_form_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.form_min_fill_ms = 2_000;
        s.api_key_signups_per_minute = 3;
    })
    .await;
    let created = cli(&app, &["api-keys", "create", "--name", "blog-backend"]).await;
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("tk_"), "{key}");
    assert_eq!(app.db.count(&format!("api_keys WHERE key_hash = '{key}'")), 0, "only a hash is kept");
    let again = cli(&app, &["api-keys", "create", "--name", "blog-backend"]).await;
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let listed = String::from_utf8(cli(&app, &["api-keys", "list"]).await.stdout).unwrap();
    assert!(listed.contains("blog-backend") && listed.contains("live") && !listed.contains(&key), "{listed}");

    let signup = |email: &str, bearer: Option<&str>| {
        let mut req =
            app.client.post(app.url("/subscriptions")).json(&json!({ "email": email, "lists": ["orthopedic"] }));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    // Without a key, the core contract still needs a token, and says so.
    let res = signup("nokey@example.com", None).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["field"], "form_token");

    let res = signup("keyed@example.com", Some(&key)).await.unwrap();
    assert_eq!(res.status(), 202);
    app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(app.smtp.to("keyed@example.com").len(), 1);
    // The blocklist still holds for keyed signups: the usual answer, nothing kept.
    assert_eq!(signup("x@mailinator.com", Some(&key)).await.unwrap().status(), 202);
    assert_eq!(app.db.count("subscribers WHERE email = 'x@mailinator.com'"), 0);

    let unknown = format!("tk_{}", "A".repeat(43));
    for bad in ["tk_not-a-key", unknown.as_str(), "Basic abc"] {
        let res = signup("bad@example.com", Some(bad)).await.unwrap();
        assert_eq!(res.status(), 401, "{bad}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["field"], "Authorization");
        assert!(body["error"].as_str().unwrap().contains("tidings api-keys create"), "{body}");
    }
    assert_eq!(app.db.count("subscribers WHERE email = 'bad@example.com'"), 0);

    // Three signups a minute for this key: the fourth waits.
    assert_eq!(signup("third@example.com", Some(&key)).await.unwrap().status(), 202);
    let limited = signup("fourth@example.com", Some(&key)).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    let revoked = cli(&app, &["api-keys", "revoke", "blog-backend"]).await;
    assert!(revoked.status.success());
    assert!(!cli(&app, &["api-keys", "revoke", "blog-backend"]).await.status.success());
    // A running server learns of the revocation within 10 seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = signup("late@example.com", Some(&key)).await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "revoked key still accepted: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn preference_center_joins_leaves_and_renames(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let confirmation = app.subscribe_confirmed("ann@example.com", &["orthopedic"]).await;
    let page = preferences_link(&app, &confirmation);
    assert!(page.contains("/preferences/"), "{page}");

    let (status, body) = text(app.client.get(&page).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("Orthopedic") && body.contains("you receive it"), "{body}");
    assert!(body.contains("Medical Social Media") && body.contains("not subscribed"), "{body}");
    assert!(body.contains("/export") && body.contains("/erase"), "{body}");

    let change = |pairs: Vec<(&'static str, &'static str)>| app.client.post(&page).form(&pairs).send();
    let (status, body) = text(change(vec![("action", "join"), ("list", "social-media")]).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("You joined Medical Social Media"), "{body}");
    let sub = |list: &str, status: &str| {
        app.db.count(&format!(
            "subscriptions WHERE status = '{status}' AND list_id = (SELECT id FROM lists WHERE slug = '{list}') \
             AND subscriber_id = (SELECT id FROM subscribers WHERE email = 'ann@example.com')"
        ))
    };
    assert_eq!(sub("social-media", "confirmed"), 1, "no second opt-in for a confirmed reader");
    assert_eq!(app.db.count("consent_events WHERE kind = 'confirm' AND source = 'preferences'"), 1);
    let (_, body) = text(change(vec![("action", "join"), ("list", "social-media")]).await.unwrap()).await;
    assert!(body.contains("You already receive Medical Social Media"), "{body}");

    let (status, body) = text(change(vec![("action", "name"), ("name", "Ann Bone")]).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("greet you as Ann Bone") && body.contains(r#"value="Ann Bone""#), "{body}");
    assert_eq!(app.db.count("subscribers WHERE name = 'Ann Bone'"), 1);
    assert_eq!(app.db.count("consent_events WHERE kind = 'name'"), 2, "one record per subscription");
    let (status, body) = text(change(vec![("action", "name"), ("name", "Eve\u{202e}")]).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body.contains(r#"class="error""#), "{body}");
    assert_eq!(app.db.count("subscribers WHERE name = 'Ann Bone'"), 1, "a refused change keeps the data");

    let (status, body) = text(change(vec![("action", "leave"), ("list", "orthopedic")]).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("You left Orthopedic") && body.contains("you left it"), "{body}");
    assert_eq!((sub("orthopedic", "unsubscribed"), sub("social-media", "confirmed")), (1, 1));
    let (_, body) = text(change(vec![("action", "leave_all")]).await.unwrap()).await;
    assert!(body.contains("You left every newsletter"), "{body}");
    assert_eq!(sub("social-media", "unsubscribed"), 1);
    assert_eq!(app.db.count("consent_events WHERE kind = 'unsubscribe' AND source = 'preferences'"), 2);
    // Rejoining from the page needs no new opt-in either.
    change(vec![("action", "join"), ("list", "orthopedic")]).await.unwrap();
    assert_eq!(sub("orthopedic", "confirmed"), 1);

    for (pairs, field) in [(vec![("action", "join"), ("list", "nope")], "nope"), (vec![("action", "dance")], "dance")] {
        let (status, body) = text(change(pairs).await.unwrap()).await;
        assert_eq!(status, 400);
        assert!(body.contains(field), "{body}");
    }
    let forged = format!("{}x", page);
    let (status, body) = text(app.client.get(&forged).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body.contains("/manage"), "{body}");

    // A reader who never confirmed must confirm before joining more.
    assert_eq!(app.signup("pat@example.com", &["orthopedic"]).await.status(), 202);
    let mail = wait_until(Duration::from_secs(10), || app.smtp.to("pat@example.com").first().cloned()).await;
    let pending_page = preferences_link(&app, &mail);
    let res = app.client.post(&pending_page).form(&[("action", "join"), ("list", "social-media")]).send().await;
    let (status, body) = text(res.unwrap()).await;
    assert_eq!(status, 409);
    assert!(body.contains("Confirm your address first"), "{body}");
    app.db.assert_tallies_match();
}

async fn welcome_email_goes_once_per_reader_and_list(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.lists.iter_mut().filter(|l| l.slug.as_str() == "orthopedic").for_each(|l| l.welcome = true);
    })
    .await;
    app.add_post("https://blog.example/knees", "Knees at forty", &["orthopedic"]).await;
    app.subscribe_confirmed("wes@example.com", &["orthopedic", "social-media"]).await;
    let welcome = wait_until(Duration::from_secs(10), || {
        app.smtp.to("wes@example.com").into_iter().find(|m| m.header("Subject").is_some_and(|s| s.contains("Welcome")))
    })
    .await;
    assert_eq!(welcome.header("Subject").unwrap(), "Welcome to Orthopedic");
    assert!(welcome.text().contains("Knees at forty"), "{}", welcome.text());
    assert!(welcome.header("List-Unsubscribe").unwrap().contains("/unsubscribe/"));
    let page = preferences_link(&app, &welcome);
    assert_eq!(app.db.count("outbox WHERE kind = 'welcome'"), 1, "social-media sends no welcome");

    // Leave and come back: still one welcome.
    app.client.post(&page).form(&[("action", "leave"), ("list", "orthopedic")]).send().await.unwrap();
    app.client.post(&page).form(&[("action", "join"), ("list", "orthopedic")]).send().await.unwrap();
    assert_eq!(app.db.count("outbox WHERE kind = 'welcome'"), 1);
    // A manage link, queued after the rejoin, arrives: the welcome would have come first.
    app.post_form("/manage", &[("email", "wes@example.com")]).await;
    wait_until(Duration::from_secs(10), || {
        app.smtp
            .to("wes@example.com")
            .iter()
            .any(|m| m.header("Subject").is_some_and(|s| s.contains("preferences")))
            .then_some(())
    })
    .await;
    let welcomes =
        app.smtp.to("wes@example.com").iter().filter(|m| m.header("Subject").unwrap().contains("Welcome")).count();
    assert_eq!(welcomes, 1);
    app.db.assert_tallies_match();
}

async fn manage_by_email_mails_only_known_readers(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.confirmations_per_day = 2;
        s.manage_rate_per_minute = 6;
    })
    .await;
    app.subscribe_confirmed("kim@example.com", &["orthopedic"]).await;
    assert_eq!(app.signup("unconfirmed@example.com", &["orthopedic"]).await.status(), 202);
    let (status, page) = text(app.get("/manage").await).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<label for="email">"#), "{page}");

    let (status, known) = text(app.post_form("/manage", &[("email", "kim@example.com")]).await).await;
    assert_eq!(status, 200);
    for address in ["nobody@example.com", "unconfirmed@example.com"] {
        let (status, unknown) = text(app.post_form("/manage", &[("email", address)]).await).await;
        assert_eq!((status, &unknown), (200, &known), "the answer tells nothing about {address}");
    }
    let mail = wait_until(Duration::from_secs(10), || {
        app.smtp.to("kim@example.com").into_iter().find(|m| m.header("Subject").unwrap().contains("preferences"))
    })
    .await;
    assert!(mail.text().contains("Orthopedic"), "{}", mail.text());
    let (status, body) = text(app.client.get(preferences_link(&app, &mail)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("you receive it"), "{body}");
    assert_eq!(app.db.count("outbox WHERE kind = 'manage'"), 1, "only the known, confirmed reader is mailed");

    // Two links a day per address; the answer stays the same.
    app.post_form("/manage", &[("email", "kim@example.com")]).await;
    let (status, capped) = text(app.post_form("/manage", &[("email", "kim@example.com")]).await).await;
    assert_eq!((status, &capped), (200, &known));
    assert_eq!(app.db.count("outbox WHERE kind = 'manage'"), 2);

    let (status, body) = text(app.post_form("/manage", &[("email", "not an address")]).await).await;
    assert_eq!(status, 400);
    assert!(body.contains(r#"aria-invalid="true""#), "{body}");
    // Per IP: six a minute.
    let res = app.post_form("/manage", &[("email", "kim@example.com")]).await;
    assert_eq!(res.status(), 429);
}

async fn archive_shows_sent_digests_and_nothing_personal(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.lists.iter_mut().filter(|l| l.slug.as_str() == "social-media").for_each(|l| l.archive = false);
    })
    .await;
    app.subscribe_confirmed("zoe@example.com", &["orthopedic", "social-media"]).await;
    app.client
        .post(preferences_link(&app, &app.smtp.to("zoe@example.com")[0]))
        .form(&[("action", "name"), ("name", "Zoë Reader")])
        .send()
        .await
        .unwrap();
    let (_, index) = text(app.get("/archive").await).await;
    assert!(index.contains("/archive/orthopedic") && !index.contains("/archive/social-media"), "{index}");
    let (_, empty) = text(app.get("/archive/orthopedic").await).await;
    assert!(empty.contains("Nothing has been sent"), "{empty}");

    app.add_post("https://blog.example/hips", "Hips & <stairs>", &["orthopedic", "social-media"]).await;
    let ortho = app.send_digest("orthopedic").await;
    let social = app.send_digest("social-media").await;
    let (ortho_id, social_id) = (ortho["id"].as_i64().unwrap(), social["id"].as_i64().unwrap());
    assert_eq!(app.wait_digest(ortho_id).await["status"], "sent");
    assert_eq!(app.wait_digest(social_id).await["status"], "sent");

    let mails = app.smtp.to("zoe@example.com");
    let digest_mail = mails
        .iter()
        .find(|m| m.header("List-Id").unwrap_or_default().contains("orthopedic") && m.text().contains("Hips"))
        .unwrap();
    let view = digest_mail.link("http://tidings.test/archive/");
    assert_eq!(view, format!("http://tidings.test/archive/orthopedic/{ortho_id}"));
    assert!(digest_mail.html().contains(&format!("/archive/orthopedic/{ortho_id}")));
    assert!(digest_mail.link("http://tidings.test/preferences/").contains("/preferences/"));
    assert!(digest_mail.header("List-Unsubscribe").unwrap().contains("/unsubscribe/"), "one-click stays");
    let social_mail = mails
        .iter()
        .find(|m| m.header("List-Id").unwrap_or_default().contains("social-media") && m.text().contains("Hips"))
        .unwrap();
    assert!(!social_mail.text().contains("/archive/"), "no archive, no link");

    let (status, list) = text(app.get("/archive/orthopedic").await).await;
    assert_eq!(status, 200);
    assert!(list.contains(&format!("/archive/orthopedic/{ortho_id}")), "{list}");
    let (status, page) = text(app.get(&format!("/archive/orthopedic/{ortho_id}")).await).await;
    assert_eq!(status, 200);
    assert!(page.contains("Hips &amp; &lt;stairs&gt;") && page.contains("https://blog.example/hips"), "{page}");
    for personal in ["zoe@example.com", "Zoë", "/unsubscribe/", "/preferences/"] {
        assert!(!page.contains(personal), "the archive page holds {personal}");
    }
    for gone in [
        format!("/archive/social-media/{social_id}"),
        "/archive/social-media".to_owned(),
        "/archive/social-media/feed.xml".to_owned(),
        format!("/archive/orthopedic/{social_id}"),
        "/archive/orthopedic/abc".to_owned(),
        "/archive/nope".to_owned(),
    ] {
        assert_eq!(app.get(&gone).await.status(), 404, "{gone}");
    }

    let feed = app.get("/archive/orthopedic/feed.xml").await;
    assert_eq!(feed.headers()["content-type"], "application/atom+xml; charset=utf-8");
    let parsed = feed_rs::parser::parse(&feed.bytes().await.unwrap()[..]).unwrap();
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].links[0].href, format!("http://tidings.test/archive/orthopedic/{ortho_id}"));
    assert!(parsed.entries[0].title.as_ref().unwrap().content.contains("Hips"));
}

async fn embed_snippet_posts_here_and_works_without_javascript(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.form_min_fill_ms = 2_000;
        s.allowed_origins = vec!["http://blog.test".into()];
        s.site_url = Some(url::Url::parse("http://blog.test/").unwrap());
    })
    .await;
    let (status, snippet) = text(app.get("/embed?lists=orthopedic").await).await;
    assert_eq!(status, 200);
    assert!(snippet.contains(r#"action="http://tidings.test/subscriptions""#), "{snippet}");
    assert!(snippet.contains(r#"name="lists" value="orthopedic""#) && !snippet.contains("social-media"), "{snippet}");
    assert!(snippet.contains(".tidings-embed") && snippet.contains("/subscriptions/form-token"), "{snippet}");
    let (_, both) = text(app.get("/embed").await).await;
    assert!(both.contains(r#"value="social-media""#) && both.contains(r#"value="orthopedic""#));
    let res = app.get("/embed?lists=nope").await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["field"], "lists");

    // As the snippet posts with JavaScript off: from the blog, no token.
    let post = |origin: &'static str| {
        app.client
            .post(app.url("/subscriptions"))
            .header("Origin", origin)
            .form(&[("email", "emb@example.com"), ("lists", "orthopedic"), ("form_token", "")])
            .send()
    };
    let (status, step) = text(post("http://blog.test").await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(step.contains("One more step"), "{step}");
    let token = step.split(r#"name="form_token" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let res = app
        .post_form("/subscriptions", &[("email", "emb@example.com"), ("lists", "orthopedic"), ("form_token", &token)])
        .await;
    let (status, done) = text(res).await;
    assert_eq!(status, 200);
    assert!(done.contains("Check your inbox") && done.contains(r#"href="http://blog.test/""#), "{done}");
    app.smtp.wait_for(1, Duration::from_secs(10)).await;

    let (status, refused) = text(post("http://elsewhere.test").await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(refused.contains("Sign up on our own page"), "{refused}");
}

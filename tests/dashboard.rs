//! The author's dashboard over HTTP: authors made by the CLI, signing in
//! and out, the session cookie, CSRF, the failed-login limits, and the
//! overview's counts and growth. (`tests/dashboard_browser.rs` drives the
//! same pages in a real browser.)

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use common::authors::{PASSWORD, add_author};
use common::{ADMIN_TOKEN, Backend, TestApp, tidings_cli};

on_both_backends!(
    authors_sign_in_and_out,
    sign_ins_are_limited_per_ip,
    the_overview_counts_and_charts_each_list,
    tallies_count_the_readers_of_before_the_upgrade_and_every_change_after,
    the_author_adds_a_post_and_sends_pauses_and_resumes_digests,
    the_author_finds_a_reader_and_acts_for_them,
    the_author_imports_a_csv_after_a_dry_run
);

/// The sign-in form's token and the cookie that goes with it.
async fn login_form(app: &TestApp) -> (String, String) {
    let res = app.get("/admin/login").await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = res.text().await.unwrap();
    let token = page.split("name=\"login_token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (token, cookie)
}

/// Posts the sign-in form; the answer as it came.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let (token, cookie) = login_form(app).await;
    app.client
        .post(app.url("/admin/login"))
        .header(COOKIE, cookie)
        .form(&[("email", email), ("password", password), ("login_token", &token)])
        .send()
        .await
        .unwrap()
}

/// The session cookie (`name=value`) of a successful sign-in.
pub async fn session(app: &TestApp, email: &str) -> String {
    let res = sign_in(app, email, PASSWORD).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let set = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("tidings_session="))
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header(COOKIE, cookie).send().await.unwrap()
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
}

async fn authors_sign_in_and_out(backend: Backend) {
    // The per-IP limit has its own test below: this one signs in often.
    let app = TestApp::spawn_with(backend, |s| s.login_rate_per_minute = 1_000).await;
    let out = add_author(&app, "Doctor@Example.com", PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = add_author(&app, "doctor@example.com", PASSWORD);
    assert!(!again.status.success(), "the same author twice");
    assert!(String::from_utf8_lossy(&again.stderr).contains("is an author already"));
    let short = add_author(&app, "other@example.com", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    assert_eq!(app.db.count("authors WHERE email = 'doctor@example.com' AND password_hash LIKE '$argon2id$v=19$%'"), 1);
    let listed = tidings_cli(&app.db, app.smtp.port).args(["authors", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("doctor@example.com"));

    // Without a session, the dashboard sends the author to sign in; the
    // API's token is not a web login.
    let res = app.get("/admin").await;
    assert_eq!((res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()), (303, "/admin/login"));
    let res = app.client.get(app.url("/admin")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 303);

    // A wrong password and an unknown author get the same answer.
    let wrong = sign_in(&app, "doctor@example.com", "not the passphrase").await;
    let unknown = sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!((wrong.status().as_u16(), unknown.status().as_u16()), (401, 401));
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    let message = "That address and password do not match an author.";
    assert!(wrong.contains(message) && unknown.contains(message));
    // A form posted without the cookie served with it (another site's copy).
    let res = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("email", "doctor@example.com"), ("password", PASSWORD), ("login_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Signing in: a cookie the page's scripts cannot read, and a new one
    // each time.
    let res = sign_in(&app, "DOCTOR@example.com", PASSWORD).await;
    assert_eq!((res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()), (303, "/admin"));
    let set = res.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    let session_cookie = set.iter().find(|c| c.starts_with("tidings_session=")).unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"] {
        assert!(session_cookie.contains(attribute), "{attribute} in {session_cookie}");
    }
    assert!(!session_cookie.contains("Secure"), "the test's base URL is http");
    let cookie = session_cookie.split(';').next().unwrap().to_owned();
    assert_ne!(cookie, session(&app, "doctor@example.com").await);
    assert_eq!(app.db.count("author_sessions"), 2);
    let value = cookie.trim_start_matches("tidings_session=");
    assert_eq!(app.db.count(&format!("author_sessions WHERE id_hash = '{value}'")), 0, "only a hash is kept");

    let overview = page(&app, "/admin", &cookie).await;
    assert_eq!(overview.status(), 200);
    let html = overview.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>") && html.contains("doctor@example.com"));
    let csrf = csrf_of(&html);
    // The sign-in page of a signed-in author is the dashboard.
    assert_eq!(page(&app, "/admin/login", &cookie).await.status(), 303);

    // Signing out needs the session's CSRF token and the dashboard's origin.
    let logout = |csrf: String, origin: Option<&'static str>| {
        let mut req = app.client.post(app.url("/admin/logout")).header(COOKIE, &cookie).form(&[("csrf", csrf)]);
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        req.send()
    };
    assert_eq!(logout("forged".into(), None).await.unwrap().status(), 403);
    assert_eq!(logout(csrf.clone(), Some("https://evil.example")).await.unwrap().status(), 403);
    assert_eq!(page(&app, "/admin", &cookie).await.status(), 200, "still signed in");
    let res = logout(csrf, Some("http://tidings.test")).await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()), (303, "/admin/login"));
    assert_eq!(page(&app, "/admin", &cookie).await.status(), 303, "the old cookie no longer works");

    // A new password ends every session; removing an author too.
    let other = session(&app, "doctor@example.com").await;
    let mut child = tidings_cli(&app.db, app.smtp.port)
        .args(["authors", "password", "doctor@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"another long passphrase\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(page(&app, "/admin", &other).await.status(), 303);
    assert_eq!(sign_in(&app, "doctor@example.com", PASSWORD).await.status(), 401);
    assert_eq!(sign_in(&app, "doctor@example.com", "another long passphrase").await.status(), 303);
    let removed =
        tidings_cli(&app.db, app.smtp.port).args(["authors", "remove", "doctor@example.com"]).output().unwrap();
    assert!(removed.status.success());
    assert_eq!(app.db.count("author_sessions"), 0);

    // Five failures for one address hold it back, known or not.
    for _ in 0..5 {
        assert_eq!(sign_in(&app, "guess@example.com", "wrong password!").await.status(), 401);
    }
    let held = sign_in(&app, "guess@example.com", "wrong password!").await;
    assert_eq!(held.status(), 429);
    assert!(held.headers().contains_key("retry-after"));
    assert!(held.text().await.unwrap().contains("Too many failed sign-ins"));
}

async fn sign_ins_are_limited_per_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.login_rate_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(sign_in(&app, "guess@example.com", "wrong password!").await.status(), 401);
    }
    let res = sign_in(&app, "other@example.com", "wrong password!").await;
    assert_eq!(res.status(), 429, "a fourth attempt from the address within the minute");
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(app.get("/admin/login").await.status(), 200, "the form itself is not limited");
}

async fn the_overview_counts_and_charts_each_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert!(add_author(&app, "doctor@example.com", PASSWORD).status.success());
    app.db.seed_confirmed("orthopedic", "bone-", 7);
    app.db.seed_confirmed("social-media", "social-", 3);
    app.db.execute("UPDATE subscriptions SET confirmed_at = CURRENT_TIMESTAMP");
    // Two of the orthopedic readers left today; one is suppressed.
    app.db.execute(
        "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = CURRENT_TIMESTAMP \
         WHERE subscriber_id IN (SELECT id FROM subscribers WHERE email IN ('bone-0@example.com', 'bone-1@example.com'))",
    );
    app.db.execute("UPDATE subscribers SET suppressed_at = CURRENT_TIMESTAMP WHERE email = 'bone-2@example.com'");
    app.signup("waiting@example.com", &["orthopedic"]).await;

    let cookie = session(&app, "doctor@example.com").await;
    let html = page(&app, "/admin", &cookie).await.text().await.unwrap();
    let section = html.split("id=\"list-orthopedic\"").nth(1).unwrap().split("</section>").next().unwrap();
    let count = |name: &str| {
        section.split(&format!("data-count=\"{name}\">")).nth(1).unwrap().split('<').next().unwrap().to_owned()
    };
    let db = |status: &str| {
        app.db
            .count(&format!(
                "subscriptions WHERE status = '{status}' AND list_id = (SELECT id FROM lists WHERE slug = 'orthopedic')"
            ))
            .to_string()
    };
    assert_eq!(count("confirmed"), db("confirmed"));
    assert_eq!((count("confirmed"), count("pending"), count("unsubscribed")), ("5".into(), "1".into(), "2".into()));
    assert_eq!(count("suppressed"), "1");
    // A chart and a table per window; today's row names what happened.
    assert_eq!(section.matches("<svg class=\"chart\" role=\"img\"").count(), 2);
    assert!(
        section.contains("Last 30 days: <strong>7</strong> confirmed, <strong>2</strong> unsubscribed"),
        "{section}"
    );
    assert!(section.contains("Last 90 days: <strong>7</strong> confirmed"));
    let today = chrono::Utc::now().date_naive().format("%-d %B %Y").to_string();
    assert!(section.contains(&format!("<tr><th scope=\"row\">{today}</th><td>7</td><td>2</td></tr>")), "{section}");
    assert_eq!(section.matches("<tr><th scope=\"row\">").count(), 30 + 90);
    let social = html.split("id=\"list-social-media\"").nth(1).unwrap();
    assert!(social.contains("data-count=\"confirmed\">3<"));
    app.db.assert_tallies_match();
}

async fn tallies_count_the_readers_of_before_the_upgrade_and_every_change_after(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let migration = |file: &str| {
        let dir = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        std::fs::read_to_string(format!(
            "{}/migrations/{dir}/2026-12-06-000016_list_tallies/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    // Readers stored before the tallies existed: the upgrade counts them.
    app.db.execute_script(&migration("down.sql"));
    app.db.seed_confirmed("orthopedic", "bone-", 30);
    app.db.seed_confirmed("social-media", "bone-", 10);
    app.db.execute(
        "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = '2026-11-20 08:00:00' WHERE id % 3 = 0",
    );
    app.db.execute_script(&migration("up.sql"));
    app.db.assert_tallies_match();
    let counts = app.counts().await;
    assert_eq!(counts["orthopedic"], (0, 20, 10));
    assert_eq!(counts["social-media"], (0, 7, 3));

    // Then every kind of change, many at once: signups to both lists,
    // confirmations, unsubscribes, erasure.
    let emails: Vec<String> = (0..40).map(|i| format!("new-{i}@example.com")).collect();
    let statuses = app.signups_at_once(emails, &["orthopedic", "social-media"]).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    app.subscribe_confirmed("joint@example.com", &["orthopedic", "social-media"]).await;
    app.db.execute("UPDATE subscriptions SET status = 'confirmed', confirmed_at = CURRENT_TIMESTAMP WHERE id % 5 = 1");
    app.db.execute("DELETE FROM subscribers WHERE email LIKE 'bone-1%'");
    app.db.assert_tallies_match();
    let db = |list: &str, status: &str| {
        app.db.count(&format!(
            "subscriptions WHERE status = '{status}' AND list_id = (SELECT id FROM lists WHERE slug = '{list}')"
        ))
    };
    let counts = app.counts().await;
    for list in ["orthopedic", "social-media"] {
        assert_eq!(counts[list], (db(list, "pending"), db(list, "confirmed"), db(list, "unsubscribed")), "{list}");
    }
    // PostgreSQL's appended changes are folded in by the running service.
    common::wait_until(Duration::from_secs(15), || {
        (app.db.count("list_tally_changes") + app.db.count("list_day_changes") == 0).then_some(())
    })
    .await;
    app.db.assert_tallies_match();
    assert_eq!(app.counts().await, counts);
}

/// Posts a dashboard form with the session's CSRF token (from `from`).
async fn post_form(
    app: &TestApp,
    cookie: &str,
    from: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = csrf_of(&page(app, from, cookie).await.text().await.unwrap());
    let mut pairs: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    pairs.extend_from_slice(fields);
    app.client.post(app.url(action)).header(COOKIE, cookie).form(&pairs).send().await.unwrap()
}

async fn the_author_adds_a_post_and_sends_pauses_and_resumes_digests(backend: Backend) {
    // Slow enough to pause midway: 30 readers at 10 a second.
    let app = TestApp::spawn_with(backend, |s| s.send_rate_per_second = 10.0).await;
    assert!(add_author(&app, "doctor@example.com", PASSWORD).status.success());
    app.db.seed_confirmed("orthopedic", "reader-", 30);
    let cookie = session(&app, "doctor@example.com").await;

    // A post without a title is refused, saying why, and keeps what was typed.
    let res = post_form(
        &app,
        &cookie,
        "/admin/ui/posts",
        "/admin/ui/posts",
        &[("title", " "), ("url", "https://blog.example/knees"), ("lists", "orthopedic")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("class=\"error\"") && html.contains("value=\"https://blog.example/knees\""), "{html}");
    let res = post_form(
        &app,
        &cookie,
        "/admin/ui/posts",
        "/admin/ui/posts",
        &[("title", "Knees in winter"), ("url", "https://blog.example/knees"), ("lists", "orthopedic")],
    )
    .await;
    assert_eq!((res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()), (303, "/admin/ui/posts?done=added"));
    let html = page(&app, "/admin/ui/posts?done=added", &cookie).await.text().await.unwrap();
    assert!(html.contains("The post was added.") && html.contains("Knees in winter</a>"));
    assert!(html.contains("not sent yet"));
    // Without the token, nothing is added.
    let forged = app
        .client
        .post(app.url("/admin/ui/posts"))
        .header(COOKIE, &cookie)
        .form(&[("title", "Spam"), ("url", "https://spam.example/"), ("lists", "orthopedic")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(forged.text().await.unwrap().contains("This form cannot be used"), "the page says what to do");
    assert_eq!(app.db.count("posts WHERE title = 'Spam'"), 0);

    // The confirmation step names the count and the subject; the preview is
    // the email, framable by the dashboard only.
    let html = page(&app, "/admin/ui/digests/send?list=orthopedic", &cookie).await.text().await.unwrap();
    assert!(html.contains("<strong data-field=\"recipients\">30</strong>"), "{html}");
    assert!(html.contains("value=\"Orthopedic: Knees in winter\""), "{html}");
    assert!(html.contains("<iframe class=\"preview\"") && html.contains("sandbox"));
    let preview = page(&app, "/admin/ui/digests/preview?list=orthopedic", &cookie).await;
    assert_eq!(preview.headers()["x-frame-options"], "SAMEORIGIN");
    assert!(preview.text().await.unwrap().contains("Knees in winter"));
    assert_eq!(app.get("/admin/ui/digests/preview?list=orthopedic").await.status(), 303, "not without a session");

    // A test copy goes to the author alone; a refusal is shown, not lost.
    let res = post_form(&app, &cookie, "/admin/ui/digests", "/admin/ui/digests/test", &[("list", "orthopedic")]).await;
    assert_eq!(res.headers()[LOCATION].to_str().unwrap(), "/admin/ui/digests/send?list=orthopedic&tested=1");
    let copy = common::wait_until(Duration::from_secs(5), || app.smtp.to("doctor@example.com").pop()).await;
    assert!(copy.data.contains("Subject: [Test] Orthopedic: Knees in winter"), "{}", copy.data);
    assert_eq!(app.db.count("digests"), 0, "a test is no digest");
    let html = page(&app, "/admin/ui/digests/send?list=orthopedic&tested=1", &cookie).await.text().await.unwrap();
    assert!(html.contains("A test copy was sent to doctor@example.com."));
    app.smtp.reject_recipient("doctor@example.com");
    let res = post_form(&app, &cookie, "/admin/ui/digests", "/admin/ui/digests/test", &[("list", "orthopedic")]).await;
    assert_eq!(res.status(), 502);
    assert!(res.text().await.unwrap().contains("The mail server said:"));

    // Send; the same form twice sends once.
    let key = html.split("name=\"key\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let fields = [("list", "orthopedic"), ("subject", "Knees in winter"), ("key", key.as_str())];
    let res = post_form(&app, &cookie, "/admin/ui/digests", "/admin/ui/digests/send", &fields).await;
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let again = post_form(&app, &cookie, "/admin/ui/digests", "/admin/ui/digests/send", &fields).await;
    assert_eq!(again.headers()[LOCATION].to_str().unwrap(), location);
    assert_eq!(app.db.count("digests"), 1);
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();

    // Pause midway, then resume: everyone gets it once.
    let res = post_form(&app, &cookie, &location, &format!("{location}/pause"), &[]).await;
    assert_eq!(res.status(), 303);
    let paused = app.wait_digest_status(id, "paused", Duration::from_secs(5)).await;
    assert!(paused["pending"].as_i64().unwrap() > 0, "{paused}");
    let html = page(&app, &location, &cookie).await.text().await.unwrap();
    assert!(html.contains("data-field=\"state\">paused<") && html.contains(">Resume</button>"), "{html}");
    let json: serde_json::Value = page(&app, &format!("{location}/progress"), &cookie).await.json().await.unwrap();
    assert_eq!((json["state"].as_str(), json["recipients"].as_i64()), (Some("paused"), Some(30)));
    assert_eq!(post_form(&app, &cookie, &location, &format!("{location}/resume"), &[]).await.status(), 303);
    let done = app.wait_digest_status(id, "sent", Duration::from_secs(20)).await;
    assert_eq!(done["sent"], 30, "{done}");
    for i in 0..30 {
        assert_eq!(app.smtp.to(&format!("reader-{i}@example.com")).len(), 1);
    }
    let html = page(&app, &location, &cookie).await.text().await.unwrap();
    assert!(html.contains("data-field=\"sent\">30<") && html.contains("data-field=\"state\">sent<"));
    // A sent digest cannot be cancelled: a page that says so.
    let res = post_form(&app, &cookie, &location, &format!("{location}/cancel"), &[]).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("cannot be cancelled"));
    let list = page(&app, "/admin/ui/digests", &cookie).await.text().await.unwrap();
    assert!(list.contains(&format!("href=\"/admin/ui/digests/{id}\">Knees in winter</a>")), "{list}");
}

async fn the_author_finds_a_reader_and_acts_for_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert!(add_author(&app, "doctor@example.com", PASSWORD).status.success());
    app.db.seed_confirmed("orthopedic", "knee-", 12);
    app.db.seed_confirmed("social-media", "knee-", 2);
    app.db.seed_confirmed("orthopedic", "50%off-", 1);
    let cookie = session(&app, "doctor@example.com").await;

    // Substring, any case; `%` is a character, not a wildcard.
    let html = page(&app, "/admin/ui/readers?q=NEE-1", &cookie).await.text().await.unwrap();
    for hit in ["knee-1@example.com", "knee-10@example.com", "knee-11@example.com"] {
        assert!(html.contains(&format!(">{hit}</a>")), "{hit} in {html}");
    }
    assert!(!html.contains(">knee-2@example.com</a>"));
    let html = page(&app, "/admin/ui/readers?q=0%25", &cookie).await.text().await.unwrap();
    assert!(html.contains(">50%off-0@example.com</a>") && !html.contains(">knee-0@example.com</a>"), "{html}");
    let html = page(&app, "/admin/ui/readers?q=nobody", &cookie).await.text().await.unwrap();
    assert!(html.contains("No reader's address contains"));

    // The reader's page: lists, consent history, deliveries.
    let id = app.db.count("subscribers WHERE id <= (SELECT id FROM subscribers WHERE email = 'knee-1@example.com')");
    let html = page(&app, &format!("/admin/ui/readers/{id}"), &cookie).await.text().await.unwrap();
    assert!(html.contains("<h1>knee-1@example.com</h1>"), "{html}");
    assert!(html.contains("Orthopedic: confirmed") && html.contains("Medical Social Media: confirmed"), "{html}");

    // Taking them off one list records who did it.
    let res = post_form(
        &app,
        &cookie,
        &format!("/admin/ui/readers/{id}"),
        &format!("/admin/ui/readers/{id}/leave"),
        &[("list", "orthopedic")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let status = |list: &str| {
        app.db.count(&format!(
            "subscriptions WHERE subscriber_id = {id} AND status = 'unsubscribed' AND list_id = (SELECT id FROM lists WHERE slug = '{list}')"
        ))
    };
    assert_eq!((status("orthopedic"), status("social-media")), (1, 0));
    assert_eq!(app.db.count(&format!("consent_events WHERE kind = 'unsubscribe' AND source = 'dashboard' AND subscription_id IN (SELECT id FROM subscriptions WHERE subscriber_id = {id})")), 1);
    let html = page(&app, &format!("/admin/ui/readers/{id}?done=left"), &cookie).await.text().await.unwrap();
    assert!(html.contains("Orthopedic: unsubscribed") && html.contains("The reader was taken off the list."));

    // A suppressed reader: shown on both pages, lifted from either.
    app.admin_post(
        "/admin/suppressions",
        &serde_json::json!({ "email": "knee-2@example.com", "note": "asked by phone" }),
    )
    .await;
    let html = page(&app, "/admin/ui/suppressions", &cookie).await.text().await.unwrap();
    assert!(
        html.contains("knee-2@example.com") && html.contains("asked by phone") && html.contains(">manual<"),
        "{html}"
    );
    let res = post_form(
        &app,
        &cookie,
        "/admin/ui/suppressions",
        "/admin/ui/suppressions/lift",
        &[("email", "knee-2@example.com")],
    )
    .await;
    assert_eq!(
        (res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()),
        (303, "/admin/ui/suppressions?done=lifted")
    );
    assert_eq!(app.db.count("suppressions"), 0);
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 0);

    // Erasing asks first, then leaves nothing of the reader.
    let erase = format!("/admin/ui/readers/{id}/erase");
    let res = post_form(&app, &cookie, &format!("/admin/ui/readers/{id}"), &erase, &[]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.db.count("subscribers WHERE email = 'knee-1@example.com'"), 1);
    let res = post_form(&app, &cookie, &format!("/admin/ui/readers/{id}"), &erase, &[("confirm", "yes")]).await;
    assert_eq!(
        (res.status().as_u16(), res.headers()[LOCATION].to_str().unwrap()),
        (303, "/admin/ui/readers?done=erased")
    );
    assert_eq!(app.db.count("subscribers WHERE email = 'knee-1@example.com'"), 0);
    assert_eq!(page(&app, &format!("/admin/ui/readers/{id}"), &cookie).await.status(), 404);
    // Nor does the search index keep their address.
    let html = page(&app, "/admin/ui/readers?q=knee-1@", &cookie).await.text().await.unwrap();
    assert!(html.contains("No reader's address contains") && !html.contains("knee-1@example.com</a>"), "{html}");
    match backend {
        Backend::Sqlite => assert_eq!(app.db.count("subscriber_search WHERE email LIKE '%knee-1@%'"), 0),
        Backend::Postgres => {}
    }

    // The export, for a signed-in author only.
    let res = page(&app, "/admin/ui/readers/export.csv?list=orthopedic", &cookie).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    assert!(csv.contains("knee-5@example.com") && !csv.contains("knee-1@example.com"), "{csv}");
    assert_eq!(app.get("/admin/ui/readers/export.csv").await.status(), 303);
    app.db.assert_tallies_match();
}

/// A `multipart/form-data` body of text fields and one CSV file.
fn multipart(fields: &[(&str, &str)], csv: &str) -> (String, String) {
    let boundary = "tidings-test-boundary-7f3a";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"readers.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    ));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn the_author_imports_a_csv_after_a_dry_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert!(add_author(&app, "doctor@example.com", PASSWORD).status.success());
    let cookie = session(&app, "doctor@example.com").await;
    let csrf = csrf_of(&page(&app, "/admin/ui/readers", &cookie).await.text().await.unwrap());
    let csv = "email,name,attributes\nnew-1@example.com,Ann,{}\nnew-2@example.com,Bob,{}\nnot an address,Carl,{}\n";
    let upload = |fields: Vec<(&'static str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (content_type, body) = multipart(&fields, csv);
        app.client
            .post(app.url("/admin/ui/readers/import"))
            .header(COOKIE, &cookie)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let dry = upload(vec![
        ("csrf", csrf.clone()),
        ("list", "orthopedic".into()),
        ("format", "auto".into()),
        ("dry_run", "yes".into()),
    ])
    .await
    .unwrap();
    let status = dry.status();
    let html = dry.text().await.unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Dry run: nothing was written.") && html.contains("2 new") && html.contains("1 invalid"),
        "{html}"
    );
    assert!(html.contains("<td>4</td>"), "the invalid row's line is named: {html}");
    assert_eq!(app.db.count("subscribers"), 0);

    let real =
        upload(vec![("csrf", csrf.clone()), ("list", "orthopedic".into()), ("format", "auto".into())]).await.unwrap();
    let html = real.text().await.unwrap();
    assert!(html.contains("<strong>Imported.</strong>") && html.contains("2 new"), "{html}");
    assert_eq!(app.db.count("subscribers WHERE email IN ('new-1@example.com', 'new-2@example.com')"), 2);

    let forged = upload(vec![("csrf", "forged".into()), ("list", "orthopedic".into())]).await.unwrap();
    assert_eq!(forged.status(), 403);
    let unknown = upload(vec![("csrf", csrf), ("list", "nonsense".into())]).await.unwrap();
    assert_eq!(unknown.status(), 400);
    assert!(unknown.text().await.unwrap().contains("there is no list called"));
    app.db.assert_tallies_match();
}

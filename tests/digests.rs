//! Posts, digests and the dispatcher, end to end over HTTP and SMTP.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http::{FileServer, Serve};
use common::{Backend, Reply, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    digest_reaches_every_confirmed_reader_exactly_once,
    lists_are_isolated_and_only_confirmed_readers_get_mail,
    digest_email_has_headers_parts_and_escaping,
    one_click_unsubscribe_from_the_digest_header,
    no_new_posts_is_409_and_triggers_are_idempotent,
    temporary_failures_are_retried_and_permanent_ones_suppress,
    posts_api_validates_and_upserts_by_url,
    feed_pull_is_idempotent,
    a_first_feed_pull_does_not_mail_the_blogs_history,
    feed_fetch_refuses_private_hosts_unless_allowed,
    feed_fetch_gives_up_on_slow_and_oversized_feeds,
    preview_shows_what_a_reader_would_get,
    two_senders_share_a_digest_without_duplicates,
    a_message_sent_twice_is_counted_once,
);

fn per_recipient(app: &TestApp) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in app.smtp.received() {
        for to in m.to {
            *seen.entry(to).or_insert(0) += 1;
        }
    }
    seen
}

async fn digest_reaches_every_confirmed_reader_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let readers = app.db.seed_confirmed("orthopedic", "reader", 300);
    app.add_post("https://blog.example.org/a", "First", &["orthopedic"]).await;
    app.add_post("https://blog.example.org/b", "Second", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["status"], "sent", "{status}");
    assert_eq!(status["recipients"], 300);
    assert_eq!(status["sent"], 300);
    assert_eq!(status["pending"], 0);
    assert!(status["finished_at"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = per_recipient(&app);
    assert_eq!(seen.len(), 300);
    for r in &readers {
        assert_eq!(seen.get(r), Some(&1), "{r}");
    }
    let list: Vec<Value> = app.admin_get("/admin/digests").await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], status["id"]);
}

async fn lists_are_isolated_and_only_confirmed_readers_get_mail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.subscribe_confirmed("ortho@example.com", &["orthopedic"]).await;
    app.subscribe_confirmed("social@example.com", &["social-media"]).await;
    app.subscribe_confirmed("both@example.com", &["orthopedic", "social-media"]).await;
    let gone = app.subscribe_confirmed("gone@example.com", &["orthopedic"]).await;
    let unsubscribe = app.local(gone.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']));
    assert_eq!(app.client.post(&unsubscribe).send().await.unwrap().status(), 200);
    assert_eq!(app.signup("pending@example.com", &["orthopedic"]).await.status(), 202);
    app.smtp.wait_for(5, Duration::from_secs(10)).await;
    let before = app.smtp.received().len();

    app.add_post("https://blog.example.org/knee", "Knee news", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["recipients"], 2, "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let digests: Vec<_> = app.smtp.received().into_iter().skip(before).collect();
    let mut to: Vec<_> = digests.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["both@example.com", "ortho@example.com"]);
}

async fn digest_email_has_headers_parts_and_escaping(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let confirmation = app.subscribe_confirmed("zoe@example.com", &["orthopedic"]).await;
    // The name asked for at signup is applied when the reader confirms.
    let res = app
        .post_json("/subscriptions", &json!({"email": "named@example.com", "name": "Zoë <Z>", "lists": ["orthopedic"]}))
        .await;
    assert_eq!(res.status(), 202);
    let mail = common::wait_until(Duration::from_secs(10), || app.smtp.to("named@example.com").pop()).await;
    let token = mail.link("http://tidings.test/subscriptions/confirm?token=").rsplit('=').next().unwrap().to_owned();
    app.post_form("/subscriptions/confirm", &[("token", &token)]).await;

    let body = json!({
        "title": "Knee <b>pain</b> & you",
        "url": "https://blog.example.org/knee?a=1&b=2",
        "summary": "<p>Hello <script>alert(1)</script><b>world</b> &amp; friends</p>",
        "published_at": "2026-11-24T10:00:00+01:00",
        "lists": ["orthopedic"],
    });
    assert_eq!(app.admin_post("/admin/posts", &body).await.status(), 201);
    let before = app.smtp.received().len();
    app.send_digest("orthopedic").await;
    let got = app.smtp.wait_for(before + 2, Duration::from_secs(10)).await;
    let digest = got.iter().skip(before).find(|m| m.to == ["zoe@example.com"]).unwrap();

    assert!(digest.header("Content-Type").unwrap().starts_with("multipart/alternative"));
    assert!(
        digest.header("Subject").unwrap().contains("Orthopedic: Knee <b>pain</b> & you"),
        "{:?}",
        digest.header("Subject")
    );
    assert_eq!(digest.header("List-Id").unwrap(), "Orthopedic <orthopedic.tidings.test>");
    assert_eq!(digest.header("List-Unsubscribe-Post").unwrap(), "List-Unsubscribe=One-Click");
    let unsubscribe = digest.header("List-Unsubscribe").unwrap();
    // One reader, one list: the same stable link in every email.
    assert_eq!(unsubscribe, confirmation.header("List-Unsubscribe").unwrap());
    assert!(unsubscribe.starts_with("<http://tidings.test/unsubscribe/"));
    let message_id = digest.header("Message-ID").unwrap();
    assert!(message_id.ends_with("@tidings.test>"));
    assert!(digest.header("Date").is_some());

    let html = digest.html();
    assert!(html.contains("Knee &lt;b&gt;pain&lt;/b&gt; &amp; you"), "{html}");
    assert!(html.contains("Hello world &amp; friends"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains(&format!("href=\"{}\"", "https://blog.example.org/knee?a&#x3D;1&amp;b&#x3D;2")), "{html}");
    assert!(html.contains("Unsubscribe</a>"));
    let text = digest.text();
    assert!(text.contains("Knee <b>pain</b> & you"), "{text}");
    assert!(text.contains("https://blog.example.org/knee?a=1&b=2"), "{text}");
    assert!(text.contains("Hello world & friends"), "{text}");
    assert!(
        text.contains(unsubscribe.trim_matches(['<', '>'])),
        "the body carries the reader's own link:\n{text}\n{}",
        digest.data
    );
    assert!(text.contains("Hello,"), "no name known: a generic greeting");

    let named = got.iter().skip(before).find(|m| m.to == ["named@example.com"]).unwrap();
    assert!(named.text().contains("Hello Zoë <Z>,"), "{}", named.text());
    assert!(named.html().contains("Hello Zoë &lt;Z&gt;,"), "{}", named.html());
    // Message-IDs are unique.
    assert_ne!(named.header("Message-ID"), digest.header("Message-ID"));
}

async fn one_click_unsubscribe_from_the_digest_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.subscribe_confirmed("leaver@example.com", &["orthopedic"]).await;
    app.subscribe_confirmed("stayer@example.com", &["orthopedic"]).await;
    app.add_post("https://blog.example.org/1", "One", &["orthopedic"]).await;
    app.send_digest("orthopedic").await;
    let digest = common::wait_until(Duration::from_secs(10), || {
        app.smtp.to("leaver@example.com").into_iter().find(|m| m.text().contains("One"))
    })
    .await;
    let url = app.local(digest.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']));
    let res = app
        .client
        .post(&url)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.add_post("https://blog.example.org/2", "Two", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["recipients"], 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!app.smtp.to("leaver@example.com").iter().any(|m| m.text().contains("Two")));
    assert!(app.smtp.to("stayer@example.com").iter().any(|m| m.text().contains("Two")));
}

async fn no_new_posts_is_409_and_triggers_are_idempotent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "r", 5);
    let res = app.admin_post("/admin/digests", &json!({ "list": "orthopedic" })).await;
    assert_eq!(res.status(), 409);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("no new posts"));

    app.add_post("https://blog.example.org/x", "X", &["orthopedic"]).await;
    let trigger = |key: &'static str, list: &'static str| {
        app.client
            .post(app.url("/admin/digests"))
            .bearer_auth(common::ADMIN_TOKEN)
            .header("Idempotency-Key", key)
            .json(&json!({ "list": list }))
            .send()
    };
    let first: Value = trigger("key-1", "orthopedic").await.unwrap().json().await.unwrap();
    let again = trigger("key-1", "orthopedic").await.unwrap();
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first["posts"], 1);
    assert_eq!(first["recipients"], 5);
    assert_eq!(first["list"], "orthopedic");
    assert_eq!(trigger("key-1", "social-media").await.unwrap().status(), 409);
    // The post went out: nothing new to send.
    assert_eq!(app.admin_post("/admin/digests", &json!({ "list": "orthopedic" })).await.status(), 409);
    app.wait_digest(first["id"].as_i64().unwrap()).await;
    assert_eq!(app.smtp.received().len(), 5);

    assert_eq!(app.admin_post("/admin/digests", &json!({ "list": "cardiology" })).await.status(), 400);
    assert_eq!(app.admin_post("/admin/digests", &json!({ "lists": "x" })).await.status(), 400);
    assert_eq!(app.admin_get("/admin/digests/999999").await.status(), 404);
    assert_eq!(
        app.client.post(app.url("/admin/digests")).json(&json!({"list": "orthopedic"})).send().await.unwrap().status(),
        401
    );
}

async fn temporary_failures_are_retried_and_permanent_ones_suppress(backend: Backend) {
    // Pipelined where the server offers it (postfix), one command at a
    // time where it does not (aiosmtpd): refusals land the same either way.
    for pipelining in [true, false] {
        retries_and_suppression(backend, pipelining).await;
    }
}

async fn retries_and_suppression(backend: Backend, pipelining: bool) {
    let app = TestApp::spawn(backend).await;
    if !pipelining {
        app.smtp.refuse_pipelining();
    }
    app.db.seed_confirmed("orthopedic", "ok", 3);
    app.db.seed_confirmed("orthopedic", "bounce", 1);
    app.smtp.reject_recipient("bounce0@example.com");
    app.smtp.script(&[Reply::TempFail, Reply::TempFail]);
    app.add_post("https://blog.example.org/r", "Retry", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["status"], "sent", "{status}");
    assert_eq!(status["sent"], 3);
    assert_eq!((status["bounced"].as_i64(), status["failed"].as_i64()), (Some(1), Some(0)), "{status}");
    assert_eq!(status["failures"]["recipient"], 1, "{status}");
    assert!(status["last_error"].as_str().unwrap().starts_with("RCPT TO: 550 5.1.1"), "{status}");
    let seen = per_recipient(&app);
    for i in 0..3 {
        assert_eq!(seen.get(&format!("ok{i}@example.com")), Some(&1));
    }
    assert_eq!(seen.get("bounce0@example.com"), None);
    assert_eq!(app.db.count("deliveries WHERE status = 'sent' AND attempts > 1"), 2, "two were retried");
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 1);

    // The suppressed address gets no further digests.
    app.add_post("https://blog.example.org/s", "Second", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["recipients"], 3);
    let pipelined = app.smtp.pipelined();
    assert_eq!(pipelined > 0, pipelining, "{pipelined} transactions pipelined");
}

async fn posts_api_validates_and_upserts_by_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = json!({"title": "T", "url": "https://blog.example.org/p", "summary": "", "published_at": "2026-11-24T10:00:00Z", "lists": ["orthopedic"]});
    for (field, value) in [
        ("title", json!("  ")),
        ("url", json!("not a url")),
        ("url", json!("ftp://x/y")),
        ("published_at", json!("yesterday")),
        ("lists", json!([])),
        ("lists", json!(["cardiology"])),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let res = app.admin_post("/admin/posts", &body).await;
        assert_eq!(res.status(), 400, "{body}");
        assert_eq!(res.json::<Value>().await.unwrap()["field"], field);
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("title");
    let res = app.admin_post("/admin/posts", &missing).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "title");
    assert_eq!(app.db.count("posts"), 0);

    let res = app.admin_post("/admin/posts", &good).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].clone();
    let mut changed = good.clone();
    changed["title"] = json!("T, revised");
    changed["lists"] = json!(["orthopedic", "social-media"]);
    let res = app.admin_post("/admin/posts", &changed).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["id"], id);
    app.add_post("https://blog.example.org/newer", "Newer", &["social-media"]).await;
    let mut older = good.clone();
    older["url"] = json!("https://blog.example.org/older");
    older["published_at"] = json!("2020-01-01T00:00:00Z");
    app.admin_post("/admin/posts", &older).await;

    let posts: Vec<Value> = app.admin_get("/admin/posts?list=social-media").await.json().await.unwrap();
    let titles: Vec<_> = posts.iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Newer", "T, revised"], "newest first: same date, higher id first");
    assert_eq!(posts[1]["lists"], json!(["social-media", "orthopedic"]));
    let ortho: Vec<Value> = app.admin_get("/admin/posts?list=orthopedic").await.json().await.unwrap();
    assert_eq!(ortho.len(), 2);
    assert_eq!(ortho[1]["title"], "T");
    assert_eq!(ortho[1]["published_at"], "2020-01-01T00:00:00Z");
    assert_eq!(app.admin_get("/admin/posts?list=nope").await.status(), 400);
}

async fn feed_pull_is_idempotent(backend: Backend) {
    let rss = FileServer::start(include_bytes!("fixtures/wordpress.rss"), "application/rss+xml").await;
    let atom = FileServer::start(include_bytes!("fixtures/social.atom"), "application/atom+xml").await;
    let (rss_url, atom_url) = (rss.url("/category/orthopedic/feed/"), atom.url("/feed/atom/"));
    let app = TestApp::spawn_with(backend, |s| {
        s.feed_allow_private_hosts = true;
        s.lists[1].feed_url = Some(url::Url::parse(&rss_url).unwrap());
        s.lists[0].feed_url = Some(url::Url::parse(&atom_url).unwrap());
    })
    .await;
    let res = app.client.post(app.url("/admin/posts/pull")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let reports: Value = res.json().await.unwrap();
    assert_eq!(
        reports,
        json!([
            {"list": "social-media", "created": 2, "updated": 0, "unchanged": 0, "skipped": 0, "already_sent": 0},
            {"list": "orthopedic", "created": 4, "updated": 0, "unchanged": 0, "skipped": 1, "already_sent": 0},
        ])
    );
    let res = app
        .client
        .post(app.url("/admin/posts/pull?list=orthopedic"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let again: Value = res.json().await.unwrap();
    assert_eq!(
        again,
        json!([{"list": "orthopedic", "created": 0, "updated": 0, "unchanged": 4, "skipped": 1, "already_sent": 0}])
    );
    assert_eq!(app.db.count("posts"), 6);

    let posts: Vec<Value> = app.admin_get("/admin/posts?list=orthopedic").await.json().await.unwrap();
    let meniscus = posts.iter().find(|p| p["url"] == "https://blog.example.org/2026/11/meniscus-tears/").unwrap();
    assert_eq!(meniscus["title"], "Meniscus tears: when to operate & when to wait");
    assert_eq!(meniscus["published_at"], "2026-11-24T17:45:00Z");
    let summary = meniscus["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Most degenerative meniscus tears do not need surgery. Here is what the trials say…"),
        "{summary}"
    );
    assert!(!summary.contains('<'));
    let cuff = posts.iter().find(|p| p["url"] == "https://blog.example.org/2026/10/rotator-cuff/").unwrap();
    assert_eq!(cuff["title"], "Rotator cuff “repair” vs. physio");
    assert_eq!(cuff["published_at"], "2026-10-30T19:20:05Z");
    let social: Vec<Value> = app.admin_get("/admin/posts?list=social-media").await.json().await.unwrap();
    assert_eq!(social[0]["title"], "Why doctors should be on social media");
    assert_eq!(social[0]["summary"], "Patients search online first. Be there.");
    assert_eq!(social[1]["summary"], "A practical guide.");

    // The pulled posts make a digest.
    app.db.seed_confirmed("orthopedic", "feedreader", 2);
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["sent"], 2);
    let text = app.smtp.received()[0].text();
    assert!(text.contains("Meniscus tears: when to operate & when to wait"), "{text}");
}

async fn a_first_feed_pull_does_not_mail_the_blogs_history(backend: Backend) {
    // The fixture's posts are dated 24 Nov, 16 Nov and 30 Oct 2026: with a
    // lookback reaching back to 20 Nov only the first is new.
    let rss = FileServer::start(include_bytes!("fixtures/wordpress.rss"), "application/rss+xml").await;
    let days = (chrono::Utc::now().fixed_offset()
        - chrono::DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").unwrap())
    .num_days();
    let feed = rss.url("/feed/");
    let app = TestApp::spawn_with(backend, |s| {
        s.feed_allow_private_hosts = true;
        s.feed_first_lookback_days = u32::try_from(days).unwrap();
        s.lists[1].feed_url = Some(url::Url::parse(&feed).unwrap());
    })
    .await;
    app.db.seed_confirmed("orthopedic", "history", 2);
    let pull = || app.client.post(app.url("/admin/posts/pull?list=orthopedic")).bearer_auth(common::ADMIN_TOKEN).send();
    let report: Value = pull().await.unwrap().json().await.unwrap();
    assert_eq!(report[0]["created"], 4, "{report}");
    assert_eq!(report[0]["already_sent"], 2, "{report}");
    let status = app.send_digest("orthopedic").await;
    let text = app.smtp.received()[0].text();
    assert!(text.contains("Meniscus tears") && text.contains("Ankle sprains"), "{text}");
    assert!(!text.contains("Rotator cuff") && !text.contains("Running after 50"), "an old post was mailed: {text}");
    assert_eq!(status["sent"], 2);
    // Later pulls are not first pulls: nothing is held back, nothing resent.
    let again: Value = pull().await.unwrap().json().await.unwrap();
    assert_eq!((again[0]["unchanged"].as_i64(), again[0]["already_sent"].as_i64()), (Some(4), Some(0)));
    let res = app.admin_post("/admin/digests", &json!({"list": "orthopedic"})).await;
    assert_eq!(res.status(), 409, "the held-back posts count as sent");

    // From the command line: a first import holds back the old posts,
    // unless `--all-new` says every post of the file is new.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wordpress.rss");
    for (all_new, want) in [
        (false, "orthopedic: 4 new, 0 updated, 0 unchanged, 1 skipped, 3 older ones stored as already sent"),
        (true, "orthopedic: 4 new, 0 updated, 0 unchanged, 1 skipped"),
    ] {
        let db = common::TestDb::new(backend);
        let mut cmd = common::tidings_cli(&db, app.smtp.port);
        cmd.env("TIDINGS_FEED_FIRST_LOOKBACK_DAYS", "7").args(["posts", "import", "--list", "orthopedic", fixture]);
        if all_new {
            cmd.arg("--all-new");
        }
        let out = cmd.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{}", String::from_utf8_lossy(&out.stderr));
    }
}

async fn feed_fetch_refuses_private_hosts_unless_allowed(backend: Backend) {
    let rss = FileServer::start(include_bytes!("fixtures/wordpress.rss"), "application/rss+xml").await;
    let rss_url = rss.url("/feed/");
    let app = TestApp::spawn_with(backend, |s| s.lists[1].feed_url = Some(url::Url::parse(&rss_url).unwrap())).await;
    let res = app
        .client
        .post(app.url("/admin/posts/pull?list=orthopedic"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("private or loopback"));
    let res = app
        .client
        .post(app.url("/admin/posts/pull?list=social-media"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "no feed configured");
    assert_eq!(app.db.count("posts"), 0);
}

async fn feed_fetch_gives_up_on_slow_and_oversized_feeds(backend: Backend) {
    let huge: std::sync::Arc<[u8]> = include_bytes!("fixtures/wordpress.rss").repeat(40).into();
    let stalling = FileServer::start_with(huge.clone(), "application/rss+xml", Serve::Stall).await;
    let sized = FileServer::start_with(huge.clone(), "application/rss+xml", Serve::Whole).await;
    let lengthless = FileServer::start_with(huge.clone(), "application/rss+xml", Serve::Unsized).await;
    let limit = (huge.len() / 2) as u64;
    let spawn = |orthopedic: String, social: String| {
        TestApp::spawn_with(backend, move |s| {
            s.feed_allow_private_hosts = true;
            s.feed_timeout_secs = 1;
            s.feed_max_bytes = limit;
            s.lists[1].feed_url = Some(url::Url::parse(&orthopedic).unwrap());
            s.lists[0].feed_url = Some(url::Url::parse(&social).unwrap());
        })
    };
    let pull = |app: &TestApp, list: &str| {
        app.client.post(app.url(&format!("/admin/posts/pull?list={list}"))).bearer_auth(common::ADMIN_TOKEN).send()
    };
    let error = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 502);
        res.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned()
    };

    let app = spawn(stalling.url("/feed/"), sized.url("/feed/")).await;
    let started = std::time::Instant::now();
    let slow = error(pull(&app, "orthopedic").await.unwrap()).await;
    assert_eq!(slow, "the feed did not arrive within the 1-second limit");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let too_big = error(pull(&app, "social-media").await.unwrap()).await;
    assert_eq!(too_big, format!("the feed is larger than {limit} bytes"));
    // Without a Content-Length the body is cut off at the cap as it streams.
    let streamed = spawn(lengthless.url("/feed/"), sized.url("/feed/")).await;
    let too_big = error(pull(&streamed, "orthopedic").await.unwrap()).await;
    assert_eq!(too_big, format!("the feed is larger than {limit} bytes"));
    assert_eq!(app.db.count("posts") + streamed.db.count("posts"), 0);
    assert_eq!(app.get("/health").await.status(), 200);
}

async fn preview_shows_what_a_reader_would_get(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.admin_get("/admin/digests/preview?list=orthopedic").await.status(), 409);
    app.add_post("https://blog.example.org/pv", "Preview <me>", &["orthopedic"]).await;
    let res = app.admin_get("/admin/digests/preview?list=orthopedic").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Preview &lt;me&gt;"), "{html}");
    assert!(html.contains("Unsubscribe"));
    assert_eq!(app.db.count("digests"), 0, "a preview sends nothing");
    assert!(app.smtp.received().is_empty());
    assert_eq!(app.admin_get("/admin/digests/preview?list=nope").await.status(), 400);
}

async fn two_senders_share_a_digest_without_duplicates(backend: Backend) {
    let first = TestApp::spawn_with(backend, |s| s.smtp_concurrency = 4).await;
    // A second instance on the same database, sending to an SMTP server of
    // its own: each server shows what its sender sent.
    let second_smtp = common::SmtpServer::start().await;
    let mut settings = common::test_settings(&first.db, second_smtp.port);
    settings.smtp_concurrency = 4;
    let second = tidings::app::Application::build(settings).await.unwrap();
    tokio::spawn(second.run());
    first.smtp.set_delay(Duration::from_millis(2));
    second_smtp.set_delay(Duration::from_millis(2));
    first.db.seed_confirmed("orthopedic", "shared", 400);
    first.add_post("https://blog.example.org/shared", "Shared", &["orthopedic"]).await;
    let status = first.send_digest("orthopedic").await;
    assert_eq!(status["sent"], 400, "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a, b) = (first.smtp.received(), second_smtp.received());
    assert!(!a.is_empty() && !b.is_empty(), "both senders sent part: {} and {}", a.len(), b.len());
    let mut seen = std::collections::HashMap::new();
    for m in a.iter().chain(&b) {
        *seen.entry(m.to[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 400);
    assert!(seen.values().all(|&n| n == 1), "a reader got the digest twice");
    assert_eq!(a.len() + b.len(), 400);
}

/// Another sender claims deliveries still in flight (their leases cleared
/// by hand, as if the first sender had stalled past them): each message is
/// sent twice and recorded twice. The digest's counts must still add up to
/// its readers, or it would never (or too early) be finished.
async fn a_message_sent_twice_is_counted_once(backend: Backend) {
    // The first process claims once (at the trigger) and does not look
    // again while its copies are in flight, so that the rows whose leases
    // the test clears are claimed by the second process, which sends them
    // again while the first copies are still in flight (a finished digest
    // sends nothing more).
    let app = TestApp::spawn_with(backend, |s| {
        s.smtp_concurrency = 4;
        s.outbox_poll_ms = 60_000;
    })
    .await;
    app.smtp.set_delay(Duration::from_millis(3000));
    app.db.seed_confirmed("orthopedic", "twice", 4);
    app.add_post("https://blog.example.org/twice", "Twice", &["orthopedic"]).await;
    let id = app.trigger_digest("orthopedic").await;
    common::wait_until(Duration::from_secs(10), || {
        (app.db.count("deliveries WHERE leased_until IS NOT NULL") == 4).then_some(())
    })
    .await;
    let mut settings = common::test_settings(&app.db, app.smtp.port);
    settings.smtp_concurrency = 4;
    let second = tidings::app::Application::build(settings).await.unwrap();
    app.db.execute("UPDATE deliveries SET leased_until = NULL");
    tokio::spawn(second.run());
    let status = app.wait_digest(id).await;
    assert_eq!(status["status"], "sent", "{status}");
    assert_eq!(status["recipients"], 4, "{status}");
    assert_eq!(status["sent"], 4, "{status}");
    assert_eq!(status["pending"], 0, "{status}");
    // Let the second copies land and be recorded too.
    app.smtp.wait_for(8, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again: Value = app.admin_get(&format!("/admin/digests/{id}")).await.json().await.unwrap();
    assert_eq!((again["sent"].as_i64(), again["pending"].as_i64()), (Some(4), Some(0)), "{again}");
    assert_eq!(app.db.count("deliveries WHERE status = 'sent'"), 4);
}

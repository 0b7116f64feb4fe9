//! Faults: SMTP down or dropping connections, the database restarting,
//! SQLite under concurrent writers, garbage at every public route.

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{Backend, Reply, SmtpServer, TestApp, TestDb, free_port, test_settings};
use serde_json::{Value, json};

on_both_backends!(
    smtp_down_for_a_whole_digest_then_back,
    smtp_dropping_the_connection_mid_data_is_retried,
    a_delivery_whose_subscription_was_deleted_is_skipped,
    concurrent_signups_and_sending_never_see_a_locked_database,
    garbage_at_every_public_route_never_gets_a_5xx,
);

/// A digest to `readers` readers triggered while the SMTP server is down,
/// once every delivery waits for a retry: the app, the port where the
/// server can come back, the digest's id and its status then.
async fn digest_while_smtp_is_down(backend: Backend, prefix: &str, readers: usize) -> (TestApp, u16, i64, Value) {
    let port = free_port();
    let db = TestDb::new(backend);
    let settings = test_settings(&db, port);
    let app = TestApp::spawn_on(settings, SmtpServer::start().await, db).await;
    app.db.seed_confirmed("orthopedic", prefix, readers);
    app.add_post(&format!("https://blog.example.org/{prefix}"), prefix, &["orthopedic"]).await;
    let res = app.admin_post("/admin/digests", &json!({ "list": "orthopedic" })).await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s: Value = app.admin_get(&format!("/admin/digests/{id}")).await.json().await.unwrap();
        if s["retrying"] == readers {
            return (app, port, id, s);
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn smtp_down_for_a_whole_digest_then_back(backend: Backend) {
    let (app, port, id, status) = digest_while_smtp_is_down(backend, "down", 40).await;
    // Meanwhile the status says what is happening.
    assert_eq!(status["status"], "sending");
    assert_eq!(status["pending"], 40);
    assert_eq!(status["sent"], 0);
    assert!(status["last_error"].as_str().unwrap().contains("connect"), "{status}");

    let smtp = SmtpServer::start_on(port).await;
    let done = app.wait_digest(id).await;
    assert_eq!(done["status"], "sent");
    assert_eq!(done["sent"], 40);
    assert_eq!(done["retrying"], 0);
    assert!(done["last_error"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 40, "each reader once");
}

/// Subscriptions are never deleted by Tidings, but a hand-run `DELETE` must
/// not leave a digest sending forever: the orphaned delivery (PostgreSQL) or
/// the delivery deleted with it (SQLite's cascade) counts as skipped.
async fn a_delivery_whose_subscription_was_deleted_is_skipped(backend: Backend) {
    // SMTP is down: every delivery waits for a retry, none is finished.
    let (app, port, id, _) = digest_while_smtp_is_down(backend, "orphan", 3).await;
    let gone = app.db.execute(&format!(
        "DELETE FROM subscriptions WHERE id = (SELECT MIN(subscription_id) FROM deliveries WHERE digest_id = {id})"
    ));
    assert_eq!(gone, 1);

    let smtp = SmtpServer::start_on(port).await;
    let done = app.wait_digest(id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(
        (done["sent"].as_i64(), done["skipped"].as_i64(), done["pending"].as_i64()),
        (Some(2), Some(1), Some(0))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 2);
}

async fn smtp_dropping_the_connection_mid_data_is_retried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let readers = app.db.seed_confirmed("orthopedic", "drop", 10);
    app.smtp.script(&[Reply::Drop, Reply::Drop, Reply::Drop]);
    app.add_post("https://blog.example.org/drop", "Dropped", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["sent"], 10, "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = app.smtp.received();
    assert_eq!(got.len(), 10);
    for r in &readers {
        assert_eq!(got.iter().filter(|m| &m.to[0] == r).count(), 1);
    }
    assert_eq!(app.smtp.attempts(), 13, "three dropped, then all delivered");
}

async fn concurrent_signups_and_sending_never_see_a_locked_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "busy", 500);
    app.add_post("https://blog.example.org/busy", "Busy", &["orthopedic"]).await;
    let res = app.admin_post("/admin/digests", &json!({ "list": "orthopedic" })).await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // Another process writes to the same database at the same time.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wordpress.rss");
    let url = app.db.url.to_url();
    let importer = tokio::task::spawn_blocking(move || {
        for _ in 0..5 {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
                .args(["posts", "import", "--list", "social-media", fixture])
                .env("TIDINGS_DATABASE_URL", &url)
                .env("TIDINGS_LOG", "error")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    });
    let emails = (0..400).map(|i| format!("busy-signup{i}@example.com")).collect();
    let statuses = app.signups_at_once(emails, &["orthopedic", "social-media"]).await;
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    importer.await.unwrap();
    assert_eq!(app.wait_digest(id).await["sent"], 500);
    assert_eq!(app.db.count("subscribers WHERE email LIKE 'busy-signup%'"), 400);
}

async fn garbage_at_every_public_route_never_gets_a_5xx(backend: Backend) {
    use rand::RngExt;
    let app = TestApp::spawn(backend).await;
    let routes = [
        ("POST", "/subscriptions"),
        ("POST", "/subscriptions/confirm"),
        ("GET", "/subscriptions/confirm?token=%FF%FE"),
        ("POST", "/unsubscribe/x"),
        ("GET", "/unsubscribe/%00%01"),
        ("POST", "/admin/posts"),
        ("POST", "/admin/digests"),
        ("GET", "/"),
        ("GET", "/health"),
        ("PUT", "/subscriptions"),
        ("DELETE", "/unsubscribe/abc"),
    ];
    let content_types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "text/plain",
        "application/json; charset=utf-16",
        "",
        "\u{1}bogus",
    ];
    // A fresh connection per request: after an early answer to an oversized
    // body the server closes, and a pooled client would reuse the dead one.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut rng = rand::rng();
    let mut sent = 0;
    for round in 0..300 {
        let (method, path) = routes[round % routes.len()];
        let len = if round % 10 == 0 { 70 * 1024 } else { rng.random_range(0..512) };
        let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url(path)).body(body);
        let ct = content_types[round % content_types.len()];
        if let Ok(value) = reqwest::header::HeaderValue::from_str(ct) {
            req = req.header("content-type", value);
        }
        if round % 7 == 0 {
            req = req.header("x-huge", "h".repeat(6000)).header("authorization", "Bearer \u{7f}");
        }
        if round % 5 == 0 {
            req = req.bearer_auth(common::ADMIN_TOKEN);
        }
        match req.send().await {
            Ok(res) => {
                assert!(!res.status().is_server_error(), "{method} {path} ({ct}) -> {}", res.status());
                sent += 1;
            }
            // The server may answer an oversized header block or body early
            // and close while the client is still sending: a reset, not a 5xx.
            Err(e) => assert!(round % 7 == 0 || round % 10 == 0, "{method} {path}: {e}"),
        }
    }
    assert!(sent > 200, "only {sent} answers");
    // Structured garbage: well-formed JSON of every wrong shape.
    for body in
        [json!(null), json!([]), json!({"email": 5}), json!({"email": "a@example.com", "lists": [null]}), json!("x")]
    {
        let res = app.post_json("/subscriptions", &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let res = app.admin_post("/admin/posts", &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let res = app.admin_post("/admin/digests", &body).await;
        assert_eq!(res.status(), 400, "{body}");
    }
    // Still serving, and nothing was stored.
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.db.count("subscribers"), 0);
    assert_eq!(app.db.count("posts"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_answers_503_fast_and_recovers() {
    if common::pg_url().is_none() {
        eprintln!("TIDINGS_TEST_PG_URL is not set: PostgreSQL run skipped");
        return;
    }
    let db = TestDb::new(Backend::Postgres);
    let tidings::config::DatabaseUrl::Postgres(real) = &db.url else { unreachable!() };
    let real_port = url::Url::parse(real).unwrap().port().unwrap_or(5432);
    let proxy = Proxy::start(real_port).await;
    let mut via_proxy = url::Url::parse(real).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let smtp = SmtpServer::start().await;
    let mut settings = test_settings(&db, smtp.port);
    settings.database_url = tidings::config::DatabaseUrl::Postgres(via_proxy.to_string());
    // A claim whose commit was cut off is retried when its lease ends.
    settings.delivery_lease_secs = 3;
    let app = TestApp::spawn_on(settings, smtp, db).await;

    let mut accepted = Vec::new();
    for i in 0..5 {
        let email = format!("before{i}@example.com");
        assert_eq!(app.signup(&email, &["orthopedic"]).await.status(), 202);
        accepted.push(email);
    }
    proxy.cut();
    for i in 0..3 {
        let started = Instant::now();
        let health = app.get("/health").await;
        assert_eq!(health.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let started = Instant::now();
        let res = app.signup(&format!("during{i}@example.com"), &["orthopedic"]).await;
        assert_eq!(res.status(), 503, "a signup that cannot be stored is not accepted");
        assert_eq!(res.headers()["retry-after"], "5");
        assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("try again"));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/health").await.status() != 200 {
        assert!(Instant::now() < deadline, "no recovery without a restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..5 {
        let email = format!("after{i}@example.com");
        assert_eq!(app.signup(&email, &["orthopedic"]).await.status(), 202);
        accepted.push(email);
    }
    for email in &accepted {
        assert_eq!(app.db.count(&format!("subscribers WHERE email = '{email}'")), 1, "{email} was lost");
    }
    assert_eq!(app.db.count("subscribers WHERE email LIKE 'during%'"), 0);
    // The confirmations of every accepted signup go out.
    app.smtp.wait_for(10, Duration::from_secs(20)).await;
}

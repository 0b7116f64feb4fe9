//! The binary's process roles: `serve --no-dispatch` serves HTTP only, a
//! `worker` sends what it queues, and `tidings health` is a container's
//! health check.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::peers::TempDir;
use common::peers::{Peer, healthy};
use common::{Backend, SmtpServer, TestApp, TestDb, free_port, test_settings, tidings_cli};
use tidings::config::DatabaseUrl;

on_both_backends!(
    serve_without_dispatch_leaves_sending_to_a_worker,
    backup_copies_a_live_database_that_restores,
    two_workers_hold_one_send_rate_between_them,
);

async fn serve_without_dispatch_leaves_sending_to_a_worker(backend: Backend) {
    let (db, smtp, port) = (TestDb::new(backend), SmtpServer::start().await, free_port());
    let listen = format!("127.0.0.1:{port}");
    let role = |args: &[&str]| {
        let mut cmd = tidings_cli(&db, smtp.port);
        cmd.args(args)
            .env("TIDINGS_LISTEN", &listen)
            .env("TIDINGS_FORM_MIN_FILL_MS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let health = || {
        let out = role(&["health"]).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = health();
    assert_eq!(code, Some(1), "nothing serves yet");
    assert!(stderr.contains(&format!("http://{listen}/health")), "{stderr}");

    let log_path = std::env::temp_dir().join(format!("tidings-serve-{}.log", uuid::Uuid::new_v4().simple()));
    let mut serve = role(&["serve", "--no-dispatch"]);
    serve
        .env("TIDINGS_LOG_FORMAT", "json")
        .env("TIDINGS_LOG", "tidings=debug,info")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let server = Peer(serve.spawn().unwrap());
    healthy(port).await;
    let (code, stdout, _) = health();
    assert_eq!(code, Some(0));
    assert!(stdout.contains("\"ok\""), "{stdout}");

    let res = reqwest::Client::new()
        .post(format!("http://{listen}/subscriptions"))
        .json(&serde_json::json!({ "email": "split@example.com", "lists": ["orthopedic"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(db.count("outbox WHERE status = 'pending'"), 1, "queued in the database");
    // A serving process that dispatched would have sent it well within this
    // (its outbox poll is 50 ms); the worker below shows the mail is sendable.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(smtp.attempts(), 0, "serve --no-dispatch sends nothing");

    let _worker = Peer(role(&["worker"]).spawn().unwrap());
    smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(smtp.to("split@example.com").len(), 1);
    common::wait_until(Duration::from_secs(10), || (db.count("outbox WHERE status = 'sent'") == 1).then_some(())).await;
    drop(server);

    // JSON logs: one object per line, each request's lines in its span with
    // its id, and never the reader's full address.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["target"].is_string()));
    let signup = lines
        .iter()
        .find(|l| l["fields"]["message"] == "signup")
        .unwrap_or_else(|| panic!("no signup line in:\n{log}"));
    assert_eq!(signup["span"]["name"], "request");
    assert_eq!(signup["span"]["id"].as_str().map(str::len), Some(12), "{signup}");
    assert!(signup["fields"]["email"].as_str().unwrap().contains("***"), "{signup}");
    assert!(!log.contains("split@example.com"), "{log}");
}

async fn backup_copies_a_live_database_that_restores(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "kept", 500);
    let dir = TempDir::new();
    let path = dir.path().join("backup.db");
    let backup = || {
        let mut cmd = tidings_cli(&app.db, app.smtp.port);
        cmd.arg("backup").arg(&path);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    if backend == Backend::Postgres {
        let out = backup().await.unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"), "{}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    // Signups go on while the copy is taken.
    let signups = app.signups_at_once((0..40).map(|i| format!("during{i}@example.com")).collect(), &["orthopedic"]);
    let (out, statuses) = tokio::join!(backup(), signups);
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up to"));
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    let again = backup().await.unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Restore into a fresh directory and serve from it: the readers are there.
    let fresh = TempDir::new();
    let restored = fresh.path().join("tidings.db");
    std::fs::copy(&path, &restored).unwrap();
    let (smtp, unused) = (SmtpServer::start().await, TestDb::new(Backend::Sqlite));
    let mut settings = test_settings(&unused, smtp.port);
    settings.database_url = DatabaseUrl::Sqlite(restored);
    let back = TestApp::spawn_on(settings, smtp, unused).await;
    let counts = back.counts().await;
    assert_eq!(counts["orthopedic"].1, 500, "confirmed readers restored: {counts:?}");
}

/// `TIDINGS_SEND_RATE_PER_SECOND` across processes: two workers on one
/// database send a 600-reader digest at 50 msg/s together, not each.
async fn two_workers_hold_one_send_rate_between_them(backend: Backend) {
    const READERS: usize = 600;
    const CAP: f64 = 50.0;
    let (db, smtp, port) = (TestDb::new(backend), SmtpServer::start().await, free_port());
    let role = |args: &[&str]| {
        let mut cmd = tidings_cli(&db, smtp.port);
        cmd.args(args)
            .env("TIDINGS_LISTEN", format!("127.0.0.1:{port}"))
            .env("TIDINGS_ADMIN_TOKEN", common::ADMIN_TOKEN)
            .env("TIDINGS_SEND_RATE_PER_SECOND", CAP.to_string())
            .env("TIDINGS_SMTP_CONCURRENCY", "4")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let _web = Peer(role(&["serve", "--no-dispatch"]).spawn().unwrap());
    healthy(port).await;
    db.seed_confirmed("orthopedic", "rate", READERS);
    let _workers = [Peer(role(&["worker"]).spawn().unwrap()), Peer(role(&["worker"]).spawn().unwrap())];
    // Both have said they are alive (a heartbeat a second).
    common::wait_until(Duration::from_secs(10), || (db.count("senders") == 2).then_some(())).await;

    let client = reqwest::Client::new();
    let admin = |path: &str| client.post(format!("http://127.0.0.1:{port}{path}")).bearer_auth(common::ADMIN_TOKEN);
    let post = serde_json::json!({
        "title": "Rate", "url": "https://blog.example/rate", "summary": "",
        "published_at": "2026-11-24T10:00:00Z", "lists": ["orthopedic"],
    });
    assert_eq!(admin("/admin/posts").json(&post).send().await.unwrap().status(), 201);
    let res = admin("/admin/digests").json(&serde_json::json!({"list": "orthopedic"})).send().await.unwrap();
    assert_eq!(res.status(), 202);

    let first =
        common::wait_until(Duration::from_secs(20), || (smtp.attempts() > 0).then(std::time::Instant::now)).await;
    let mut last = first;
    let deadline = first + Duration::from_secs(60);
    while smtp.attempts() < READERS {
        assert!(std::time::Instant::now() < deadline, "only {} of {READERS} arrived", smtp.attempts());
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = std::time::Instant::now();
    }
    let rate = (READERS - 1) as f64 / last.duration_since(first).as_secs_f64();
    eprintln!("two workers, cap {CAP}/s: {rate:.1} msg/s together");
    assert!((CAP * 0.9..=CAP * 1.1).contains(&rate), "{rate:.1} msg/s for a cap of {CAP}");
    let mut to: Vec<String> = smtp.received().into_iter().flat_map(|m| m.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), READERS, "every reader once");
}

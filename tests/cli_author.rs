//! The author's CLI against a real database and SMTP server, and the
//! crash-safety promise: kill -9 a worker mid-digest, again and again.

mod common;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, SmtpServer, TestDb};
use tidings::app::Core;
use tidings::domain::ListSlug;
use tidings::store::digests::TriggerOutcome;

on_both_backends!(author_cli_imports_previews_and_sends, kill_nine_mid_digest_resumes_without_losing_anyone);

fn tidings(db: &TestDb, smtp_port: u16) -> Command {
    common::tidings_cli(db, smtp_port)
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn author_cli_imports_previews_and_sends(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let db = TestDb::new(backend);
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wordpress.rss");

    let mut import = tidings(&db, smtp.port);
    import.args(["posts", "import", "--list", "orthopedic", fixture]);
    let out = run(import).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "orthopedic: 4 new, 0 updated, 0 unchanged, 1 skipped");
    let mut again = tidings(&db, smtp.port);
    again.args(["posts", "import", "--list", "orthopedic", fixture]);
    let out = run(again).await;
    assert_eq!(text(&out.stdout).trim(), "orthopedic: 0 new, 0 updated, 4 unchanged, 1 skipped");

    let mut add = tidings(&db, smtp.port);
    add.args([
        "posts",
        "add",
        "--list",
        "orthopedic",
        "--title",
        "Hip & knee",
        "--url",
        "https://blog.example.org/hip",
    ]);
    let out = run(add).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut bad = tidings(&db, smtp.port);
    bad.args(["posts", "add", "--list", "orthopedic", "--title", "x", "--url", "nope"]);
    let out = run(bad).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("url"), "{}", text(&out.stderr));

    db.seed_confirmed("orthopedic", "cli", 25);
    let preview_file = std::env::temp_dir().join(format!("tidings-preview-{}.html", uuid::Uuid::new_v4()));
    let mut preview = tidings(&db, smtp.port);
    preview.args(["digest", "preview", "--list", "orthopedic", "--out"]).arg(&preview_file);
    let out = run(preview).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&preview_file).unwrap();
    let _ = std::fs::remove_file(&preview_file);
    assert!(html.contains("Hip &amp; knee"));
    assert!(html.contains("Meniscus tears"));

    let mut dry = tidings(&db, smtp.port);
    dry.args(["digest", "send", "--list", "orthopedic", "--dry-run"]);
    let out = run(dry).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("recipients: 25 confirmed readers"), "{report}");
    assert!(report.contains("posts: 5"), "{report}");
    assert_eq!(db.count("digests"), 0);

    let mut send = tidings(&db, smtp.port);
    send.args(["digest", "send", "--list", "orthopedic", "--subject", "November from the clinic"]).stdin(Stdio::null());
    let out = run(send).await;
    let progress = text(&out.stderr);
    assert!(out.status.success(), "{progress}");
    assert!(progress.contains("25/25 sent"), "{progress}");
    assert!(progress.contains("digest 1 sent: 25 sent, 0 failed, 0 bounced, 0 skipped, 0 cancelled"), "{progress}");
    assert_eq!(smtp.received().len(), 25);
    assert!(smtp.received().iter().all(|m| m.header("Subject").as_deref() == Some("November from the clinic")));

    let mut nothing_new = tidings(&db, smtp.port);
    nothing_new.args(["digest", "send", "--list", "orthopedic"]);
    let out = run(nothing_new).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no new posts"));

    let mut status = tidings(&db, smtp.port);
    status.args(["digest", "status", "1"]);
    let out = run(status).await;
    assert!(text(&out.stdout).contains("digest 1 [orthopedic] sent: 25 of 25 sent"), "{}", text(&out.stdout));
}

async fn kill_nine_mid_digest_resumes_without_losing_anyone(backend: Backend) {
    const READERS: usize = 1200;
    const CONCURRENCY: usize = 4;
    let smtp = SmtpServer::start().await;
    // A slow server, so that the digest is still going when the kills come.
    smtp.set_delay(Duration::from_millis(5));
    let db = TestDb::new(backend);
    let settings = common::test_settings(&db, smtp.port);
    let core = Core::open(settings).await.unwrap();
    let readers = db.seed_confirmed("orthopedic", "crash", READERS);
    let post = tidings::author::PostInput {
        title: "Crash test".into(),
        url: "https://blog.example.org/crash".into(),
        summary: String::new(),
        published_at: "2026-11-24T10:00:00Z".into(),
        lists: vec!["orthopedic".into()],
    };
    let post = tidings::author::parse_post(&post, &core.settings).unwrap();
    core.store.upsert_posts(vec![post], tidings::store::posts::ListsMode::Replace).await.unwrap();
    let list = ListSlug::parse("orthopedic").unwrap();
    let TriggerOutcome::Created(digest) = core.store.trigger_digest(list, None, None).await.unwrap() else {
        panic!("no digest");
    };

    let worker = || {
        let mut cmd = tidings(&db, smtp.port);
        cmd.arg("worker")
            .env("TIDINGS_SMTP_CONCURRENCY", CONCURRENCY.to_string())
            .env("TIDINGS_DELIVERY_LEASE_SECS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    };
    let kills = [250, 500, 750];
    for at in kills {
        let mut child = worker();
        let deadline = Instant::now() + Duration::from_secs(60);
        while smtp.received().len() < at {
            assert!(Instant::now() < deadline, "worker stalled at {}", smtp.received().len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut last = worker();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = core.store.digest_status(digest.id).await.unwrap().unwrap();
        if status.is_finished() {
            assert_eq!(status.status, tidings::domain::DigestState::Sent);
            assert_eq!(status.sent as usize, READERS);
            break;
        }
        assert!(Instant::now() < deadline, "digest did not resume: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last.kill().unwrap();
    last.wait().unwrap();

    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in smtp.received() {
        *seen.entry(m.to[0].clone()).or_default() += 1;
    }
    for r in &readers {
        assert!(seen.get(r).copied().unwrap_or(0) >= 1, "{r} never got the digest");
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("{} kills, {duplicates} duplicates, {} messages", kills.len(), smtp.received().len());
    assert!(duplicates <= kills.len() * CONCURRENCY, "{duplicates} duplicates after {} kills", kills.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_show_tokens_or_full_addresses() {
    let smtp = SmtpServer::start().await;
    let db = TestDb::new(Backend::Sqlite);
    let port = common::free_port();
    let mut serve = tidings(&db, smtp.port);
    serve
        .arg("serve")
        .env("TIDINGS_LISTEN", format!("127.0.0.1:{port}"))
        .env("TIDINGS_LOG", "debug")
        .env("TIDINGS_FORM_MIN_FILL_MS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = serve.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let email = "secret.reader@example.com";
    let res = client
        .post(format!("{base}/subscriptions"))
        .json(&serde_json::json!({ "email": email, "name": "Secret Name", "lists": ["orthopedic"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let confirm = mail.link("http://tidings.test/subscriptions/confirm?token=");
    let token = confirm.rsplit('=').next().unwrap().to_owned();
    let page = client.get(format!("{base}/subscriptions/confirm?token={token}")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let res = client.post(format!("{base}/subscriptions/confirm")).form(&[("token", &token)]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    let unsubscribe_token = unsubscribe.trim_matches(['<', '>']).rsplit('/').next().unwrap().to_owned();
    let res = client
        .post(format!("{base}/unsubscribe/{unsubscribe_token}"))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // SIGTERM, then read everything it logged.
    let pid = child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(log.contains("signup"), "the log is not empty: {log}");
    assert!(log.contains("s***@example.com"), "addresses appear redacted: {log}");
    for secret in [email, "Secret Name", token.as_str(), unsubscribe_token.as_str()] {
        assert!(!log.contains(secret), "{secret:?} appears in the log:\n{log}");
    }
    for part in token.split('.').chain(unsubscribe_token.split('.')) {
        assert!(!log.contains(part), "a token part appears in the log:\n{log}");
    }
}

/// SIGTERM: the worker stops claiming, finishes the messages in flight and
/// records them, and hands back what it had claimed but not started, so the
/// next worker carries on at once (long before the lease would expire) and
/// nobody gets the digest twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_sends_and_hands_back_the_rest() {
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(20));
    let db = TestDb::new(Backend::Sqlite);
    let core = Core::open(common::test_settings(&db, smtp.port)).await.unwrap();
    db.seed_confirmed("orthopedic", "term", 300);
    let post = tidings::author::PostInput {
        title: "Shutdown".into(),
        url: "https://blog.example.org/shutdown".into(),
        summary: String::new(),
        published_at: "2026-11-24T10:00:00Z".into(),
        lists: vec!["orthopedic".into()],
    };
    let post = tidings::author::parse_post(&post, &core.settings).unwrap();
    core.store.upsert_posts(vec![post], tidings::store::posts::ListsMode::Replace).await.unwrap();
    let TriggerOutcome::Created(digest) =
        core.store.trigger_digest(ListSlug::parse("orthopedic").unwrap(), None, None).await.unwrap()
    else {
        panic!("no digest")
    };
    let worker = || {
        let mut cmd = tidings(&db, smtp.port);
        cmd.arg("worker")
            .env("TIDINGS_SMTP_CONCURRENCY", "4")
            .env("TIDINGS_DELIVERY_LEASE_SECS", "600")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    };
    let first = worker();
    while smtp.received().len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopping = Instant::now();
    Command::new("kill").args(["-TERM", &first.id().to_string()]).status().unwrap();
    let exit = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()).await.unwrap();
    assert!(exit.status.success(), "clean exit after SIGTERM");
    assert!(stopping.elapsed() < Duration::from_secs(10), "{:?}", stopping.elapsed());
    let status = core.store.digest_status(digest.id).await.unwrap().unwrap();
    assert_eq!(status.sent as usize, smtp.received().len(), "every message sent was recorded");
    assert!(status.pending > 0, "stopped mid-digest");

    let mut second = worker();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !core.store.digest_status(digest.id).await.unwrap().unwrap().is_finished() {
        assert!(Instant::now() < deadline, "claims were not handed back: the lease would have to expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in smtp.received() {
        *seen.entry(m.to[0].clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1), "graceful shutdown must not cause duplicates");
}
